"""Group commit: the writes of threads that are ready together share one statement and commit,
and a lone write goes at once."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg2
import pytest

from geotasks.errors import DatabaseError, DatabaseUnavailable, TransientError
from geotasks.postgres.group_commit import GroupCommit
from geotasks.postgres.pool import Database
from tests.waiting import wait_until

SENT_AT_MS = 1_795_000_000_000
TTL_MS = 60_000


@contextlib.contextmanager
def held_back(database_url: str, table: str) -> Iterator[Callable[[], int]]:
    """Writes to ``table`` wait for the end of the block; yields how many writers wait."""
    holder = psycopg2.connect(database_url)
    watcher = psycopg2.connect(database_url)
    watcher.autocommit = True

    def waiting_writers() -> int:
        with watcher.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return int(cur.fetchone()[0])

    try:
        with holder.cursor() as cur:
            cur.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        yield waiting_writers
    finally:
        holder.rollback()
        holder.close()
        watcher.close()


def write_together(
    database_url: str,
    table: str,
    group: GroupCommit[Any, Any],
    first: Callable[[], Any],
    others: Sequence[Callable[[], Any]],
) -> list[Any]:
    """Run ``first`` in a thread until its statement waits on ``table``, queue ``others`` (each
    in a thread) behind it, then let them go. Returns each one's outcome or exception."""
    outcomes: dict[int, Any] = {}

    def run(index: int, write: Callable[[], Any]) -> None:
        try:
            outcomes[index] = write()
        except Exception as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(0, first))]
    with held_back(database_url, table) as waiting_writers:
        threads[0].start()
        wait_until(lambda: waiting_writers() == 1, what="the first write waits on the table")
        for index, write in enumerate(others, start=1):
            threads.append(threading.Thread(target=run, args=(index, write)))
            threads[-1].start()
        wait_until(lambda: group.waiting == len(others), what="the other writes queue up")
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    return [outcomes[index] for index in range(len(threads))]


def transactions_of(database: Database, table: str, key: str, keys: Sequence[str]) -> int:
    """How many transactions wrote the rows of ``keys`` last (their distinct ``xmin``)."""

    def read(cur: Any) -> int:
        cur.execute(
            f"SELECT count(DISTINCT xmin::text) FROM {table} WHERE {key} = ANY (%s)", [list(keys)]
        )
        return int(cur.fetchone()[0])

    return database.transaction(read)


# The group commit itself, on a table of its own ---------------------------------------------


@pytest.fixture
def scratch(database: Database) -> GroupCommit[tuple[str, int], int]:
    """Adds ``value`` to the row ``key`` of a scratch table, whose values may not go negative."""
    database.transaction(
        lambda cur: cur.execute(
            "CREATE TABLE scratch (key text PRIMARY KEY, value integer NOT NULL CHECK (value >= 0))"
        )
    )
    upsert = (
        "INSERT INTO scratch AS s {rows} ON CONFLICT (key) DO UPDATE"
        " SET value = s.value + excluded.value RETURNING key, value"
    )

    def write_one(cur: Any, request: tuple[str, int]) -> int:
        cur.execute(upsert.format(rows="VALUES (%s, %s)"), request)
        return int(cur.fetchone()[1])

    def write_many(cur: Any, requests: Sequence[tuple[str, int]]) -> list[int]:
        cur.execute(
            upsert.format(rows="SELECT * FROM unnest(%s::text[], %s::integer[])"),
            [[key for key, _ in requests], [value for _, value in requests]],
        )
        values = dict(cur.fetchall())
        return [values[key] for key, _ in requests]

    return GroupCommit(
        database, write_one=write_one, write_many=write_many, key=lambda request: request[0]
    )


def test_a_lone_write_goes_at_once_with_the_single_row_statement(
    database: Database, scratch: GroupCommit[tuple[str, int], int]
) -> None:
    # When one thread writes with no other write in flight
    started = time.monotonic()
    value = scratch.write(("a", 5))

    # Then its own single-row statement ran at once, and committed
    assert time.monotonic() - started < 1.0
    assert value == 5
    assert (scratch.single_statements, scratch.batch_statements) == (1, 0)
    assert scratch.waiting == 0


def test_writes_arriving_while_one_is_in_flight_share_the_next_statement(
    database: Database, database_url: str, scratch: GroupCommit[tuple[str, int], int]
) -> None:
    # Given a write in flight, and five more that arrive meanwhile
    keys = [f"k{i}" for i in range(6)]
    writes = [lambda key=key: scratch.write((key, 1)) for key in keys]

    # When the first one's statement commits
    outcomes = write_together(database_url, "scratch", scratch, writes[0], writes[1:])

    # Then the five went in one statement and one transaction, each with its own outcome
    assert outcomes == [1] * 6
    assert (scratch.single_statements, scratch.batch_statements) == (1, 1)
    assert transactions_of(database, "scratch", "key", keys[1:]) == 1
    assert transactions_of(database, "scratch", "key", keys) == 2


def test_two_writes_of_one_row_never_share_a_statement(
    database: Database, database_url: str, scratch: GroupCommit[tuple[str, int], int]
) -> None:
    # Given a write in flight, and three more behind it, two of them to the same row
    outcomes = write_together(
        database_url,
        "scratch",
        scratch,
        lambda: scratch.write(("first", 1)),
        [
            lambda: scratch.write(("twice", 1)),
            lambda: scratch.write(("other", 1)),
            lambda: scratch.write(("twice", 10)),
        ],
    )

    # Then the second write of that row went in a statement after the first's, and both count
    assert outcomes == [1, 1, 1, 11]
    assert (scratch.single_statements, scratch.batch_statements) == (2, 1)


def test_a_rejected_statement_is_written_row_by_row_so_a_bad_row_fails_alone(
    database: Database, database_url: str, scratch: GroupCommit[tuple[str, int], int]
) -> None:
    # Given a write in flight, and three behind it, one of which Postgres will reject
    outcomes = write_together(
        database_url,
        "scratch",
        scratch,
        lambda: scratch.write(("first", 1)),
        [
            lambda: scratch.write(("good", 1)),
            lambda: scratch.write(("bad", -1)),
            lambda: scratch.write(("also good", 2)),
        ],
    )

    # Then the bad row's writer gets Postgres' error, and its neighbours are written
    assert outcomes[:2] == [1, 1] and outcomes[3] == 2
    assert isinstance(outcomes[2], DatabaseError)
    assert not isinstance(outcomes[2], TransientError)
    assert "scratch_value_check" in str(outcomes[2])
    assert scratch.batch_statements == 1
    assert scratch.single_statements == 4

    def rows(cur: Any) -> dict[str, int]:
        cur.execute("SELECT key, value FROM scratch")
        return dict(cur.fetchall())

    assert database.transaction(rows) == {"first": 1, "good": 1, "also good": 2}


def test_when_postgres_is_unreachable_every_writer_of_the_statement_gets_a_transient_error(
    database: Database, database_url: str, scratch: GroupCommit[tuple[str, int], int]
) -> None:
    # Given a pool that gives up at once, and a batch statement whose connection breaks
    unreachable = Database(database_url, attempts=1)

    def write_many(cur: Any, requests: Sequence[tuple[str, int]]) -> list[int]:
        cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        raise AssertionError("the connection survived")

    group: GroupCommit[tuple[str, int], int] = GroupCommit(
        unreachable,
        write_one=scratch._write_one,
        write_many=write_many,
        key=lambda request: request[0],
    )
    try:
        # When three writes queue behind one in flight
        outcomes = write_together(
            database_url,
            "scratch",
            group,
            lambda: group.write(("first", 1)),
            [lambda key=key: group.write((key, 1)) for key in "abc"],
        )
    finally:
        unreachable.close()

    # Then each of the three gets DatabaseUnavailable (which Results hands to Retries), and
    # none was written on its own
    assert outcomes[0] == 1
    for outcome in outcomes[1:]:
        assert isinstance(outcome, DatabaseUnavailable)
        assert isinstance(outcome, TransientError)
    assert len({id(outcome) for outcome in outcomes[1:]}) == 3
    assert (group.single_statements, group.batch_statements) == (1, 1)
