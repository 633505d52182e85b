"""A Dramatiq app for the rate-limit process tests: ``dramatiq tests.acceptance.rate_limit_app``.

The broker and its middleware come from geotasks' own :func:`~geotasks.broker.setup_broker`,
configured by the ``GEOTASKS_*`` variables the test sets (Postgres or Redis broker and limiter
backend). The actors are named after a per-test namespace, so that concurrent test runs never
share a limit, and record when they start and end in Redis.
"""

from __future__ import annotations

import os
import time

import dramatiq
import redis

from geotasks.broker import setup_broker

NAMESPACE = os.environ["RATE_LIMIT_TEST_NAMESPACE"]

broker = setup_broker()
recorder = redis.Redis.from_url(os.environ["RATE_LIMIT_TEST_REDIS_URL"])


def record(n: int, started_s: float) -> None:
    """Append ``"<n> <start> <end>"`` (epoch seconds) to the namespace's record list."""
    recorder.rpush(f"{NAMESPACE}:records", f"{n} {started_s!r} {time.time()!r}")


@dramatiq.actor(
    actor_name=f"limited_{NAMESPACE}",
    queue_name=NAMESPACE,
    rate_limit=os.environ.get("RATE_LIMIT_TEST_RATE", "10/s"),
    max_retries=0,
)
def limited(n: int) -> None:
    record(n, time.time())


@dramatiq.actor(
    actor_name=f"exclusive_{NAMESPACE}",
    queue_name=NAMESPACE,
    concurrency_limit=2,
    max_retries=0,
)
def exclusive(n: int, duration_s: float) -> None:
    started_s = time.time()
    time.sleep(duration_s)
    record(n, started_s)
