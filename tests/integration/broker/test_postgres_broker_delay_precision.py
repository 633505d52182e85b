"""A delayed message on the Postgres broker is handed out when due, not at the next slow poll.

The rate limiter re-enqueues throttled messages to come back just before their start slot, so
it depends on this: before the fix, a consumer whose last claim returned rows did not know when
the next delayed row was due and slept until its 5 s poll.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq.message import Message

from geotasks.broker import build_broker
from geotasks.settings import load_settings

#: How late a delayed message may be handed out, in ms, on a shared, busy test machine.
MAX_LATENESS_MS = 500


@pytest.fixture
def broker(database_url: str, listeners_closed: None) -> Iterator[dramatiq.Broker]:
    broker = build_broker(load_settings({"GEOTASKS_DATABASE_URL": database_url}))
    broker.emit_after("process_boot")
    try:
        yield broker
    finally:
        broker.close()


def test_delayed_messages_are_handed_out_when_due(broker: dramatiq.Broker) -> None:
    # Given a worker and an actor that records how late it runs
    lateness_ms: list[float] = []

    @dramatiq.actor(broker=broker, actor_name="record_lateness", queue_name="delays")
    def record_lateness(due_ms: float) -> None:
        lateness_ms.append(time.time() * 1000 - due_ms)

    worker = dramatiq.Worker(broker, worker_threads=2)
    worker.start()
    try:
        # When ten messages are sent, due 300 ms to 1.2 s from now
        sent_ms = time.time() * 1000
        for n in range(10):
            delay_ms = 300 + 100 * n
            message = Message(
                queue_name="delays",
                actor_name="record_lateness",
                args=(sent_ms + delay_ms,),
                kwargs={},
                options={},
            )
            broker.enqueue(message, delay=delay_ms)
        deadline = time.monotonic() + 10
        while len(lateness_ms) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()

    # Then each ran on time, none waited for a poll
    assert len(lateness_ms) == 10
    assert max(lateness_ms) < MAX_LATENESS_MS, sorted(round(ms) for ms in lateness_ms)
