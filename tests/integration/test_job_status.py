"""Job status in Postgres: the guarded upsert, hooks out of order, expiry, cancel, progress."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from dramatiq.broker import MessageProxy
from dramatiq.brokers.stub import StubBroker
from dramatiq.message import Message
from dramatiq.middleware import SkipMessage

from geotasks.errors import JobFailed, JobNotFound, JobSkipped, ResultExpired
from geotasks.job_model import JobState, transition_allowed
from geotasks.jobs import Job
from geotasks.middleware.job_status import JobStatus, mark_throttled
from geotasks.postgres.job_status import JobStore
from geotasks.postgres.pool import Database
from geotasks.postgres.results import PostgresBackend, delete_expired
from geotasks.settings import Settings
from tests.integration.conftest import Stack

S = JobState
TTL_MS = 60_000
STORED_STATES = [s for s in JobState if s is not S.UNKNOWN]


def test_the_sql_rule_and_the_python_rule_agree_on_every_transition(database: Database) -> None:
    # Given every pair of (stored state, attempt) and (new state, attempt), and no row at all
    cases = [
        (current, current_attempt, new, new_attempt)
        for current in [None, *STORED_STATES]
        for new in STORED_STATES
        for current_attempt, new_attempt in itertools.product(range(3), repeat=2)
    ]

    def evaluate(cur: Any) -> list[bool]:
        cur.execute(
            "SELECT geotasks.job_transition_allowed(c, ca, n, na) "
            "FROM unnest(%s::text[], %s::int[], %s::text[], %s::int[]) "
            "WITH ORDINALITY AS t(c, ca, n, na, i) ORDER BY i",
            [
                [str(c[0]) if c[0] else None for c in cases],
                [c[1] for c in cases],
                [str(c[2]) for c in cases],
                [c[3] for c in cases],
            ],
        )
        return [row[0] for row in cur.fetchall()]

    # Then Postgres decides each exactly as transition_allowed does
    in_sql = database.transaction(evaluate)
    in_python = [transition_allowed(*case) for case in cases]
    disagreements = [c for c, a, b in zip(cases, in_sql, in_python, strict=True) if a != b]
    assert disagreements == []


class Hooks:
    """Calls JobStatus's hooks for one message the way a sender and workers would."""

    def __init__(self, database: Database) -> None:
        self.broker = StubBroker()
        self.middleware = JobStatus(store=JobStore(database), result_ttl_ms=TTL_MS)
        self.message: Message[Any] = Message(
            queue_name="geo", actor_name="buffer_features", args=(), kwargs={}, options={}
        )

    def delivery(self, attempt: int) -> MessageProxy:
        return MessageProxy(self.message.copy(options={"retries": attempt}))

    def sent(self) -> Callable[[], None]:
        return lambda: self.middleware.after_enqueue(self.broker, self.message, None)

    def retried(self, attempt: int, delay_ms: int = 1000) -> Callable[[], None]:
        copy = self.message.copy(options={"retries": attempt, "eta": int(time.time() * 1000)})
        return lambda: self.middleware.after_enqueue(self.broker, copy, delay_ms)

    def started(self, attempt: int) -> Callable[[], None]:
        return lambda: self.middleware.before_process_message(self.broker, self.delivery(attempt))

    def succeeded(self, attempt: int) -> Callable[[], None]:
        return lambda: self.middleware.after_process_message(self.broker, self.delivery(attempt))

    def failed(self, attempt: int) -> Callable[[], None]:
        def nack() -> None:
            delivery = self.delivery(attempt)
            delivery.fail()
            delivery.stuff_exception(ValueError("bad input"))
            self.middleware.after_nack(self.broker, delivery)

        return nack


@pytest.mark.parametrize(
    ("life", "final", "final_attempt"),
    [
        (lambda h: [h.sent(), h.started(0), h.succeeded(0)], S.SUCCESS, 0),
        (
            lambda h: [h.sent(), h.started(0), h.retried(1), h.started(1), h.succeeded(1)],
            S.SUCCESS,
            1,
        ),
        (lambda h: [h.sent(), h.started(0), h.retried(1), h.started(1)], S.STARTED, 1),
        (lambda h: [h.sent(), h.started(0), h.failed(1)], S.FAILURE, 1),
    ],
    ids=["success", "retried-success", "retried-running", "failure"],
)
def test_hooks_delivered_in_any_order_end_in_the_furthest_state(
    database: Database,
    life: Callable[[Hooks], list[Callable[[], None]]],
    final: JobState,
    final_attempt: int,
) -> None:
    # Given the hooks of one message's life, delivered in many orders (each to a new job)
    orders = list(itertools.permutations(range(len(life(Hooks(database))))))
    for order in random.Random(11).sample(orders, min(len(orders), 24)):
        hooks = Hooks(database)
        steps = life(hooks)

        # When they reach Postgres in that order
        for index in order:
            steps[index]()

        # Then the job is where the in-order life leaves it: never moved backwards
        info = hooks.middleware.store.get(hooks.message.message_id)
        assert info is not None
        assert (info.status, info.attempt) == (final, final_attempt), order


def test_a_late_pending_does_not_overwrite_success_but_timestamps_stay(database: Database) -> None:
    # Given a job whose worker finished before the sender recorded PENDING
    hooks = Hooks(database)
    hooks.started(0)()
    hooks.succeeded(0)()

    # When the sender's PENDING arrives
    hooks.sent()()

    # Then the job is still SUCCESS with its start and finish times
    info = hooks.middleware.store.get(hooks.message.message_id)
    assert info is not None
    assert info.status is S.SUCCESS
    assert info.started_at is not None
    assert info.finished_at is not None
    assert info.started_at <= info.finished_at
    assert info.runs == 1


def test_retrying_records_the_attempt_and_the_next_run_time(database: Database) -> None:
    hooks = Hooks(database)
    hooks.sent()()
    hooks.started(0)()
    before = time.time()
    hooks.retried(1, delay_ms=5000)()

    info = hooks.middleware.store.get(hooks.message.message_id)
    assert info is not None
    assert (info.status, info.attempt, info.runs) == (S.RETRYING, 1, 1)
    assert info.retrying_at is not None
    assert info.next_at is not None
    assert before - 1 < info.next_at.timestamp() < before + 2


def test_a_throttled_message_is_throttled_then_started_not_skipped(database: Database) -> None:
    # Given a delivery that a rate limiter re-enqueues for later, then skips
    hooks = Hooks(database)
    hooks.sent()()
    delivery = hooks.delivery(0)
    start_at_ms = int(time.time() * 1000) + 60_000
    mark_throttled(delivery, start_at_ms)
    copy = delivery.copy()
    hooks.middleware.after_enqueue(hooks.broker, copy, 60_000)
    hooks.middleware.after_skip_message(hooks.broker, delivery)

    # Then the job reads THROTTLED with its slot as the next run time, not SKIPPED
    info = hooks.middleware.store.get(hooks.message.message_id)
    assert info is not None
    assert info.status is S.THROTTLED
    assert info.next_at is not None
    assert abs(info.next_at.timestamp() * 1000 - start_at_ms) < 1

    # And when the re-enqueued copy runs, fails and is retried, that reads RETRYING
    redelivery = MessageProxy(copy)
    hooks.middleware.before_process_message(hooks.broker, redelivery)
    redelivery.options["retries"] = 1
    hooks.middleware.after_enqueue(hooks.broker, redelivery.copy(), 1000)
    info = hooks.middleware.store.get(hooks.message.message_id)
    assert info is not None
    assert (info.status, info.attempt) == (S.RETRYING, 1)
    assert info.throttled_at is not None


def test_an_id_never_seen_is_unknown_and_an_expired_one_is_expired(
    database: Database, settings: Settings, backend: PostgresBackend
) -> None:
    # Given a job that succeeded with a result living 1 ms
    hooks = Hooks(database)
    hooks.broker.actor_options.add("result_ttl")
    finished = hooks.delivery(0)
    finished.options["result_ttl"] = 1
    hooks.middleware.before_process_message(hooks.broker, finished)
    backend.store_result(finished, {"area_m2": 12.5}, 1)
    hooks.middleware.after_process_message(hooks.broker, finished)
    time.sleep(0.01)
    job = Job(hooks.message.message_id, database=database, settings=settings)

    # Then it reads EXPIRED (even before the sweeper ran), and its result says so
    assert job.status is S.EXPIRED
    assert job.ready()
    with pytest.raises(ResultExpired):
        _ = job.result

    # While an id that was never sent reads UNKNOWN
    never = Job("00000000-0000-0000-0000-000000000000", database=database, settings=settings)
    assert never.status is S.UNKNOWN
    assert not never.ready()
    with pytest.raises(JobNotFound):
        never.info()

    # When the sweeper runs, the job keeps a tombstone that still reads EXPIRED
    counts = delete_expired(database, retention_s=3600)
    assert (counts.results, counts.jobs_expired, counts.tombstones_deleted) == (1, 1, 0)
    info = job.info()
    assert info.status is S.EXPIRED
    assert info.expired_at is not None
    assert info.started_at is not None

    # And once the retention period is over, the id is forgotten: UNKNOWN
    assert delete_expired(database, retention_s=0).tombstones_deleted == 1
    assert job.status is S.UNKNOWN


def test_cancel_applies_only_to_a_job_waiting_to_start(
    database: Database, settings: Settings, backend: PostgresBackend
) -> None:
    waiting, running = Hooks(database), Hooks(database)
    waiting.sent()()
    running.sent()()
    running.started(0)()
    job = Job(waiting.message.message_id, database=database, settings=settings)

    # When both are cancelled
    assert job.cancel()
    assert not Job(running.message.message_id, database=database, settings=settings).cancel()
    assert not Job("never-sent", database=database, settings=settings).cancel()

    # Then only the waiting one is CANCELLED, and getting its result says so at once
    assert job.status is S.CANCELLED
    assert running.middleware.store.get(running.message.message_id).status is S.STARTED  # type: ignore[union-attr]
    with pytest.raises(JobSkipped) as excinfo:
        job.get(timeout=5)
    assert excinfo.value.status == "CANCELLED"

    # And a worker that receives the cancelled message skips it without recording STARTED
    delivery = waiting.delivery(0)
    with pytest.raises(SkipMessage):
        waiting.middleware.before_process_message(waiting.broker, delivery)
    waiting.middleware.after_skip_message(waiting.broker, delivery)
    assert job.info().started_at is None
    assert job.status is S.CANCELLED


def test_get_on_a_cancelled_job_wakes_the_blocked_client(
    database: Database, settings: Settings, backend: PostgresBackend
) -> None:
    # Given a client blocked in get() on a pending job
    hooks = Hooks(database)
    hooks.sent()()
    job = Job(hooks.message.message_id, database=database, settings=settings)
    outcome: list[BaseException] = []

    def client() -> None:
        try:
            job.get(timeout=10)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    time.sleep(0.3)

    # When another process cancels it
    started = time.monotonic()
    assert Job(job.id, database=database, settings=settings).cancel()
    thread.join(timeout=5)

    # Then the client is woken by the notification, not by its timeout
    assert time.monotonic() - started < 1
    assert isinstance(outcome[0], JobSkipped)


def test_progress_is_written_only_while_started_and_at_most_twice_a_second(
    database: Database, settings: Settings, backend: PostgresBackend
) -> None:
    from geotasks.middleware.running import progress

    hooks = Hooks(database)
    hooks.sent()()
    job = Job(hooks.message.message_id, database=database, settings=settings)

    # Outside a worker, progress() does nothing (an actor called as a plain function)
    progress(1, 10)
    assert job.progress is None

    # Inside a running message, the first report is written and rapid ones are coalesced
    delivery = hooks.delivery(0)
    hooks.middleware.before_process_message(hooks.broker, delivery)
    progress(1, 10)
    progress(2, 10)
    reported = job.progress
    assert reported is not None
    assert (reported.done, reported.total, reported.fraction) == (1, 10, 0.1)
    assert job.status is S.STARTED

    # The final report always goes through, and finishing keeps it
    progress(10, 10)
    assert job.progress is not None
    assert job.progress.done == 10
    hooks.middleware.after_process_message(hooks.broker, delivery)
    progress(11, 10)
    assert job.status is S.SUCCESS
    assert job.progress is not None
    assert job.progress.done == 10


def test_recent_jobs_filter_by_status_and_actor(database: Database) -> None:
    store = JobStore(database)
    a, b, c = Hooks(database), Hooks(database), Hooks(database)
    for hooks in (a, b, c):
        hooks.sent()()
    b.started(0)()
    c.started(0)()
    c.failed(0)()

    assert [i.message_id for i in store.recent()] == [h.message.message_id for h in (c, b, a)]
    assert [i.message_id for i in store.recent(statuses=[S.FAILURE, S.STARTED])] == [
        c.message.message_id,
        b.message.message_id,
    ]
    assert store.recent(actor_name="clip_features") == []
    assert len(store.recent(limit=1)) == 1
    failed = store.recent(statuses=[S.FAILURE])[0]
    assert failed.error is not None
    assert (failed.error.type_name, failed.error.message) == ("ValueError", "bad input")


def test_status_through_a_worker_records_a_retry(stack: Stack) -> None:
    # Given an actor that fails once with a transient error, then succeeds
    calls = []

    @stack.actor(max_retries=3, min_backoff=100, max_backoff=100)
    def flaky(value: int) -> int:
        calls.append(value)
        if len(calls) == 1:
            raise ConnectionError("database went away")
        return value * 2

    # When it runs on a worker
    with stack.worker():
        job = stack.job(flaky.send(21).message_id)
        assert job.get(timeout=10) == 42

    # Then its status records the retry
    info = job.info()
    assert (info.status, info.attempt, info.runs) == (S.SUCCESS, 1, 2)
    assert info.pending_at is not None
    assert info.retrying_at is not None
    assert info.started_at is not None
    assert info.finished_at is not None
    assert info.pending_at <= info.retrying_at <= info.started_at <= info.finished_at


@pytest.mark.parametrize("max_retries", [0, 1])
def test_a_failure_records_the_attempt_that_ran(stack: Stack, max_retries: int) -> None:
    # Given an actor that always fails with an error it does not list in `throws`
    @stack.actor(max_retries=max_retries, min_backoff=10, max_backoff=10)
    def always_fails() -> None:
        raise ValueError("no such layer")

    # When it runs on a worker until Retries gives up
    with stack.worker():
        job = stack.job(always_fails.send().message_id)
        with pytest.raises(JobFailed):
            job.get(timeout=10)

    # Then its FAILURE names the last attempt that ran, not the next one Retries counted
    # before it decided against retrying
    info = job.info()
    assert (info.status, info.attempt, info.runs) == (S.FAILURE, max_retries, max_retries + 1)
