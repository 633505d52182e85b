"""STARTED is recorded by the poison guard's count statement (one round trip) unless a middleware
in between may still hold the message back (a rate limit, a periodic tick, a middleware that does
not say) or the delivery is a suspect; that statement leaves a job as the transition would."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import dramatiq
import dramatiq.broker
import pytest
from dramatiq.broker import Broker, MessageProxy
from dramatiq.brokers.stub import StubBroker
from dramatiq.message import Message
from dramatiq.middleware import Middleware, SkipMessage

from geotasks.broker import build_middleware
from geotasks.job_model import JobState
from geotasks.middleware.deliveries import DeliveryLimit
from geotasks.middleware.job_status import JobStatus
from geotasks.postgres.job_status import JobStore
from geotasks.postgres.pool import Database
from geotasks.settings import Settings


@pytest.fixture
def broker(database: Database, settings: Settings) -> Iterator[Broker]:
    broker = StubBroker(middleware=build_middleware(settings, database))
    previous = dramatiq.broker.global_broker
    dramatiq.set_broker(broker)
    try:
        yield broker
    finally:
        dramatiq.broker.global_broker = previous
        broker.close()


class StatusWrites:
    """Records the states ``JobStatus`` writes with statements of its own."""

    def __init__(self, store: JobStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.states: list[JobState] = []
        transition = store.transition

        def recording(message_id: str, **kwargs: Any) -> Any:
            self.states.append(kwargs["status"])
            return transition(message_id, **kwargs)

        monkeypatch.setattr(store, "transition", recording)


def middleware_of(broker: Broker, kind: type[Middleware]) -> Any:
    return next(m for m in broker.middleware if isinstance(m, kind))


def deliver(broker: Broker, actor_name: str, **options: Any) -> MessageProxy:
    message = MessageProxy(
        Message(
            queue_name="default",
            actor_name=actor_name,
            args=(),
            kwargs={},
            options=options,
            message_id=str(uuid.uuid4()),
        )
    )
    broker.emit_before("process_message", message)
    return message


def deliveries_of(database: Database, message_id: str) -> int:
    def read(cur: Any) -> int:
        cur.execute(
            "SELECT deliveries FROM geotasks.message_deliveries WHERE message_id = %s",
            [message_id],
        )
        row = cur.fetchone()
        return int(row[0]) if row else 0

    return database.transaction(read)


def test_a_plain_delivery_is_counted_and_started_in_the_guards_statement(
    broker: Broker, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an actor with no rate limit, and the whole geotasks middleware stack
    @dramatiq.actor(broker=broker)
    def plain() -> None: ...

    job_status = middleware_of(broker, JobStatus)
    writes = StatusWrites(job_status.store, monkeypatch)

    # When a delivery of it passes the before-hooks
    message = deliver(broker, "plain")

    # Then it is counted and STARTED, once, with no STARTED statement of JobStatus's own
    info = job_status.store.get(message.message_id)
    assert (info.status, info.runs) == (JobState.STARTED, 1)
    assert deliveries_of(database, message.message_id) == 1
    assert writes.states == []


def test_a_rate_limited_delivery_starts_only_after_the_rate_limiter(
    broker: Broker, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an actor with a rate limit (which could re-enqueue a delivery as THROTTLED)
    @dramatiq.actor(broker=broker, rate_limit="100/s")
    def limited() -> None: ...

    job_status = middleware_of(broker, JobStatus)
    writes = StatusWrites(job_status.store, monkeypatch)

    # When a delivery passes the before-hooks
    message = deliver(broker, "limited")

    # Then JobStatus wrote STARTED itself, after the rate limiter let it through
    assert writes.states == [JobState.STARTED]
    info = job_status.store.get(message.message_id)
    assert (info.status, info.runs) == (JobState.STARTED, 1)
    assert deliveries_of(database, message.message_id) == 1


def test_a_periodic_tick_starts_only_after_its_de_duplication(
    broker: Broker, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a message that carries a periodic tick (which de-duplication may skip)
    @dramatiq.actor(broker=broker)
    def ticking() -> None: ...

    job_status = middleware_of(broker, JobStatus)
    guard = middleware_of(broker, DeliveryLimit)
    message = MessageProxy(
        Message(
            queue_name="default",
            actor_name="ticking",
            args=(),
            kwargs={},
            options={"scheduled_at": "2026-11-24T12:00:00+00:00"},
        )
    )

    # Then STARTED does not ride on the guard's count
    assert not job_status._may_start_early(broker, message, guard)


def test_an_unknown_middleware_between_the_guard_and_job_status_holds_starts_back(
    database: Database, settings: Settings
) -> None:
    # Given a middleware, between the guard and JobStatus, that says nothing of what it does
    class Opaque(Middleware):
        pass

    middleware = build_middleware(settings, database)
    guard = next(m for m in middleware if isinstance(m, DeliveryLimit))
    job_status = next(m for m in middleware if isinstance(m, JobStatus))
    middleware.insert(middleware.index(job_status), Opaque())
    broker = StubBroker(middleware=middleware)
    message = MessageProxy(Message("default", "plain", (), {}, {}))

    # Then STARTED waits for its own hook; so it does with the guard placed after JobStatus
    assert not job_status._may_start_early(broker, message, guard)
    assert not job_status._may_start_early(
        StubBroker(middleware=[JobStatus(store=job_status.store, result_ttl_ms=1000), guard]),
        message,
        guard,
    )


def test_a_cancelled_job_counted_with_the_guards_statement_is_skipped(
    broker: Broker, database: Database
) -> None:
    # Given a job cancelled while it waited on its queue
    @dramatiq.actor(broker=broker)
    def plain() -> None: ...

    job_status = middleware_of(broker, JobStatus)
    message_id = str(uuid.uuid4())
    job_status.after_enqueue(broker, Message("default", "plain", (), {}, {}, message_id), None)
    assert job_status.store.cancel(message_id, ttl_ms=60_000)

    # When a delivery of it passes the before-hooks, then it is skipped and stays CANCELLED
    with pytest.raises(SkipMessage):
        deliver_with_id(broker, "plain", message_id)
    info = job_status.store.get(message_id)
    assert (info.status, info.runs) == (JobState.CANCELLED, 0)


def deliver_with_id(broker: Broker, actor_name: str, message_id: str) -> None:
    message = MessageProxy(Message("default", actor_name, (), {}, {}, message_id=message_id))
    broker.emit_before("process_message", message)


def test_a_suspects_started_waits_for_its_own_hook(
    broker: Broker, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a message whose earlier delivery died with its process (its count was never cleared)
    @dramatiq.actor(broker=broker)
    def plain() -> None: ...

    job_status = middleware_of(broker, JobStatus)
    message_id = str(uuid.uuid4())
    database.transaction(
        lambda cur: cur.execute(
            "INSERT INTO geotasks.message_deliveries (message_id, attempt) VALUES (%s, 0)",
            [message_id],
        )
    )
    writes = StatusWrites(job_status.store, monkeypatch)

    # When it is delivered again (to a process with one thread: it runs alone at once)
    deliver_with_id(broker, "plain", message_id)

    # Then the guard counted it without starting it, and JobStatus recorded STARTED itself
    assert deliveries_of(database, message_id) == 2
    assert writes.states == [JobState.STARTED]
    info = job_status.store.get(message_id)
    assert (info.status, info.runs) == (JobState.STARTED, 1)


JOB_COLUMNS = (
    "status, attempt, runs, actor_name, queue_name, error_type, error_message, progress_done,"
    " pending_at IS NULL, throttled_at IS NULL, retrying_at IS NULL, started_at IS NULL,"
    " finished_at IS NULL, next_at IS NULL, expires_at IS NULL, progress_at IS NULL"
)


@pytest.mark.parametrize(
    "before",
    [
        [],
        [(JobState.PENDING, 0)],
        [(JobState.PENDING, 0), (JobState.THROTTLED, 0)],
        [(JobState.PENDING, 0), (JobState.STARTED, 0), (JobState.RETRYING, 1)],
        [(JobState.PENDING, 0), (JobState.STARTED, 0), (JobState.SUCCESS, 0)],
    ],
    ids=["no-row", "pending", "throttled", "retrying", "finished"],
)
def test_the_guards_started_leaves_the_job_as_the_transition_does(
    broker: Broker, database: Database, before: list[tuple[JobState, int]]
) -> None:
    # Given two jobs with the same history, one started by the transition, one by the guard
    @dramatiq.actor(broker=broker)
    def plain() -> None: ...

    store = middleware_of(broker, JobStatus).store
    by_transition, by_guard = str(uuid.uuid4()), str(uuid.uuid4())
    attempt = before[-1][1] if before else 0
    for message_id in (by_transition, by_guard):
        for status, at in before:
            store.transition(
                message_id,
                actor_name="plain",
                queue_name="default",
                status=status,
                attempt=at,
                sent_at_ms=1_795_000_000_000,
                next_at_ms=1_795_000_000_000 if status is not JobState.PENDING else None,
                ttl_ms=60_000,
            )
            if status is JobState.STARTED:
                assert store.set_progress(message_id, attempt=at, done=3, total=9)

    # When each is started
    store.transition(
        by_transition,
        actor_name="plain",
        queue_name="default",
        status=JobState.STARTED,
        attempt=attempt,
        sent_at_ms=1_795_000_000_000,
    )
    message = MessageProxy(
        Message(
            "default",
            "plain",
            (),
            {},
            {"retries": attempt},
            message_id=by_guard,
            message_timestamp=1_795_000_000_000,
        )
    )
    broker.emit_before("process_message", message)

    # Then both rows read the same
    def row(message_id: str) -> tuple[Any, ...]:
        def read(cur: Any) -> tuple[Any, ...]:
            cur.execute(
                f"SELECT {JOB_COLUMNS} FROM geotasks.job WHERE message_id = %s", [message_id]
            )
            return tuple(cur.fetchone())

        return database.transaction(read)

    assert row(by_guard) == row(by_transition)
