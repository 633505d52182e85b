"""A Dramatiq stack with geotasks' middleware (as :func:`geotasks.broker.build_middleware`
orders it), on a real broker.

``stack`` is parametrised over the brokers the tests run on: geotasks' Postgres broker (on the
test's own database), Redis (a unique key namespace per test, deleted afterwards: the server is
shared) and Dramatiq's StubBroker (in-process queues). ``limiter_backend`` is each rate-limiter
backend in turn, Postgres and Redis.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dramatiq
import dramatiq.broker
import pytest
from dramatiq.broker import Broker
from dramatiq.brokers.stub import StubBroker

from geotasks.broker import build_middleware
from geotasks.jobs import Job
from geotasks.postgres import listener as listener_module
from geotasks.postgres.broker import PostgresBroker
from geotasks.postgres.job_status import JobStore
from geotasks.postgres.pool import Database
from geotasks.postgres.rate_limits import PostgresBackend as PostgresLimiterBackend
from geotasks.postgres.results import PostgresBackend
from geotasks.rate_limits import LimiterBackend
from geotasks.settings import Settings

#: Default result TTL of the test stack, in milliseconds.
RESULT_TTL_MS = 60_000


@dataclass
class Stack:
    """A broker with geotasks' middleware, the stores behind it, and helpers."""

    broker: Broker
    database: Database
    backend: PostgresBackend
    store: JobStore
    settings: Settings

    def actor(self, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        """Declare ``fn`` as an actor on this broker, storing results, retrying fast."""
        options = {"store_results": True, "max_retries": 0, "min_backoff": 10, **options}

        def declare(fn: Callable[..., Any]) -> Any:
            return dramatiq.actor(fn, broker=self.broker, **options)

        return declare(fn) if fn is not None else declare

    @contextlib.contextmanager
    def worker(self, threads: int = 2) -> Iterator[dramatiq.Worker]:
        """Run an in-process worker for the block."""
        worker = dramatiq.Worker(self.broker, worker_timeout=50, worker_threads=threads)
        worker.start()
        try:
            yield worker
        finally:
            worker.stop(timeout=10_000)

    def job(self, job_id: str) -> Job:
        """A client handle on ``job_id`` through this test's database."""
        return Job(job_id, database=self.database, settings=self.settings)


@pytest.fixture
def listeners_closed(database_url: str) -> Iterator[None]:
    """Close this process's LISTEN connections to the test database before it is dropped.

    Otherwise the shared listener would try to reconnect to a dropped database forever.
    """
    yield
    for key in [key for key in listener_module._listeners if key[1] == database_url]:
        listener_module._listeners.pop(key).close()


@pytest.fixture
def backend(database: Database, tmp_path: Path, listeners_closed: None) -> PostgresBackend:
    return PostgresBackend(database=database, spool_dir=tmp_path / "spool")


@pytest.fixture
def settings(geotasks_env: str, tmp_path: Path) -> Settings:
    """Settings of the test database; ``GEOTASKS_DATABASE_URL`` points there too."""
    return Settings(database_url=geotasks_env, tmp_dir=tmp_path / "tmp")


@pytest.fixture(params=["postgres", "redis", "stub"])
def stack(
    request: pytest.FixtureRequest,
    database: Database,
    backend: PostgresBackend,
    settings: Settings,
) -> Iterator[Stack]:
    middleware = build_middleware(
        Settings(database_url=settings.database_url, result_ttl_s=RESULT_TTL_MS // 1000),
        database,
    )
    namespace = f"geotasks-test-{uuid.uuid4().hex[:12]}"
    broker: Broker
    if request.param == "postgres":
        broker = PostgresBroker(database=database, middleware=middleware)
    elif request.param == "redis":
        from dramatiq.brokers.redis import RedisBroker

        redis_url = request.getfixturevalue("redis_url")
        broker = RedisBroker(url=redis_url, namespace=namespace, middleware=middleware)
    else:
        broker = StubBroker(middleware=middleware)
    previous = dramatiq.broker.global_broker
    dramatiq.set_broker(broker)
    broker.emit_after("process_boot")
    try:
        yield Stack(broker, database, backend, JobStore(database), settings)
    finally:
        dramatiq.broker.global_broker = previous
        if request.param == "redis":
            client = broker.client  # type: ignore[attr-defined]
            keys = list(client.scan_iter(f"{namespace}:*"))
            if keys:
                client.delete(*keys)
        broker.close()


@pytest.fixture(params=["postgres", "redis"])
def limiter_backend(request: pytest.FixtureRequest) -> Iterator[LimiterBackend]:
    """Each rate-limiter backend in turn, on a fresh database or Redis' test db."""
    if request.param == "postgres":
        request.getfixturevalue("listeners_closed")
        yield PostgresLimiterBackend(request.getfixturevalue("database"))
        return
    from geotasks.redis.rate_limits import RedisBackend

    backend = RedisBackend(url=request.getfixturevalue("redis_url"))
    try:
        yield backend
    finally:
        backend.client.close()


@pytest.fixture
def limiter_key() -> str:
    """A key no other test (or engineer sharing the Redis server) uses."""
    return f"geotasks-test-{uuid.uuid4().hex}"
