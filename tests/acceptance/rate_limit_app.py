"""A Dramatiq app for the rate-limit process tests: ``dramatiq tests.acceptance.rate_limit_app``.

Configured from the environment the test sets: a Redis broker in its own namespace, the
``RateLimit`` middleware on ``GEOTASKS_RATE_LIMIT_URL`` (Postgres or Redis), and actors, named
after the namespace so that concurrent test runs never share a limit, that record when they start
and end in Redis.
"""

from __future__ import annotations

import os
import time

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AgeLimit

from geotasks.middleware.rate_limit import RateLimit
from geotasks.settings import get_settings

NAMESPACE = os.environ["RATE_LIMIT_TEST_NAMESPACE"]
REDIS_URL = os.environ["RATE_LIMIT_TEST_REDIS_URL"]

broker = RedisBroker(url=REDIS_URL, namespace=NAMESPACE)
broker.add_middleware(RateLimit.from_settings(get_settings()), before=AgeLimit)
dramatiq.set_broker(broker)

recorder = redis.Redis.from_url(REDIS_URL)


def starts_key(namespace: str) -> str:
    """The Redis list of ``"<n> <start> <end>"`` records (epoch seconds)."""
    return f"{namespace}:records"


def record(n: int, started_s: float) -> None:
    recorder.rpush(starts_key(NAMESPACE), f"{n} {started_s!r} {time.time()!r}")


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
