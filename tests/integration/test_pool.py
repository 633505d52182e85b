"""The connection pool against a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from geotasks.errors import (
    DatabaseError,
    DatabaseMisconfigured,
    DatabaseUnavailable,
    TransientError,
)
from geotasks.postgres.pool import Database, PreparedStatement, execute_prepared


def test_transaction_commits_and_returns_the_work_result(database: Database) -> None:
    # Given a table
    database.transaction(lambda cur: cur.execute("CREATE TABLE t (v int)"))

    # When a unit of work inserts and returns a value
    def insert(cur: psycopg2.extensions.cursor) -> int:
        cur.execute("INSERT INTO t VALUES (41) RETURNING v + 1")
        return int(cur.fetchone()[0])

    # Then its result comes back and the row is committed
    assert database.transaction(insert) == 42
    assert database.transaction(
        lambda cur: (cur.execute("SELECT count(*) FROM t"), cur.fetchone())[1]
    ) == (1,)


def test_an_error_in_the_work_rolls_back(database: Database) -> None:
    database.transaction(lambda cur: cur.execute("CREATE TABLE t (v int)"))

    def insert_then_fail(cur: psycopg2.extensions.cursor) -> None:
        cur.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        database.transaction(insert_then_fail)
    assert database.transaction(
        lambda cur: (cur.execute("SELECT count(*) FROM t"), cur.fetchone())[1]
    ) == (0,)


def test_sql_errors_are_wrapped_and_not_retried(database: Database) -> None:
    calls = []

    def bad(cur: psycopg2.extensions.cursor) -> None:
        calls.append(1)
        cur.execute("SELECT * FROM no_such_table")

    with pytest.raises(DatabaseError, match="no_such_table") as excinfo:
        database.transaction(bad)
    assert isinstance(excinfo.value.__cause__, psycopg2.errors.UndefinedTable)
    assert len(calls) == 1


def test_a_connection_killed_by_the_server_is_replaced_and_the_work_retried(
    database: Database,
) -> None:
    # Given a pooled connection whose backend the server then terminates (as on a restart)
    def backend_pid(cur: psycopg2.extensions.cursor) -> int:
        cur.execute("SELECT pg_backend_pid()")
        return int(cur.fetchone()[0])

    first_pid = database.transaction(backend_pid)
    killer = Database(database.url, max_connections=1)
    killer.transaction(lambda cur: cur.execute("SELECT pg_terminate_backend(%s)", (first_pid,)))
    killer.close()

    # When the next unit of work runs, it fails on the dead connection, then retries
    second_pid = database.transaction(backend_pid)

    # Then it succeeded on a new backend
    assert second_pid != first_pid


def test_unreachable_server_raises_database_unavailable_after_bounded_attempts() -> None:
    database = Database("postgresql://nobody@127.0.0.1:1/none", attempts=2, connect_timeout_s=1)
    with pytest.raises(DatabaseUnavailable, match="failed 2 times"):
        database.transaction(lambda cur: cur.execute("SELECT 1"))


@pytest.mark.parametrize(
    ("setting", "refusal"),
    [
        ("database", r'database "geotasks_no_such_db" does not exist'),
        ("role", r'role "geotasks_no_such_role" does not exist'),
    ],
)
def test_a_wrong_setting_fails_at_once_with_what_postgres_said(
    database_url: str, setting: str, refusal: str
) -> None:
    # Given the URL of a database, or as a role, that does not exist
    parts = urlsplit(database_url)
    if setting == "database":
        url = urlunsplit(parts._replace(path="/geotasks_no_such_db"))
    else:
        host = parts.netloc.rpartition("@")[2]
        url = urlunsplit(parts._replace(netloc=f"geotasks_no_such_role@{host}"))
    database = Database(url)

    # When a unit of work runs, Then it fails on the first attempt, naming the setting
    started = time.monotonic()
    with pytest.raises(DatabaseMisconfigured, match=refusal) as excinfo:
        database.transaction(lambda cur: cur.execute("SELECT 1"))
    assert time.monotonic() - started < 0.5
    assert "GEOTASKS_DATABASE_URL" in str(excinfo.value)
    assert not isinstance(excinfo.value, TransientError)


def test_a_missing_schema_fails_at_once_and_says_how_to_create_it(empty_database_url: str) -> None:
    database = Database(empty_database_url)
    with pytest.raises(DatabaseMisconfigured, match="geotasks db init"):
        database.transaction(lambda cur: cur.execute("SELECT * FROM geotasks.job"))
    database.close()


def test_the_pool_never_opens_more_than_its_maximum(database: Database) -> None:
    # Given a pool of 2 and 6 threads that each hold a connection for a while
    pool = Database(database.url, max_connections=2)
    barrier = threading.Barrier(6)

    def work() -> None:
        barrier.wait()
        pool.transaction(lambda cur: cur.execute("SELECT pg_sleep(0.05)"))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then every unit of work ran, on at most 2 connections
    assert len(pool._idle) <= 2
    pool.close()


def test_password_is_redacted_in_repr_and_errors() -> None:
    database = Database("postgresql://app:s3cret@127.0.0.1:1/db", attempts=1, connect_timeout_s=1)
    assert "s3cret" not in repr(database)
    with pytest.raises(DatabaseUnavailable) as excinfo:
        database.transaction(lambda cur: None)
    assert "s3cret" not in str(excinfo.value)


def test_a_single_statement_unit_commits_and_stays_atomic(database: Database) -> None:
    # Given a table
    database.transaction(lambda cur: cur.execute("CREATE TABLE t (v int PRIMARY KEY)"))

    # When one string of two statements runs as a single statement and the second one fails
    with pytest.raises(DatabaseError, match="duplicate key"):
        database.transaction(
            lambda cur: cur.execute("INSERT INTO t VALUES (1); INSERT INTO t VALUES (1)"),
            single_statement=True,
        )

    # Then neither is kept (Postgres ran them as one implicit transaction)
    count = "SELECT count(*) FROM t"
    assert database.transaction(lambda cur: (cur.execute(count), cur.fetchone())[1]) == (0,)

    # And a successful one is committed, leaving the pooled connection in transaction mode
    database.transaction(lambda cur: cur.execute("INSERT INTO t VALUES (2)"), single_statement=True)
    assert database.transaction(lambda cur: (cur.execute(count), cur.fetchone())[1]) == (1,)
    with database.connection() as conn:
        assert conn.autocommit is False


def test_a_prepared_statement_is_prepared_once_per_connection_and_survives_rollback(
    database: Database,
) -> None:
    # Given a statement with named parameters, one of them used twice, and a literal %
    statement = PreparedStatement(
        "geotasks_test_add", "SELECT %(a)s::int + %(b)s::int + %(a)s::int, '100%%'"
    )

    # When it runs in a transaction that is rolled back, then again on the same connection
    def run_then_fail(cur: psycopg2.extensions.cursor) -> None:
        execute_prepared(cur, statement, {"a": 1, "b": 2})
        assert cur.fetchone() == (4, "100%")
        raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        database.transaction(run_then_fail, attempts=1)

    def run(cur: psycopg2.extensions.cursor) -> tuple[object, ...]:
        execute_prepared(cur, statement, {"a": 10, "b": 5}, prefix="SELECT 1;\n")
        cur.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = %s", [statement.name])
        prepared = cur.fetchone()
        return prepared if prepared is not None else ()

    # Then the second run reuses the statement prepared by the first (one connection in the
    # pool), and the session holds it once
    assert database.transaction(run, single_statement=True) == (1,)
    with database.connection() as conn:
        assert statement.name in getattr(conn, "prepared", set())
