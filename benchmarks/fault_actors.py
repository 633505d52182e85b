"""The tiny actor of :mod:`benchmarks.faults`, imported by its workers after
``geotasks.worker``: ``dramatiq geotasks.worker benchmarks.fault_actors -Q <queue>``.

It lives on the run's own queue (``GEOTASKS_BENCH_QUEUE``), so a benchmark sharing a RabbitMQ
server with tests never takes their messages.
"""

from __future__ import annotations

import os

import dramatiq

from geotasks.broker import setup_broker
from geotasks.errors import InputError
from geotasks.retries import RETRY_OPTIONS

setup_broker()

QUEUE_NAME = os.environ.get("GEOTASKS_BENCH_QUEUE", "bench-faults")


@dramatiq.actor(queue_name=QUEUE_NAME, store_results=True, **RETRY_OPTIONS)
def tiny(n: int) -> int:
    """Answer ``n + 1``; a negative ``n`` is bad input (the load run's expected failures)."""
    if n < 0:
        raise InputError(f"n must not be negative, not {n}")
    return n + 1
