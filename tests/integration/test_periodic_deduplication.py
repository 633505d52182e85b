"""Two workers, each with its own broker connection and Postgres pool, receive both schedulers'
copies of the same tick: the tick runs once, a redelivery of the owning message runs again. On
each broker geotasks supports.

Each worker serves its own queue, so each copy is certainly delivered to a different worker (the
de-duplication key is the actor and the slot, never the queue), and the copies race.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dramatiq
import pendulum
import pytest
from dramatiq.broker import Broker, MessageProxy
from dramatiq.middleware import Middleware
from periodiq import cron

from geotasks.middleware.periodic import PeriodicDeduplication
from geotasks.postgres.broker import PostgresBroker
from geotasks.postgres.pool import Database

#: Long enough that the middleware never skips the slightly old ticks sent here as late.
TEST_SKIP_DELAY_S = 600
WAIT_S = 20.0


@dataclass
class Outcomes:
    """What each worker did with each message: ``(worker, message_id, "ran" | "skipped")``."""

    events: list[tuple[str, str, str]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def add(self, event: tuple[str, str, str]) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def wait_for(self, count: int, timeout_s: float = WAIT_S) -> list[tuple[str, str, str]]:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.events) >= count, timeout=timeout_s):
                raise AssertionError(f"expected {count} outcomes in {timeout_s} s: {self.events}")
            return list(self.events)


class Observe(Middleware):
    """Records which worker ran or skipped which message."""

    def __init__(self, worker: str, outcomes: Outcomes) -> None:
        self.worker = worker
        self.outcomes = outcomes

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: object = None,
        exception: BaseException | None = None,
    ) -> None:
        self.outcomes.add((self.worker, message.message_id, "failed" if exception else "ran"))

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        self.outcomes.add((self.worker, message.message_id, "skipped"))


@dataclass
class WorkerPair:
    """Workers "A" and "B", each on its own broker, pool and queue, running actor ``tick``."""

    actors: dict[str, dramatiq.Actor[[], None]]
    brokers: dict[str, Broker]
    queues: dict[str, str]
    outcomes: Outcomes


def make_broker(
    kind: str, url: str, namespace: str, middleware: list[Middleware], pool: Database
) -> Broker:
    if kind == "postgres":
        return PostgresBroker(database=pool, middleware=middleware)
    if kind == "redis":
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=url, namespace=namespace, middleware=middleware)
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    return RabbitmqBroker(url=url, middleware=middleware)


def remove_queues(kind: str, broker: Broker, namespace: str, queue: str) -> None:
    if kind == "postgres":
        # The test's database, queues included, is dropped after the test.
        return
    if kind == "redis":
        client = broker.client  # type: ignore[attr-defined]
        for key in client.scan_iter(f"{namespace}:*"):
            client.delete(key)
        return
    for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
        broker.channel.queue_delete(name)  # type: ignore[attr-defined]


@pytest.fixture(params=["postgres", "redis", "rabbitmq"])
def workers(request: pytest.FixtureRequest, database_url: str) -> Iterator[WorkerPair]:
    kind: str = request.param
    url: str = database_url if kind == "postgres" else request.getfixturevalue(f"{kind}_url")
    namespace = f"geotasks-test-{uuid.uuid4().hex[:8]}"
    outcomes = Outcomes()
    pair = WorkerPair({}, {}, {}, outcomes)
    pools: list[Database] = []
    running: list[dramatiq.Worker] = []
    try:
        for name in ("A", "B"):
            pool = Database(database_url, max_connections=4)
            pools.append(pool)
            broker = make_broker(
                kind,
                url,
                namespace,
                [
                    PeriodicDeduplication(pool, skip_late_s=TEST_SKIP_DELAY_S),
                    Observe(name, outcomes),
                ],
                pool,
            )
            queue = f"{namespace}-{name}"
            pair.brokers[name] = broker
            pair.queues[name] = queue
            pair.actors[name] = dramatiq.actor(
                lambda: None,
                broker=broker,
                actor_name="tick",
                queue_name=queue,
                periodic=cron("* * * * *"),
                # Copies of five slots race here: the order of slots is not the point.
                overlap=True,
            )
            worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
            worker.start()
            running.append(worker)
        yield pair
    finally:
        for worker in running:
            worker.stop(timeout=10_000)
        for name, broker in pair.brokers.items():
            remove_queues(kind, broker, namespace, pair.queues[name])
            broker.close()
        for pool in pools:
            pool.close()


def scheduler_stamp(tick: datetime, tz: str, jitter_s: float) -> str:
    """The ``scheduled_at`` a periodiq scheduler in ``tz`` writes when it wakes ``jitter_s`` off."""
    woke = pendulum.instance(tick + timedelta(seconds=jitter_s)).in_timezone(tz)
    return str((woke + timedelta(seconds=0.5)).replace(microsecond=0))


def test_both_schedulers_copies_of_each_tick_run_once(workers: WorkerPair) -> None:
    # Given five recent ticks, each sent by a UTC scheduler (on time, to worker A) and by a Paris
    # scheduler whose clock is 2 s early (to worker B), both copies in flight at once
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    ticks = [now - timedelta(minutes=n) for n in range(5)]
    tick_of: dict[str, datetime] = {}
    for tick in ticks:
        for name, tz, jitter_s in (("A", "UTC", 0.2), ("B", "Europe/Paris", -2.0)):
            message = workers.actors[name].send_with_options(
                scheduled_at=scheduler_stamp(tick, tz, jitter_s)
            )
            tick_of[message.message_id] = tick

    # When both workers have handled all ten messages
    events = workers.outcomes.wait_for(len(tick_of))

    # Then every tick ran exactly once, and its other copy was skipped by the other worker
    for tick in ticks:
        handled = sorted(
            (outcome, worker) for worker, mid, outcome in events if tick_of[mid] == tick
        )
        assert [outcome for outcome, _ in handled] == ["ran", "skipped"], (tick, handled)
        assert {worker for _, worker in handled} == {"A", "B"}


def test_a_redelivery_of_the_owning_message_runs_again(workers: WorkerPair) -> None:
    stamp = scheduler_stamp(datetime.now(UTC).replace(second=0, microsecond=0), "UTC", 0.3)

    # Given worker A ran a tick's message
    message = workers.actors["A"].send_with_options(scheduled_at=stamp)
    assert workers.outcomes.wait_for(1) == [("A", message.message_id, "ran")]

    # When the same message (same id) is delivered again, to worker B (A died before its ack)
    workers.brokers["B"].enqueue(message.copy(queue_name=workers.queues["B"]))
    # And another scheduler's copy of the tick arrives
    other = workers.actors["B"].send_with_options(scheduled_at=stamp)

    # Then the redelivery runs, the other copy is skipped
    assert workers.outcomes.wait_for(3)[1:] == [
        ("B", message.message_id, "ran"),
        ("B", other.message_id, "skipped"),
    ]


def test_a_periodic_actor_sent_by_hand_runs_every_time(workers: WorkerPair) -> None:
    # Given a periodic actor sent twice without periodiq's scheduled_at (an operator's send())
    first = workers.actors["A"].send()
    second = workers.actors["B"].send()

    # Then both run
    assert sorted(workers.outcomes.wait_for(2)) == sorted(
        [("A", first.message_id, "ran"), ("B", second.message_id, "ran")]
    )


def test_a_tick_later_than_skip_late_s_is_skipped(workers: WorkerPair) -> None:
    # Given a tick whose slot is five minutes old, with skip_late_s of one minute
    slot = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    message = workers.actors["A"].send_with_options(scheduled_at=slot.isoformat(), skip_late_s=60)

    # Then it is skipped, not run
    assert workers.outcomes.wait_for(1) == [("A", message.message_id, "skipped")]
