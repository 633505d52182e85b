"""Actors for the tests that run real ``dramatiq`` worker processes (test_worker_processes.py).

The queue and a directory for marker files come from the environment the test sets.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dramatiq

from geotasks.broker import setup_broker

setup_broker()

QUEUE_NAME = os.environ["GEOTASKS_TEST_QUEUE"]
MARKERS = Path(os.environ["GEOTASKS_TEST_MARKERS"])


def note_delivery() -> int:
    """Append this delivery to the markers; return how many deliveries there were so far."""
    deliveries = MARKERS / "deliveries"
    with deliveries.open("a") as file:
        file.write(f"{os.getpid()}\n")
    return len(deliveries.read_text().splitlines())


@dramatiq.actor(queue_name=QUEUE_NAME, max_retries=0)
def hang_on_first_delivery() -> None:
    """Hang on the first delivery (the test kills the worker), finish on the next."""
    if note_delivery() == 1:
        time.sleep(60)


@dramatiq.actor(queue_name=QUEUE_NAME, max_retries=0)
def abort_worker() -> None:
    """Kill the worker process, as a segfault in a C library would."""
    note_delivery()
    os.abort()
