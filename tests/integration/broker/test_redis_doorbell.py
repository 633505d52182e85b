"""An idle Redis worker starts a job as soon as it is sent: it waits on a doorbell, not a sleep."""

from __future__ import annotations

import threading
import time
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker as DramatiqRedisBroker

from geotasks.redis.broker import RedisBroker

#: Idle time before each send: long enough for Dramatiq's back-off to reach its longest sleep.
IDLE_S = 1.2
SENDS = 4
#: How soon a job starts after its send on a worker that waits on the doorbell.
WAKES_WITHIN_S = 0.1


def start_delays_s(broker: dramatiq.Broker) -> list[float]:
    """Send a job after each of a few idle pauses; return how long each took to start."""
    started: dict[int, float] = {}
    done = threading.Event()

    @dramatiq.actor(broker=broker, queue_name="doorbell")
    def note_start(n: int) -> None:
        started[n] = time.monotonic()
        if len(started) == SENDS:
            done.set()

    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=1000)
    worker.start()
    try:
        sent: dict[int, float] = {}
        for n in range(SENDS):
            time.sleep(IDLE_S)
            sent[n] = time.monotonic()
            note_start.send(n)
        assert done.wait(10), started
    finally:
        worker.stop()
    return [started[n] - sent[n] for n in range(SENDS)]


@pytest.mark.parametrize(
    ("broker_class", "wakes_at_once"), [(RedisBroker, True), (DramatiqRedisBroker, False)]
)
def test_an_idle_worker_starts_a_job_as_soon_as_it_is_sent(
    redis_url: str, namespace: str, broker_class: type[DramatiqRedisBroker], wakes_at_once: bool
) -> None:
    # Given a worker that has been idle a while, on geotasks' Redis broker or Dramatiq's own
    options: dict[str, Any] = {"url": redis_url, "namespace": namespace, "middleware": []}
    if broker_class is RedisBroker:
        options["maintenance_interval_s"] = 5.0
    broker = broker_class(**options)
    try:
        # When jobs are sent one at a time, each after a pause
        delays_s = start_delays_s(broker)
    finally:
        broker.close()

    # Then geotasks' worker starts each within milliseconds; Dramatiq's sleeps through its
    # back-off (a random 0.5 to 1 s once idle) before it looks, so a send waits a random part of
    # that sleep: at least one of its jobs starts late (all of them early: p < 0.001)
    assert (max(delays_s) < WAKES_WITHIN_S) is wakes_at_once, delays_s


def test_a_send_rings_even_after_redis_forgot_its_scripts(redis_url: str, namespace: str) -> None:
    # Given geotasks' Redis broker, and a Redis that lost its Lua scripts (as after a restart)
    broker = RedisBroker(
        url=redis_url, namespace=namespace, middleware=[], maintenance_interval_s=5.0
    )
    try:

        @dramatiq.actor(broker=broker, queue_name="doorbell")
        def noop() -> None: ...

        broker.client.script_flush()

        # When a message is sent
        noop.send()

        # Then it is on its queue, and the doorbell rang once
        assert broker.client.llen(f"{namespace}:doorbell") == 1
        assert broker.client.lrange(broker.doorbell_key("doorbell"), 0, -1) == [b"1"]
    finally:
        broker.close()
