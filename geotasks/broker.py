"""Builds the Dramatiq broker and its ordered middleware from the ``GEOTASKS_*`` settings.

This module is light (no geo code): a web application imports it, through :mod:`geotasks`, to
send messages. The broker is chosen by the scheme of ``GEOTASKS_BROKER_URL`` (which defaults to
``GEOTASKS_DATABASE_URL``):

- ``postgresql://`` — geotasks' own :class:`~geotasks.postgres.broker.PostgresBroker`;
- ``redis://`` — Dramatiq's ``RedisBroker``, with geotasks' maintenance and doorbell
  (:class:`~geotasks.redis.broker.RedisBroker`; ``pip install geotasks[redis]``);
- ``amqp://`` — Dramatiq's ``RabbitmqBroker`` (``pip install geotasks[rabbitmq]``).

With nothing configured it refuses to start: it never falls back, as Dramatiq's ``get_broker()``
does, to a RabbitMQ on localhost. The rate limits' backend is chosen here too, by the scheme of
``GEOTASKS_RATE_LIMIT_URL`` (the database by default).
"""

from __future__ import annotations

import functools
import inspect
import threading
from urllib.parse import urlsplit

import dramatiq
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from .errors import ConfigurationError
from .middleware.deliveries import DeliveryLimit, most_deaths_before_rejection
from .middleware.job_status import JobStatus
from .middleware.periodic import PeriodicDeduplication
from .middleware.rate_limit import RateLimit
from .middleware.results import Results
from .middleware.workers import WorkerRegistry
from .postgres.job_status import JobStore
from .postgres.pool import Database, get_database, redact_url
from .postgres.rate_limits import PostgresBackend as PostgresLimiterBackend
from .postgres.results import PostgresBackend
from .postgres.workers import WorkerStore
from .rate_limits import LimiterBackend
from .registry import DECLARED
from .settings import POSTGRES_SCHEMES, Settings, get_settings

_setup_lock = threading.Lock()
_broker: dramatiq.Broker | None = None
_broker_settings: Settings | None = None


def database_for(settings: Settings) -> Database:
    """Return this process's connection pool on ``GEOTASKS_DATABASE_URL``.

    Raises:
      ConfigurationError: when no database is configured.
    """
    return get_database(
        settings.require_database_url(),
        max_connections=settings.pool_max_connections,
        connect_timeout_s=settings.connect_timeout_s,
    )


def build_middleware(settings: Settings, database: Database) -> list[Middleware]:
    """Return the middleware of every geotasks broker, outermost first.

    The order matters: the poison guard commits its count before anything else runs;
    de-duplication, rate limits and job status decide whether the message runs at all before
    Dramatiq's own middleware time it and retry it; ``CurrentMessage`` then exposes it to the
    actor; the results middleware stores what the actor returned. The worker registry, which
    only records the process and its jobs in flight, comes last.

    Parameters:
      settings: The process's settings.
      database: The pool that middleware keeping state in Postgres use.

    Returns:
      list[Middleware]: fresh instances, for one broker.
    """
    result_ttl_ms = settings.result_ttl_s * 1000
    job_status = JobStatus(store=JobStore(database), result_ttl_ms=result_ttl_ms)
    return [
        # Its count carries STARTED too, in one round trip, when nothing in between may hold
        # the message back.
        DeliveryLimit(database, max_deliveries=settings.max_deliveries, job_status=job_status),
        PeriodicDeduplication(database, skip_late_s=settings.periodic_skip_delay_s),
        RateLimit(
            limiter_backend(settings, database),
            guard_ms=settings.rate_limit_guard_ms,
            hold_ms=settings.rate_limit_hold_ms,
            lease_ttl_ms=settings.concurrency_lease_ttl_ms,
        ),
        job_status,
        # Dramatiq's default middleware, in Dramatiq's order.
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(),
        CurrentMessage(),
        # Stores the result of a job with its SUCCESS, in one transaction.
        Results(
            backend=PostgresBackend(database=database, spool_dir=settings.tmp_dir),
            result_ttl=result_ttl_ms,
            job_status=job_status,
        ),
        WorkerRegistry(WorkerStore(database), settings.broker_heartbeat_timeout_s),
    ]


def limiter_backend(settings: Settings, database: Database) -> LimiterBackend:
    """Return the rate-limiter backend ``GEOTASKS_RATE_LIMIT_URL`` names: ``database`` by default.

    Raises:
      ConfigurationError: when it names Redis and the redis client is not installed.
    """
    url = settings.rate_limit_url
    if url is None:
        return PostgresLimiterBackend(database)
    if urlsplit(url).scheme in {"redis", "rediss"}:
        try:
            from .redis.rate_limits import RedisBackend
        except ImportError as exc:
            raise ConfigurationError(
                "GEOTASKS_RATE_LIMIT_URL names Redis, but the redis client is not installed: "
                "pip install 'geotasks[redis]'"
            ) from exc
        return RedisBackend(url=url)
    return PostgresLimiterBackend(
        get_database(
            url,
            max_connections=settings.pool_max_connections,
            connect_timeout_s=settings.connect_timeout_s,
        )
    )


#: The classes :func:`build_middleware` installs, in its order.
MIDDLEWARE_TYPES: tuple[type[Middleware], ...] = (
    DeliveryLimit,
    PeriodicDeduplication,
    RateLimit,
    JobStatus,
    AgeLimit,
    TimeLimit,
    ShutdownNotifications,
    Callbacks,
    Pipelines,
    Retries,
    CurrentMessage,
    Results,
    WorkerRegistry,
)


@functools.cache
def known_actor_options() -> frozenset[str]:
    """Every actor option geotasks' middleware declare, known before any broker is built.

    ``@geotasks.actor`` checks options with this when it declares an actor, so that a typo
    fails at import, not at the first send. Each middleware's ``actor_options`` is a constant
    set, a class attribute or a property read from an instance that was never initialised.
    """
    options: set[str] = set()
    for middleware_type in MIDDLEWARE_TYPES:
        declared = inspect.getattr_static(middleware_type, "actor_options")
        if isinstance(declared, property):
            declared = declared.fget(object.__new__(middleware_type))  # type: ignore[misc]
        options |= set(declared)
    return frozenset(options)


def build_broker(settings: Settings) -> dramatiq.Broker:
    """Return a new broker for ``settings.effective_broker_url``, with geotasks' middleware.

    Raises:
      ConfigurationError: when no database is configured, or the broker's client library is
        not installed.
    """
    # Every broker needs the database: the middleware keep their state there.
    url = settings.broker_url or settings.require_database_url()
    middleware = build_middleware(settings, database_for(settings))
    scheme = urlsplit(url).scheme
    if scheme in POSTGRES_SCHEMES:
        from .postgres.broker import PostgresBroker

        broker = PostgresBroker(
            database=get_database(
                url,
                max_connections=settings.pool_max_connections,
                connect_timeout_s=settings.connect_timeout_s,
            ),
            middleware=middleware,
            heartbeat_timeout_s=settings.broker_heartbeat_timeout_s,
            # The poison guard decides which message killed its worker; the broker only steps
            # in if it was not given the chance.
            max_deliveries=most_deaths_before_rejection(settings.max_deliveries),
        )
        job_status = next(m for m in middleware if isinstance(m, JobStatus))
        if job_status.store.database is broker.database:
            # PENDING goes in the enqueue's round trip and commit.
            broker.send_with_enqueue(job_status.record_with_enqueue)
        return broker
    if scheme in {"redis", "rediss"}:
        try:
            from .redis.broker import RedisBroker
        except ImportError as exc:
            raise ConfigurationError(
                "GEOTASKS_BROKER_URL names a Redis broker, but the redis client is not "
                "installed: pip install 'geotasks[redis]'"
            ) from exc
        return RedisBroker(
            url=url,
            middleware=middleware,
            heartbeat_timeout=settings.broker_heartbeat_timeout_s * 1000,
            # A dead worker's messages are back within 1.25 heartbeat timeouts.
            maintenance_interval_s=settings.broker_heartbeat_timeout_s / 4,
        )
    if scheme in {"amqp", "amqps"}:
        try:
            from dramatiq.brokers.rabbitmq import RabbitmqBroker
        except ImportError as exc:
            raise ConfigurationError(
                "GEOTASKS_BROKER_URL names a RabbitMQ broker, but pika is not installed: "
                "pip install 'geotasks[rabbitmq]'"
            ) from exc
        return RabbitmqBroker(url=url, middleware=middleware)
    raise ConfigurationError(f"no broker for {redact_url(url)}")


def current_broker() -> dramatiq.Broker | None:
    """geotasks' broker if :func:`setup_broker` has built one in this process, else ``None``."""
    return _broker


def setup_broker() -> dramatiq.Broker:
    """Build the broker from this process's settings and make it Dramatiq's global broker.

    Every actor declared with ``@geotasks.actor`` (and no broker of its own) is bound to it, and
    so is every actor declared later. Later calls return the same broker, unless the settings
    changed since (tests, or an application that reconfigures), in which case a broker for the
    new settings replaces it and the actors move to it.

    Raises:
      ConfigurationError: when no database is configured.
    """
    global _broker, _broker_settings
    settings = get_settings()
    with _setup_lock:
        if _broker is None or settings != _broker_settings:
            _broker = build_broker(settings)
            _broker_settings = settings
            dramatiq.set_broker(_broker)
            for declared in list(DECLARED.values()):
                declared.bind(_broker)
        return _broker
