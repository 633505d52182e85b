"""Fixtures for integration tests: a rate-limiter backend on each real server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from geotasks.postgres.listener import get_listener
from geotasks.postgres.pool import Database
from geotasks.postgres.rate_limits import PostgresBackend
from geotasks.rate_limits import LimiterBackend


@pytest.fixture(params=["postgres", "redis"])
def limiter_backend(request: pytest.FixtureRequest) -> Iterator[LimiterBackend]:
    """Each rate-limiter backend in turn, on a fresh database or Redis' test db."""
    if request.param == "postgres":
        database: Database = request.getfixturevalue("database")
        try:
            yield PostgresBackend(database)
        finally:
            # `wait` started this process's listener on the test's database, about to be dropped.
            get_listener(database).close()
        return
    from geotasks.rate_limits.redis import RedisBackend

    backend = RedisBackend(url=request.getfixturevalue("redis_url"))
    try:
        yield backend
    finally:
        backend.client.close()


@pytest.fixture
def limiter_key() -> str:
    """A key no other test (or engineer sharing the Redis server) uses."""
    return f"geotasks-test-{uuid.uuid4().hex}"
