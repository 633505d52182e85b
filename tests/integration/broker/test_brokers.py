"""Behaviour every broker must have, run against Postgres, Redis and RabbitMQ alike."""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import dramatiq
import pytest
from dramatiq.common import dq_name
from dramatiq.message import Message
from dramatiq.middleware import CurrentMessage, Middleware, SkipMessage

from geotasks.middleware.deliveries import CLEAR_INTERVAL_S, DeliveryLimit
from tests.waiting import wait_until

from .conftest import MAX_DELIVERIES, Broker

StartWorker = Callable[..., dramatiq.Worker]


def current_message_id() -> str:
    message = CurrentMessage.get_current_message()
    assert message is not None
    return message.message_id


def test_sent_messages_are_processed_once_and_acked(
    broker: Broker, start_worker: StartWorker
) -> None:
    # Given an actor and a running worker
    seen: list[int] = []

    @dramatiq.actor(broker=broker.broker, queue_name=broker.queue_name)
    def record(n: int) -> None:
        seen.append(n)

    start_worker()

    # When messages are sent
    for n in range(5):
        record.send(n)

    # Then each runs exactly once and the queue is left empty
    wait_until(lambda: len(seen) == 5, what="five messages processed")
    time.sleep(0.2)
    assert sorted(seen) == [0, 1, 2, 3, 4]
    wait_until(lambda: broker.waiting() == 0, what="queue empty")
    assert broker.dead_letters() == 0


def test_messages_sent_while_no_worker_runs_are_kept_until_one_starts(
    broker: Broker, start_worker: StartWorker
) -> None:
    # Given messages sent while no worker runs
    seen: list[int] = []

    @dramatiq.actor(broker=broker.broker, queue_name=broker.queue_name)
    def record(n: int) -> None:
        seen.append(n)

    for n in range(3):
        record.send(n)
    wait_until(lambda: broker.waiting() == 3, what="three messages waiting")

    # When a worker starts
    start_worker()

    # Then it processes them
    wait_until(lambda: sorted(seen) == [0, 1, 2], what="kept messages processed")


def test_a_delayed_message_does_not_run_before_it_is_due(
    broker: Broker, start_worker: StartWorker
) -> None:
    # Given a running worker
    ran_at: list[float] = []

    @dramatiq.actor(broker=broker.broker, queue_name=broker.queue_name)
    def stamp() -> None:
        ran_at.append(time.time())

    start_worker()

    # When a message is sent with a delay of 1.5 s
    sent_at = time.time()
    stamp.send_with_options(delay=1500)

    # Then it has not run half-way through the delay, and runs once it is due
    time.sleep(0.75)
    assert ran_at == []
    wait_until(lambda: ran_at, what="delayed message run")
    assert ran_at[0] - sent_at >= 1.45


def test_a_retried_message_keeps_its_id_and_runs_until_it_succeeds(
    broker: Broker, start_worker: StartWorker
) -> None:
    # Given an actor that fails twice, then succeeds
    attempts: list[str] = []

    @dramatiq.actor(
        broker=broker.broker,
        queue_name=broker.queue_name,
        max_retries=5,
        min_backoff=10,
        max_backoff=50,
    )
    def flaky() -> None:
        attempts.append(current_message_id())
        if len(attempts) < 3:
            raise RuntimeError("transient failure")

    start_worker()

    # When a message is sent
    message = flaky.send()

    # Then it ran three times under the same id, and neither is lost nor runs again
    wait_until(lambda: len(attempts) == 3, what="three attempts")
    time.sleep(0.5)
    assert attempts == [message.message_id] * 3
    assert broker.waiting() == 0
    assert broker.dead_letters() == 0


def test_a_message_that_fails_for_good_is_dead_lettered_with_its_error(
    broker: Broker, start_worker: StartWorker
) -> None:
    # Given an actor that fails and may not retry
    @dramatiq.actor(broker=broker.broker, queue_name=broker.queue_name, max_retries=0)
    def doomed() -> None:
        raise ValueError("bad input 42")

    start_worker()

    # When a message is sent
    message = doomed.send()

    # Then it is dead-lettered, with its error where the broker can show it
    wait_until(lambda: broker.dead_letters() == 1, what="message dead-lettered")
    assert broker.waiting() == 0
    if broker.kind == "postgres":
        error = broker.database.transaction(
            lambda cur: (
                cur.execute(
                    "SELECT error FROM geotasks.broker_dead_letters WHERE message_id = %s",
                    (message.message_id,),
                ),
                cur.fetchone()[0],
            )[1]
        )
        assert "ValueError: bad input 42" in error
        assert "Traceback" in error


def test_flush_drops_waiting_and_delayed_messages(
    broker: Broker, start_worker: StartWorker
) -> None:
    # Given waiting and delayed messages
    seen: list[int] = []

    @dramatiq.actor(broker=broker.broker, queue_name=broker.queue_name)
    def record(n: int) -> None:
        seen.append(n)

    record.send(1)
    record.send(2)
    record.send_with_options(args=(3,), delay=60_000)
    wait_until(lambda: broker.waiting() == 3, what="three messages waiting")

    # When the queue is flushed (and every queue, for good measure)
    broker.broker.flush(broker.queue_name)
    broker.broker.flush_all()

    # Then nothing is left to process
    assert broker.waiting() == 0
    start_worker()
    time.sleep(0.5)
    assert seen == []


def test_a_worker_consumes_only_the_queues_it_is_given(
    broker: Broker, start_worker: StartWorker
) -> None:
    # Given actors on two queues
    other_queue = broker.queue_name + "-other"
    seen: list[str] = []

    @dramatiq.actor(broker=broker.broker, queue_name=broker.queue_name)
    def mine() -> None:
        seen.append("mine")

    @dramatiq.actor(broker=broker.broker, queue_name=other_queue)
    def theirs() -> None:
        seen.append("theirs")

    # When a worker restricted to one queue (as with `dramatiq -Q`) runs and both are sent to
    start_worker(queues={broker.queue_name})
    mine.send()
    theirs.send()

    # Then only the selected queue is consumed; delay queues are declared as by every broker
    wait_until(lambda: seen == ["mine"], what="selected queue consumed")
    time.sleep(0.3)
    assert seen == ["mine"]
    assert broker.broker.get_declared_delay_queues() == {
        dq_name(broker.queue_name),
        dq_name(other_queue),
    }


def test_concurrent_workers_never_process_the_same_message_twice(
    broker: Broker, start_worker: StartWorker
) -> None:
    # Given three worker "processes" (broker instances) of four threads on one queue
    counts: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def count() -> None:
        with lock:
            counts[current_message_id()] += 1

    for instance in (broker.broker, broker.twin(), broker.twin()):
        dramatiq.actor(count, broker=instance, queue_name=broker.queue_name)
        start_worker(on=instance, worker_threads=4)

    # When 300 messages are sent
    sender = broker.broker.get_actor("count")
    sent = {sender.send().message_id for _ in range(300)}

    # Then each one ran exactly once
    wait_until(lambda: len(counts) == 300, timeout_s=30, what="300 messages processed")
    time.sleep(0.3)
    assert set(counts) == sent
    assert set(counts.values()) == {1}


def test_a_message_for_an_unknown_actor_is_dead_lettered_without_blocking_the_queue(
    broker: Broker, start_worker: StartWorker
) -> None:
    # Given a message for an actor no worker knows, ahead of a good one
    seen: list[str] = []

    @dramatiq.actor(broker=broker.broker, queue_name=broker.queue_name)
    def known() -> None:
        seen.append("known")

    broker.broker.enqueue(
        Message(
            queue_name=broker.queue_name,
            actor_name="no_such_actor",
            args=(),
            kwargs={},
            options={},
        )
    )
    known.send()

    # When a worker runs
    start_worker()

    # Then the good message runs and the unknown one is dead-lettered
    wait_until(lambda: seen == ["known"], what="good message processed")
    wait_until(lambda: broker.dead_letters() == 1, what="unknown actor dead-lettered")


class ThrottleThreeTimes(Middleware):
    """Re-enqueues a message under the same id and attempt three times, as a rate limit does."""

    def __init__(self) -> None:
        self.throttled: collections.Counter[str] = collections.Counter()

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        if self.throttled[message.message_id] < 3:
            self.throttled[message.message_id] += 1
            broker.enqueue(message.copy(), delay=10)
            raise SkipMessage("throttled")


def test_deliveries_that_finished_do_not_count_as_kills(
    broker: Broker, start_worker: StartWorker
) -> None:
    # Given a throttle that re-enqueues every message three times (more than the poison limit)
    # and an actor that needs more attempts than the limit too
    broker.broker.add_middleware(ThrottleThreeTimes(), after=DeliveryLimit)
    attempts: list[str] = []

    @dramatiq.actor(
        broker=broker.broker,
        queue_name=broker.queue_name,
        max_retries=5,
        min_backoff=10,
        max_backoff=20,
    )
    def persistent() -> None:
        attempts.append(current_message_id())
        if len(attempts) <= MAX_DELIVERIES:
            raise RuntimeError("transient failure")

    start_worker()

    # When a message is sent
    message = persistent.send()

    # Then the poison guard lets every delivery through: none of them killed a worker
    wait_until(lambda: len(attempts) == MAX_DELIVERIES + 1, what="every attempt run")
    time.sleep(0.3)
    assert attempts == [message.message_id] * (MAX_DELIVERIES + 1)
    assert broker.dead_letters() == 0


def test_a_message_that_killed_its_worker_too_often_is_rejected_unrun(
    broker: Broker, start_worker: StartWorker
) -> None:
    # Given a message whose last MAX_DELIVERIES deliveries never finished, and ran alone in
    # their process each time (each killed its worker)
    ran: list[str] = []

    @dramatiq.actor(broker=broker.broker, queue_name=broker.queue_name)
    def poison() -> None:
        ran.append(current_message_id())

    message = poison.message()
    broker.database.transaction(
        lambda cur: cur.execute(
            "INSERT INTO geotasks.message_deliveries "
            "(message_id, attempt, deliveries, solo_deliveries) VALUES (%s, 0, %s, %s)",
            (message.message_id, MAX_DELIVERIES, MAX_DELIVERIES),
        )
    )

    # When it is delivered again
    broker.broker.enqueue(message)
    start_worker()

    # Then it is dead-lettered without running, and its count is cleared
    wait_until(lambda: broker.dead_letters() == 1, what="poison message dead-lettered")
    assert ran == []
    wait_until(lambda: delivery_counts(broker) == 0, what="delivery count cleared")
    if broker.kind == "postgres":
        error = broker.database.transaction(
            lambda cur: (
                cur.execute("SELECT error FROM geotasks.broker_dead_letters"),
                cur.fetchone()[0],
            )[1]
        )
        assert f"killed its worker {MAX_DELIVERIES} times" in error


def delivery_counts(broker: Broker) -> int:
    """How many (message, attempt) delivery counts the poison guard holds."""
    return int(
        broker.database.transaction(
            lambda cur: (
                cur.execute("SELECT count(*) FROM geotasks.message_deliveries"),
                cur.fetchone()[0],
            )[1]
        )
    )


def test_a_message_that_died_beside_others_runs_alone_and_is_not_rejected(
    broker: Broker, start_worker: StartWorker
) -> None:
    # Given a message whose last deliveries never finished, as many as the limit, but never
    # while it ran alone (its process died while other messages ran too: it is only a suspect)
    runs: list[tuple[str, float, float]] = []

    @dramatiq.actor(broker=broker.broker, queue_name=broker.queue_name)
    def nap(name: str) -> None:
        started = time.monotonic()
        time.sleep(0.2)
        runs.append((name, started, time.monotonic()))

    suspect = nap.message("suspect")
    broker.database.transaction(
        lambda cur: cur.execute(
            "INSERT INTO geotasks.message_deliveries (message_id, attempt, deliveries) "
            "VALUES (%s, 0, %s)",
            (suspect.message_id, MAX_DELIVERIES),
        )
    )

    # When it is delivered again among ordinary messages, to a worker with several threads
    for i in range(3):
        nap.send(f"before-{i}")
    broker.broker.enqueue(suspect)
    for i in range(3):
        nap.send(f"after-{i}")
    start_worker(worker_threads=3)

    # Then it runs, and alone: no other message of its process runs at the same time
    wait_until(lambda: len(runs) == 7, what="every message run")
    (_, started, ended), *_ = [run for run in runs if run[0] == "suspect"]
    beside = [name for name, s, e in runs if name != "suspect" and s < ended and e > started]
    assert beside == []
    # And the ordinary messages still run beside each other
    others = sorted((s, e) for name, s, e in runs if name != "suspect")
    assert any(b[0] < a[1] for a, b in itertools.pairwise(others))
    # And its count is cleared, as any finished delivery's
    assert broker.dead_letters() == 0
    wait_until(lambda: delivery_counts(broker) == 0, what="delivery counts cleared")


def test_a_suspect_that_waits_too_long_for_its_process_runs_beside_the_others(
    broker: Broker, start_worker: StartWorker
) -> None:
    # Given a job that holds its worker thread until told, and a suspect (its last delivery
    # never finished) that may wait only a moment for its process to itself
    guard = next(m for m in broker.broker.middleware if isinstance(m, DeliveryLimit))
    guard.suspect_wait_s = 0.3
    release = threading.Event()
    ran: list[str] = []

    @dramatiq.actor(broker=broker.broker, queue_name=broker.queue_name)
    def hold(name: str) -> None:
        if name == "holder":
            release.wait(30)
        ran.append(name)

    suspect = hold.message("suspect")
    broker.database.transaction(
        lambda cur: cur.execute(
            "INSERT INTO geotasks.message_deliveries (message_id, attempt) VALUES (%s, 0)",
            (suspect.message_id,),
        )
    )
    hold.send("holder")
    start_worker()
    wait_until(lambda: delivery_counts(broker) == 2, what="the holder running")

    # When the suspect arrives while the holder still runs
    broker.broker.enqueue(suspect)

    # Then it runs beside the holder once its wait is over, rather than stalling the process
    wait_until(lambda: ran == ["suspect"], what="the suspect run beside the holder")
    release.set()
    wait_until(lambda: ran == ["suspect", "holder"], what="the holder done")
    assert broker.dead_letters() == 0


def test_a_graceful_stop_does_not_count_the_deliveries_it_interrupts(broker: Broker) -> None:
    # Given a job running on a worker
    release = threading.Event()

    @dramatiq.actor(broker=broker.broker, queue_name=broker.queue_name)
    def long_job() -> None:
        release.wait(30)

    worker = dramatiq.Worker(broker.broker, worker_timeout=100, worker_threads=2)
    worker.start()
    try:
        long_job.send()
        wait_until(lambda: delivery_counts(broker) == 1, what="the job running")
    finally:
        # When the worker is stopped (SIGTERM) before the job finishes
        worker.stop(timeout=200)
    try:
        # Then the interrupted delivery is not counted as one that killed its worker
        assert delivery_total(broker) == 0
    finally:
        release.set()
        wait_until(
            lambda: not any(thread.is_alive() for thread in worker.workers),
            what="the interrupted job's thread done",
        )
        time.sleep(2 * CLEAR_INTERVAL_S)  # Its count's clearing, before the database goes.


def delivery_total(broker: Broker) -> int:
    """Unfinished deliveries the poison guard counts, over every message."""
    return int(
        broker.database.transaction(
            lambda cur: (
                cur.execute("SELECT coalesce(sum(deliveries), 0) FROM geotasks.message_deliveries"),
                cur.fetchone()[0],
            )[1]
        )
    )


def test_finished_deliveries_leave_no_count_behind(
    broker: Broker, start_worker: StartWorker
) -> None:
    # Given an actor that succeeds and one that fails for good
    @dramatiq.actor(broker=broker.broker, queue_name=broker.queue_name)
    def fine() -> None:
        pass

    @dramatiq.actor(broker=broker.broker, queue_name=broker.queue_name, max_retries=0)
    def broken() -> None:
        raise RuntimeError("broken")

    start_worker()

    # When both ran
    for _ in range(5):
        fine.send()
    broken.send()
    wait_until(lambda: broker.dead_letters() == 1, what="failure dead-lettered")
    wait_until(lambda: broker.waiting() == 0, what="queue empty")

    # Then the poison guard has forgotten every delivery: none of them killed a worker
    wait_until(lambda: delivery_counts(broker) == 0, what="delivery counts cleared")


@pytest.mark.parametrize("broker_kind", ["postgres", "rabbitmq"])
def test_an_undecodable_body_is_dead_lettered_without_blocking_the_queue(
    broker: Broker, start_worker: StartWorker
) -> None:
    # Given a body that is not JSON ahead of a good message
    seen: list[str] = []

    @dramatiq.actor(broker=broker.broker, queue_name=broker.queue_name)
    def known() -> None:
        seen.append("known")

    put_raw_body(broker, b"{this is not json")
    known.send()

    # When a worker runs
    start_worker()

    # Then the good message runs and the bad body is dead-lettered
    wait_until(lambda: seen == ["known"], what="good message processed")
    wait_until(lambda: broker.dead_letters() == 1, what="bad body dead-lettered")


def put_raw_body(broker: Broker, body: bytes) -> None:
    """Put a body on the queue bypassing Dramatiq's encoder, as a foreign producer might."""
    if broker.kind == "postgres":
        broker.database.transaction(
            lambda cur: cur.execute(
                "INSERT INTO geotasks.broker_messages (message_id, queue_name, body) "
                "VALUES ('raw', %s, %s)",
                (broker.queue_name, body.decode()),
            )
        )
    else:
        broker.broker.declare_queue(broker.queue_name, ensure=True)
        broker.broker.channel.basic_publish(exchange="", routing_key=broker.queue_name, body=body)
