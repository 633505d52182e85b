"""A dead Redis worker's messages come back on a clock, not by a one-in-a-thousand chance."""

from __future__ import annotations

import time
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker as DramatiqRedisBroker
from dramatiq.message import Message

from geotasks.redis.broker import RedisBroker

HEARTBEAT_TIMEOUT_MS = 500


def _dead_worker_holding_a_message(redis_url: str, namespace: str, queue: str) -> str:
    """A worker that fetched one message and died: it never acks nor beats again."""
    worker = DramatiqRedisBroker(url=redis_url, namespace=namespace, middleware=[])
    worker.heartbeat_timeout = HEARTBEAT_TIMEOUT_MS
    worker.declare_queue(queue)
    message: Message[Any] = Message(
        queue_name=queue, actor_name="anything", args=(), kwargs={}, options={}
    )
    worker.enqueue(message)
    consumer = worker.consume(queue, prefetch=1, timeout=1000)
    fetched = next(consumer)
    assert fetched is not None and fetched.message_id == message.message_id
    # It is now in the worker's acks, no longer in the queue.
    assert _queued(redis_url, namespace, queue) == 0
    return message.message_id


def _queued(redis_url: str, namespace: str, queue: str) -> int:
    """Messages waiting in the queue itself (Dramatiq's qsize also counts unacked ones)."""
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.llen(f"{namespace}:{queue}"))
    finally:
        client.close()


@pytest.mark.parametrize(
    ("broker_class", "comes_back"), [(RedisBroker, True), (DramatiqRedisBroker, False)]
)
def test_a_dead_workers_message_returns_within_the_maintenance_interval(
    redis_url: str, namespace: str, broker_class: type[dramatiq.Broker], comes_back: bool
) -> None:
    # Given a worker that died holding a message, and another process of the fleet whose
    # random maintenance never fires (maintenance_chance=0)
    queue = "default"
    _dead_worker_holding_a_message(redis_url, namespace, queue)
    options: dict[str, Any] = {
        "url": redis_url,
        "namespace": namespace,
        "middleware": [],
        "heartbeat_timeout": HEARTBEAT_TIMEOUT_MS,
        "maintenance_chance": 0,
    }
    if broker_class is RedisBroker:
        options["maintenance_interval_s"] = 0.2
    survivor = broker_class(**options)
    survivor.declare_queue(queue)
    # When the survivor issues commands for longer than the heartbeat timeout
    deadline = time.monotonic() + 3 * HEARTBEAT_TIMEOUT_MS / 1000
    size = 0
    while time.monotonic() < deadline and not size:
        survivor.do_qsize(queue)  # type: ignore[attr-defined]
        size = _queued(redis_url, namespace, queue)
        time.sleep(0.05)
    # Then geotasks' broker has put the message back in the queue; Dramatiq's, left to
    # chance, has not
    assert bool(size) is comes_back
