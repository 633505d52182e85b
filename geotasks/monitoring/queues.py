"""The queues of whichever broker runs, with what that broker can tell about them.

- Postgres (geotasks' broker): ready, delayed, in flight, the oldest ready message's age and the
  dead letters, from ``geotasks.broker_messages`` (read with the rest of the state).
- Redis: ready, delayed, in flight (fetched, not acked) and dead letters, from Dramatiq's keys.
- RabbitMQ: ready, delayed and dead letters (a passive declare of the queue and its ``.DQ`` and
  ``.XQ``); RabbitMQ does not say how many are unacked without its management plugin.

Redis and RabbitMQ have no list of queues that a client can read cheaply: their queues are the
ones the worker registry says a worker served (alive, or lost within a day).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from dramatiq.common import dq_name, xq_name

from ..errors import ConfigurationError, GeotasksError
from ..postgres.overview import SystemState, read_state
from ..postgres.pool import get_database, redact_url
from ..settings import POSTGRES_SCHEMES, Settings


class BrokerUnreachable(GeotasksError):
    """Raised when the broker's server cannot be reached to read its queues."""


@dataclass(frozen=True)
class QueueInfo:
    """One queue; ``None`` where the broker cannot tell."""

    queue_name: str
    ready: int
    delayed: int
    in_flight: int | None
    oldest_age_s: float | None
    dead_letters: int


def broker_kind(settings: Settings) -> str:
    """Return ``postgres``, ``redis`` or ``rabbitmq``."""
    scheme = urlsplit(settings.effective_broker_url or "").scheme
    if scheme in POSTGRES_SCHEMES:
        return "postgres"
    if scheme in {"redis", "rediss"}:
        return "redis"
    if scheme in {"amqp", "amqps"}:
        return "rabbitmq"
    raise ConfigurationError("no broker is configured (GEOTASKS_BROKER_URL)")


def registered_queues(state: SystemState) -> list[str]:
    """Return the queues that registered workers serve."""
    return sorted({q for w in state.workers if w.role == "worker" for q in w.queues})


def read_queues(settings: Settings, state: SystemState) -> list[QueueInfo]:
    """Return the broker's queues, by name.

    Raises:
      BrokerUnreachable: when the broker's server does not answer.
    """
    kind = broker_kind(settings)
    url = settings.effective_broker_url or ""
    try:
        if kind == "postgres":
            return _postgres_queues(settings, url, state)
        if kind == "redis":
            return _redis_queues(url, registered_queues(state), settings.connect_timeout_s)
        return _rabbitmq_queues(url, registered_queues(state), settings.connect_timeout_s)
    except BrokerUnreachable:
        raise
    except Exception as exc:  # the client libraries' errors have no common base
        raise BrokerUnreachable(
            f"the {kind} broker at {redact_url(url)} did not answer: {type(exc).__name__}: {exc}"
        ) from exc


def _postgres_queues(settings: Settings, url: str, state: SystemState) -> list[QueueInfo]:
    if url != settings.database_url:
        # The queues live in another database than the rest of the state.
        state = read_state(get_database(url), settings.broker_heartbeat_timeout_s)
    depths = {q.queue_name: q for q in state.broker_queues}
    names = sorted(depths.keys() | state.dead_letters.keys())
    return [
        QueueInfo(
            queue_name=name,
            ready=depths[name].ready if name in depths else 0,
            delayed=depths[name].delayed if name in depths else 0,
            in_flight=depths[name].in_flight if name in depths else 0,
            oldest_age_s=depths[name].oldest_age_s if name in depths else None,
            dead_letters=state.dead_letters.get(name, 0),
        )
        for name in names
    ]


def _redis_queues(url: str, names: list[str], timeout_s: int) -> list[QueueInfo]:
    # Loaded only here: the redis client is an optional extra.
    from ..redis.queues import queue_counts

    return [
        QueueInfo(name, counts.ready, counts.delayed, counts.in_flight, None, counts.dead)
        for name, counts in zip(names, queue_counts(url, names, timeout_s), strict=True)
    ]


def _rabbitmq_queues(url: str, names: list[str], timeout_s: int) -> list[QueueInfo]:
    import pika
    from pika.exceptions import ChannelClosedByBroker

    parameters = pika.URLParameters(url)
    parameters.socket_timeout = parameters.blocked_connection_timeout = timeout_s
    connection = pika.BlockingConnection(parameters)
    try:
        channel = connection.channel()

        def count(queue: str) -> int:
            nonlocal channel
            try:
                return int(channel.queue_declare(queue, passive=True).method.message_count)
            except ChannelClosedByBroker:
                # A queue not declared (yet): the broker closes the channel.
                channel = connection.channel()
                return 0

        return [
            QueueInfo(name, count(name), count(dq_name(name)), None, None, count(xq_name(name)))
            for name in names
        ]
    finally:
        connection.close()
