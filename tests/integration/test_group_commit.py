"""Group commit: the writes of threads that are ready together share one statement and commit,
a lone write goes at once, and every job reads as if its rows had been written one by one."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import dramatiq
import dramatiq.broker
import psycopg2
import pytest
from dramatiq.broker import Broker, MessageProxy
from dramatiq.brokers.stub import StubBroker
from dramatiq.message import Message
from dramatiq.middleware.threading import raise_thread_exception

from geotasks.broker import build_middleware
from geotasks.errors import DatabaseError, DatabaseUnavailable, TransientError
from geotasks.job_model import JobState
from geotasks.middleware.deliveries import DeliveryLimit
from geotasks.middleware.running import set_running_job
from geotasks.postgres.group_commit import GroupCommit
from geotasks.postgres.job_status import JobRun, JobStore
from geotasks.postgres.pool import Database
from geotasks.postgres.results import PostgresBackend
from geotasks.settings import Settings
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


# The poison guard's counts and STARTED --------------------------------------------------------


@pytest.fixture
def broker(database: Database, settings: Settings) -> Iterator[Broker]:
    broker = StubBroker(middleware=build_middleware(settings, database))
    previous = dramatiq.broker.global_broker
    dramatiq.set_broker(broker)

    @dramatiq.actor(broker=broker)
    def plain() -> None: ...

    try:
        yield broker
    finally:
        dramatiq.broker.global_broker = previous
        broker.close()


def middleware_of(broker: Broker, kind: type[Any]) -> Any:
    return next(m for m in broker.middleware if isinstance(m, kind))


#: Histories a job may have when a worker starts it: (state, attempt) written before.
HISTORIES: dict[str, list[tuple[JobState, int]]] = {
    "no-row": [],
    "pending": [(JobState.PENDING, 0)],
    "throttled": [(JobState.PENDING, 0), (JobState.THROTTLED, 0)],
    "retrying": [(JobState.PENDING, 0), (JobState.STARTED, 0), (JobState.RETRYING, 1)],
    "finished": [(JobState.PENDING, 0), (JobState.STARTED, 0), (JobState.SUCCESS, 0)],
}

JOB_COLUMNS = (
    "status, attempt, runs, actor_name, queue_name, error_type, error_message, progress_done,"
    " pending_at IS NULL, throttled_at IS NULL, retrying_at IS NULL, started_at IS NULL,"
    " finished_at IS NULL, next_at IS NULL, expires_at IS NULL, progress_at IS NULL"
)


def give_history(store: JobStore, message_id: str, history: list[tuple[JobState, int]]) -> None:
    for status, attempt in history:
        store.transition(
            message_id,
            actor_name="plain",
            queue_name="default",
            status=status,
            attempt=attempt,
            sent_at_ms=SENT_AT_MS,
            next_at_ms=SENT_AT_MS if status is JobState.RETRYING else None,
            ttl_ms=TTL_MS,
        )


def job_row(database: Database, message_id: str) -> tuple[Any, ...] | None:
    def read(cur: Any) -> tuple[Any, ...] | None:
        cur.execute(f"SELECT {JOB_COLUMNS} FROM geotasks.job WHERE message_id = %s", [message_id])
        row = cur.fetchone()
        return tuple(row) if row is not None else None

    return database.transaction(read)


def deliveries_row(database: Database, message_id: str) -> tuple[Any, ...] | None:
    def read(cur: Any) -> tuple[Any, ...] | None:
        cur.execute(
            "SELECT attempt, deliveries, solo_deliveries FROM geotasks.message_deliveries"
            " WHERE message_id = %s",
            [message_id],
        )
        row = cur.fetchone()
        return tuple(row) if row is not None else None

    return database.transaction(read)


def delivery(message_id: str, attempt: int) -> MessageProxy:
    return MessageProxy(
        Message(
            "default",
            "plain",
            (),
            {},
            {"retries": attempt},
            message_id=message_id,
            message_timestamp=SENT_AT_MS,
        )
    )


def start(broker: Broker, message: MessageProxy) -> None:
    """Run the before-hooks of a delivery, as a worker thread does before the actor."""
    broker.emit_before("process_message", message)
    set_running_job(None)


def test_deliveries_counted_together_leave_every_job_as_one_by_one(
    broker: Broker, database: Database, database_url: str
) -> None:
    # Given jobs with every history, twice: one copy to start alone, one to start together
    guard = middleware_of(broker, DeliveryLimit)
    store = JobStore(database)
    names = list(HISTORIES)
    alone = {name: str(uuid.uuid4()) for name in names}
    together = {name: str(uuid.uuid4()) for name in names}
    for name, history in HISTORIES.items():
        give_history(store, alone[name], history)
        give_history(store, together[name], history)
    attempt = {name: history[-1][1] if history else 0 for name, history in HISTORIES.items()}

    # When the first copies are delivered one by one, and the second ones all at once
    for name in names:
        start(broker, delivery(alone[name], attempt[name]))
    assert guard.store.group.batch_statements == 0
    write_together(
        database_url,
        "geotasks.message_deliveries",
        guard.store.group,
        lambda: start(broker, delivery(str(uuid.uuid4()), 0)),
        [
            lambda name=name: start(broker, delivery(together[name], attempt[name]))
            for name in names
        ],
    )

    # Then the second copies were counted (and started) in one statement, one transaction,
    # and read like the first ones
    assert guard.store.group.batch_statements == 1
    assert (
        transactions_of(
            database, "geotasks.message_deliveries", "message_id", list(together.values())
        )
        == 1
    )
    for name in names:
        assert deliveries_row(database, together[name]) == deliveries_row(database, alone[name])
        assert job_row(database, together[name]) == job_row(database, alone[name]), name
    assert job_row(database, together["pending"])[:3] == (JobState.STARTED, 0, 1)
    assert job_row(database, together["finished"])[0] == JobState.SUCCESS


# Results with SUCCESS ------------------------------------------------------------------------


def finish(backend: PostgresBackend, message_id: str, attempt: int) -> None:
    """Store a result as a worker thread that ran the job does: with the job's SUCCESS."""
    message = Message("default", "plain", (), {}, {}, message_id=message_id)
    backend.store_success(
        message,
        {"id": message_id, "attempt": attempt},
        TTL_MS,
        job=JobRun(message_id, "plain", "default", attempt, SENT_AT_MS),
    )


def result_row(database: Database, message_id: str) -> tuple[Any, ...] | None:
    def read(cur: Any) -> tuple[Any, ...] | None:
        cur.execute(
            "SELECT kind, media_type, size_bytes, chunk_bytes, encode(data, 'escape'),"
            " error_type, error_message, error_traceback,"
            " expires_at - stored_at BETWEEN interval '59 s' AND interval '61 s'"
            " FROM geotasks.result WHERE message_id = %s",
            [message_id],
        )
        row = cur.fetchone()
        return tuple(row) if row is not None else None

    return database.transaction(read)


#: Histories a job may have when its result is stored: (state, attempt) written before.
RESULT_HISTORIES: dict[str, list[tuple[JobState, int]]] = {
    "no-row": [],
    "never-pending": [(JobState.STARTED, 0)],
    "started": [(JobState.PENDING, 0), (JobState.STARTED, 0)],
    "retried": [
        (JobState.PENDING, 0),
        (JobState.STARTED, 0),
        (JobState.RETRYING, 1),
        (JobState.STARTED, 1),
    ],
    "not-started": [(JobState.PENDING, 0)],
    "finished": [(JobState.PENDING, 0), (JobState.STARTED, 0), (JobState.SUCCESS, 0)],
    "failed": [(JobState.PENDING, 0), (JobState.STARTED, 0), (JobState.FAILURE, 0)],
}


def test_results_stored_together_leave_every_job_and_result_as_one_by_one(
    database: Database, database_url: str, tmp_path: Path, listeners_closed: None
) -> None:
    # Given jobs with every history, started, twice: one copy to finish alone, one together
    backend = PostgresBackend(database=database, spool_dir=tmp_path)
    store = JobStore(database)
    histories = RESULT_HISTORIES
    alone = {name: str(uuid.uuid4()) for name in histories}
    together = {name: str(uuid.uuid4()) for name in histories}
    attempt = {name: history[-1][1] if history else 0 for name, history in histories.items()}
    for name, history in histories.items():
        give_history(store, alone[name], history)
        give_history(store, together[name], history)

    # And a client blocked on each result of the second copies
    woken: dict[str, Any] = {}

    def wait_for(message_id: str) -> None:
        woken[message_id] = backend.wait(message_id, timeout_s=30)

    waiters = [threading.Thread(target=wait_for, args=(mid,)) for mid in together.values()]
    for waiter in waiters:
        waiter.start()

    # When the first copies finish one by one, and the second ones all at once
    for name in histories:
        finish(backend, alone[name], attempt[name])
    assert backend.store.successes.group.batch_statements == 0
    write_together(
        database_url,
        "geotasks.result",
        backend.store.successes.group,
        lambda: finish(backend, str(uuid.uuid4()), 0),
        [lambda name=name: finish(backend, together[name], attempt[name]) for name in histories],
    )

    # Then the second copies' results and statuses committed in one statement and transaction
    assert backend.store.successes.group.batch_statements == 1
    ids = list(together.values())
    assert transactions_of(database, "geotasks.result", "message_id", ids) == 1
    # And every job and result reads like its twin's
    for name in histories:
        expected = result_row(database, alone[name])
        assert expected is not None
        assert result_row(database, together[name]) == (
            *expected[:4],
            expected[4].replace(alone[name], together[name]),
            *expected[5:],
        ), name
        assert job_row(database, together[name]) == job_row(database, alone[name]), name
    assert job_row(database, together["started"])[0] == JobState.SUCCESS
    assert job_row(database, together["failed"])[0] == JobState.FAILURE
    # And every blocked client was woken by the statement's notifications
    for waiter in waiters:
        waiter.join(timeout=30)
    assert all(woken[message_id] is not None for message_id in ids)


def test_a_result_too_large_to_share_a_statement_is_stored_alone(
    database: Database, tmp_path: Path, listeners_closed: None
) -> None:
    # Given a result larger than a shared statement takes
    backend = PostgresBackend(database=database, spool_dir=tmp_path)
    store = JobStore(database)
    message_id = str(uuid.uuid4())
    give_history(store, message_id, [(JobState.PENDING, 0), (JobState.STARTED, 0)])
    message = Message("default", "plain", (), {}, {}, message_id=message_id)
    backend.store_success(
        message, "x" * 100_000, TTL_MS, job=JobRun(message_id, "plain", "default", 0, SENT_AT_MS)
    )

    # Then it went without the group commit, with SUCCESS, and reads back whole
    assert backend.store.successes.group.single_statements == 0
    assert job_row(database, message_id)[0] == JobState.SUCCESS
    assert backend.get_result(message) == "x" * 100_000


def test_a_busy_worker_shares_statements_and_every_job_ends_with_its_result(
    database: Database, settings: Settings, listeners_closed: None
) -> None:
    # Given a worker with 8 threads and the whole geotasks middleware stack
    broker = StubBroker(middleware=build_middleware(settings, database))
    previous = dramatiq.broker.global_broker
    dramatiq.set_broker(broker)
    broker.emit_after("process_boot")

    @dramatiq.actor(broker=broker, store_results=True, max_retries=0)
    def double(n: int) -> int:
        return 2 * n

    try:
        # When it runs 300 jobs
        messages = [double.send(n) for n in range(300)]
        worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=8)
        worker.start()
        try:
            results = [message.get_result(block=True, timeout=30_000) for message in messages]
        finally:
            worker.stop(timeout=10_000)
    finally:
        dramatiq.broker.global_broker = previous
        broker.close()

    # Then every job succeeded with its own result
    assert results == [2 * n for n in range(300)]
    store = JobStore(database)
    assert {store.get(m.message_id).status for m in messages} == {JobState.SUCCESS}
    # And the writers' statements add up: every count and every result went in one of them
    guard = middleware_of(broker, DeliveryLimit)
    backend = broker.get_results_backend()  # type: ignore[attr-defined]
    for group in (guard.store.group, backend.store.successes.group):
        assert group.single_statements + group.batch_statements <= 300


# Exceptions raised into a writer's thread (Dramatiq's time limit and shutdown notifications) -


class Interrupted(BaseException):
    """What Dramatiq raises into a worker thread (its Interrupt is a BaseException too)."""


class Recorder:
    """A group commit whose statements the test holds back, recording who wrote what."""

    def __init__(self, database: Database) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.interrupt_batches = False
        self.alone: list[str] = []
        self.together: list[list[str]] = []
        self.group: GroupCommit[str, str] = GroupCommit(
            database, write_one=self._write_one, write_many=self._write_many, key=lambda r: r
        )
        self.outcomes: dict[str, Any] = {}
        self.threads: dict[str, threading.Thread] = {}

    def _write_one(self, cur: Any, request: str) -> str:
        if request == "held":
            self.entered.set()
            assert self.release.wait(30)
        cur.execute("SELECT %s", [request])
        self.alone.append(request)
        return request

    def _write_many(self, cur: Any, requests: Sequence[str]) -> list[str]:
        cur.execute("SELECT %s", [list(requests)])
        if self.interrupt_batches:
            raise Interrupted
        self.together.append(list(requests))
        return list(requests)

    def start(self, request: str) -> None:
        def run() -> None:
            try:
                self.outcomes[request] = self.group.write(request)
            except Interrupted as exc:
                self.outcomes[request] = exc

        self.threads[request] = threading.Thread(target=run, daemon=True)
        self.threads[request].start()

    def queue_behind_a_held_write(self, requests: Sequence[str]) -> None:
        self.start("held")
        assert self.entered.wait(30)
        for count, request in enumerate(requests, start=1):
            self.start(request)
            wait_until(
                lambda queued=count: self.group.waiting == queued, what=f"{request} queues up"
            )

    def finish(self) -> None:
        self.release.set()
        for thread in self.threads.values():
            thread.join(timeout=30)
            assert not thread.is_alive(), "a writer was left asleep"


def test_a_writer_interrupted_as_it_takes_the_lead_passes_it_on(database: Database) -> None:
    # Given two writes queued behind one in flight, the first of them interrupted while asleep
    recorder = Recorder(database)
    recorder.queue_behind_a_held_write(["second", "third"])
    raise_thread_exception(recorder.threads["second"].ident, Interrupted)

    # When the write in flight ends (the lead goes to "second", which wakes into its exception)
    recorder.finish()

    # Then "second" fails alone, "third" is written, and the next write goes at once
    assert isinstance(recorder.outcomes["second"], Interrupted)
    assert recorder.outcomes["third"] == "third"
    assert recorder.group.write("fourth") == "fourth"
    assert recorder.alone == ["held", "third", "fourth"]


def test_a_leader_interrupted_during_its_statement_leaves_each_row_to_its_own_writer(
    database: Database,
) -> None:
    # Given three writes queued behind one in flight, whose shared statement will be interrupted
    recorder = Recorder(database)
    recorder.queue_behind_a_held_write(["a", "b", "c"])
    recorder.interrupt_batches = True

    # When the write in flight ends and "a" sends the statement of a, b and c
    recorder.finish()

    # Then "a" fails with the interruption; b and c, not interrupted, write their own rows
    assert isinstance(recorder.outcomes["a"], Interrupted)
    assert (recorder.outcomes["b"], recorder.outcomes["c"]) == ("b", "c")
    assert sorted(recorder.alone) == ["b", "c", "held"]
    assert recorder.together == []
    recorder.interrupt_batches = False
    assert recorder.group.write("d") == "d"
