"""Choosing and assembling the broker from settings (no server is contacted)."""

from __future__ import annotations

import sys

import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from geotasks.broker import MIDDLEWARE_TYPES, build_broker, known_actor_options
from geotasks.errors import ConfigurationError
from geotasks.middleware.deliveries import DeliveryLimit
from geotasks.middleware.job_status import JobStatus
from geotasks.middleware.periodic import PeriodicDeduplication
from geotasks.middleware.rate_limit import RateLimit
from geotasks.middleware.results import Results
from geotasks.middleware.workers import WorkerRegistry
from geotasks.postgres.broker import PostgresBroker
from geotasks.postgres.rate_limits import PostgresBackend as PostgresLimiterBackend
from geotasks.postgres.results import PostgresBackend
from geotasks.redis.broker import RedisBroker
from geotasks.redis.rate_limits import RedisBackend as RedisLimiterBackend
from geotasks.settings import Settings

DATABASE_URL = "postgresql://app@db.example/geotasks"


@pytest.mark.parametrize(
    ("broker_url", "expected"),
    [
        (None, PostgresBroker),
        ("postgres://app@queue.example/geotasks", PostgresBroker),
        ("redis://cache.example:6379/0", RedisBroker),
        ("amqp://guest:guest@rabbit.example:5672/%2F", RabbitmqBroker),
    ],
)
def test_the_broker_url_scheme_chooses_the_broker(
    broker_url: str | None, expected: type[object]
) -> None:
    # Given settings naming a broker (or only the database)
    settings = Settings(database_url=DATABASE_URL, broker_url=broker_url)

    # When the broker is built, Then it is the broker of that scheme
    assert type(build_broker(settings)) is expected


def test_without_a_database_it_refuses_instead_of_falling_back_to_a_local_rabbitmq() -> None:
    with pytest.raises(ConfigurationError, match="GEOTASKS_DATABASE_URL is not set"):
        build_broker(Settings())


def test_the_middleware_are_in_the_documented_order() -> None:
    broker = build_broker(Settings(database_url=DATABASE_URL))
    assert [type(m) for m in broker.middleware] == [
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
    ]


def test_results_and_job_status_keep_results_for_the_configured_time() -> None:
    broker = build_broker(Settings(database_url=DATABASE_URL, result_ttl_s=120))
    results = next(m for m in broker.middleware if isinstance(m, Results))
    status = next(m for m in broker.middleware if isinstance(m, JobStatus))
    assert isinstance(results.backend, PostgresBackend)
    assert results.result_ttl == status.result_ttl_ms == 120_000


def test_the_postgres_broker_gets_the_heartbeat_and_delivery_settings() -> None:
    broker = build_broker(
        Settings(database_url=DATABASE_URL, broker_heartbeat_timeout_s=7, max_deliveries=3)
    )
    assert isinstance(broker, PostgresBroker)
    assert broker.heartbeat_timeout_s == 7
    # The broker's own limit leaves the decision to the poison guard, which allows up to
    # 2 x 3 + 1 deaths of a message that did not run alone
    assert broker.max_deliveries == 7


def test_the_redis_broker_runs_maintenance_every_quarter_heartbeat() -> None:
    # Given a Redis broker whose workers count as dead after 8 s without a heartbeat
    settings = Settings(
        database_url=DATABASE_URL,
        broker_url="redis://cache.example/0",
        broker_heartbeat_timeout_s=8,
    )
    # When it is built, Then it hands a dead worker's messages back at least every 2 s
    broker = build_broker(settings)
    assert isinstance(broker, RedisBroker)
    assert broker.heartbeat_timeout == 8000
    assert broker.maintenance_interval_s == 2


@pytest.mark.parametrize(
    ("module", "url", "extra"),
    [
        ("dramatiq.brokers.redis", "redis://cache.example/0", "geotasks[redis]"),
        ("dramatiq.brokers.rabbitmq", "amqp://rabbit.example/", "geotasks[rabbitmq]"),
    ],
)
def test_a_missing_client_library_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, module: str, url: str, extra: str
) -> None:
    # Given a broker whose client library cannot be imported (nor geotasks' module using it)
    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.delitem(sys.modules, "geotasks.redis.broker", raising=False)

    # When it is built, Then the error says what to install
    with pytest.raises(ConfigurationError, match=extra.replace("[", r"\[").replace("]", r"\]")):
        build_broker(Settings(database_url=DATABASE_URL, broker_url=url))


def test_actor_options_are_known_before_any_broker_is_built() -> None:
    # @geotasks.actor checks options at declaration, from the middleware classes alone
    broker = build_broker(Settings(database_url=DATABASE_URL))
    assert list(MIDDLEWARE_TYPES) == [type(m) for m in broker.middleware]
    assert known_actor_options() == broker.actor_options


@pytest.mark.parametrize(
    ("rate_limit_url", "expected", "server"),
    [
        (None, PostgresLimiterBackend, DATABASE_URL),
        ("postgresql://app@limits.example/geotasks", PostgresLimiterBackend, "limits.example"),
        ("redis://cache.example:6379/2", RedisLimiterBackend, "cache.example"),
    ],
)
def test_the_rate_limit_url_chooses_the_limiter_backend(
    rate_limit_url: str | None, expected: type[object], server: str
) -> None:
    # Given settings naming a rate-limit store (or only the database)
    settings = Settings(database_url=DATABASE_URL, rate_limit_url=rate_limit_url)

    # When the middleware is built, Then the rate limits are kept there
    (rate_limit,) = [m for m in build_broker(settings).middleware if isinstance(m, RateLimit)]
    backend = rate_limit.backend
    assert type(backend) is expected
    if isinstance(backend, PostgresLimiterBackend):
        assert server in backend.database.url
    else:
        assert backend.client.connection_pool.connection_kwargs["host"] == server


def test_a_missing_redis_client_for_rate_limits_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given Redis rate limits, but no importable Redis client
    monkeypatch.setitem(sys.modules, "redis", None)
    for module in ("geotasks.redis", "geotasks.redis.rate_limits"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    settings = Settings(database_url=DATABASE_URL, rate_limit_url="redis://cache.example/2")

    # When the middleware is built, Then the error says what to install
    with pytest.raises(ConfigurationError, match=r"pip install 'geotasks\[redis\]'"):
        build_broker(settings)
