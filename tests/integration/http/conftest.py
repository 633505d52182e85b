"""Fixtures of the HTTP API tests: the app on a fresh database, a broker, a worker.

The app runs in-process (Starlette's TestClient). Jobs are sent through a Dramatiq broker
carrying geotasks' job status and results middleware, so their statuses and results land in
the test's Postgres database exactly as in a deployment; ``worker`` runs them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import dramatiq
import dramatiq.broker
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AgeLimit
from starlette.testclient import TestClient

from geotasks.http.app import create_app
from geotasks.http.store import JobAccess
from geotasks.middleware.job_status import JobStatus
from geotasks.middleware.results import Results
from geotasks.postgres.job_status import JobStore
from geotasks.postgres.pool import Database
from geotasks.postgres.results import PostgresBackend
from geotasks.settings import Settings, load_settings

#: A bearer token the secured app accepts.
TOKEN = "test-token-0123456789abcdef"


def make_settings(database_url: str, **overrides: str) -> Settings:
    """Settings on ``database_url``, with ``GEOTASKS_*`` overrides (``api_tokens=…``)."""
    environ = {"GEOTASKS_DATABASE_URL": database_url, "GEOTASKS_API_SYNC_WAIT_S": "10"}
    environ.update({f"GEOTASKS_{name.upper()}": value for name, value in overrides.items()})
    return load_settings(environ)


@pytest.fixture
def settings(geotasks_env: str) -> Settings:
    """Settings of an open (token-less) API on this test's database (also in the environment,
    where ``geotasks.submit`` reads it)."""
    return make_settings(geotasks_env)


@pytest.fixture
def broker(database: Database, settings: Settings) -> Iterator[StubBroker]:
    """A broker recording job status and results in this test's database, set globally."""
    previous = dramatiq.broker.global_broker
    broker = StubBroker()
    broker.add_middleware(
        JobStatus(store=JobStore(database), result_ttl_ms=settings.result_ttl_s * 1000),
        before=AgeLimit,
    )
    broker.add_middleware(
        Results(backend=PostgresBackend(database=database), result_ttl=settings.result_ttl_s * 1000)
    )
    dramatiq.set_broker(broker)
    # The echo actor is declared once per process, on the first broker; later brokers get it too.
    echo = importlib.import_module("geotasks.http.echo").echo
    broker.declare_actor(echo)
    try:
        yield broker
    finally:
        broker.close()
        dramatiq.broker.global_broker = previous


@pytest.fixture
def worker(broker: StubBroker) -> Iterator[dramatiq.Worker]:
    """A worker running the broker's jobs in this process."""
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def client(database: Database, settings: Settings, broker: StubBroker) -> Iterator[TestClient]:
    """A client of the open API."""
    app = create_app(settings, access=JobAccess(database, settings))
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


@pytest.fixture
def secured_client(
    database: Database, geotasks_env: str, broker: StubBroker
) -> Iterator[TestClient]:
    """A client of an API that asks for a bearer token (sending none by itself)."""
    settings = make_settings(geotasks_env, api_tokens=TOKEN)
    app = create_app(settings, access=JobAccess(database, settings))
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client
