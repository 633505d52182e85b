"""The depths of Dramatiq's Redis queues, read from its keys, for the dashboard and ``/metrics``."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from dramatiq.common import dq_name, xq_name

#: Dramatiq's default Redis key namespace, which geotasks' Redis broker keeps.
REDIS_NAMESPACE = "dramatiq"


@dataclass(frozen=True)
class QueueCounts:
    """One queue's messages, as Dramatiq's keys count them.

    Attributes:
      ready: Waiting to be fetched.
      in_flight: Fetched by a worker, not acked yet.
      delayed: On the queue's delay queue.
      dead: On its dead-letter queue.
    """

    ready: int
    in_flight: int
    delayed: int
    dead: int


def queue_counts(url: str, names: list[str], timeout_s: int) -> list[QueueCounts]:
    """Return the counts of the queues ``names``, in their order, in one round trip.

    Raises:
      redis.RedisError: when the server does not answer.
    """
    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        if not names:
            client.ping()
            return []
        pipe = client.pipeline(transaction=False)
        for name in names:
            key = f"{REDIS_NAMESPACE}:{name}"
            pipe.llen(key)
            pipe.hlen(f"{key}.msgs")
            pipe.hlen(f"{REDIS_NAMESPACE}:{dq_name(name)}.msgs")
            pipe.zcard(f"{REDIS_NAMESPACE}:{xq_name(name)}")
        counts = pipe.execute()
    finally:
        client.close()
    result = []
    for index in range(len(names)):
        ready, held, delayed, dead = counts[4 * index : 4 * index + 4]
        result.append(QueueCounts(ready, max(0, held - ready), delayed, dead))
    return result
