"""Test actors for the reliability suite, imported by the worker after ``geotasks.worker``:
``dramatiq geotasks.worker tests.reliability.poison_actors -Q <queue>``.

They live on a queue of the test's own (``GEOTASKS_TEST_QUEUE``), so tests sharing a RabbitMQ
server never take each other's messages.
"""

from __future__ import annotations

import os
import time

import dramatiq

from geotasks.broker import setup_broker
from geotasks.retries import RETRY_OPTIONS

setup_broker()

QUEUE_NAME = os.environ.get("GEOTASKS_TEST_QUEUE", "reliability")
#: The time limit of :func:`sleep_for`, in milliseconds.
TIME_LIMIT_MS = int(os.environ.get("GEOTASKS_TEST_TIME_LIMIT_MS", "1000"))


@dramatiq.actor(queue_name=QUEUE_NAME, store_results=True, **RETRY_OPTIONS)
def abort_worker(after_s: float = 0) -> None:
    """Kill the worker process after ``after_s`` seconds, as a segfault in GDAL or the OOM
    killer would."""
    time.sleep(after_s)
    os.abort()


@dramatiq.actor(queue_name=QUEUE_NAME, store_results=True, **RETRY_OPTIONS)
def add(x: int, y: int) -> int:
    """A job that always succeeds."""
    return x + y


@dramatiq.actor(
    queue_name=QUEUE_NAME, store_results=True, time_limit=TIME_LIMIT_MS, **RETRY_OPTIONS
)
def sleep_for(seconds: float) -> str:
    """Sleep in small steps (the time limit fires between them), then answer."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)
    return "woke up"
