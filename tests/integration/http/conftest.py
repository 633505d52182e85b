"""Fixtures of the HTTP API tests: the app on a fresh database, a broker, a worker.

The app runs in-process (Starlette's TestClient). Jobs are sent through a Dramatiq broker
carrying geotasks' job status and results middleware, so their statuses and results land in
the test's Postgres database exactly as in a deployment; ``worker`` runs them.
"""

from __future__ import annotations

import importlib
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import dramatiq.broker
import orjson
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.message import Message
from dramatiq.middleware import AgeLimit
from starlette.testclient import TestClient

from geotasks.broker import build_broker, database_for
from geotasks.http.app import create_app
from geotasks.http.store import JobAccess
from geotasks.job_model import JobError, JobState
from geotasks.middleware.job_status import JobStatus
from geotasks.middleware.results import Results
from geotasks.postgres.job_status import JobStore
from geotasks.postgres.listener import close_listeners
from geotasks.postgres.pool import Database
from geotasks.postgres.results import PostgresBackend
from geotasks.settings import Settings, load_settings
from tests.processes import READY_LINE, clean_environment, dramatiq_command, started

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
    job_status = JobStatus(store=JobStore(database), result_ttl_ms=settings.result_ttl_s * 1000)
    broker.add_middleware(job_status, before=AgeLimit)
    broker.add_middleware(
        Results(
            backend=PostgresBackend(database=database),
            result_ttl=settings.result_ttl_s * 1000,
            job_status=job_status,
        )
    )
    dramatiq.set_broker(broker)
    # The echo actor is declared once per process; each test's broker gets it.
    importlib.import_module("geotasks.http.echo").echo.bind(broker)
    try:
        yield broker
    finally:
        broker.close()
        dramatiq.broker.global_broker = previous
        # The database is dropped next: its LISTEN connection must not keep reconnecting.
        close_listeners(database.url)


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
    app = create_app(settings, access=JobAccess(database, settings, broker=broker))
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


@pytest.fixture
def secured_client(
    database: Database, geotasks_env: str, broker: StubBroker
) -> Iterator[TestClient]:
    """A client of an API that asks for a bearer token (sending none by itself)."""
    settings = make_settings(geotasks_env, api_tokens=TOKEN)
    app = create_app(settings, access=JobAccess(database, settings, broker=broker))
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


def record_job(
    database: Database,
    states: list[JobState],
    *,
    actor_name: str = "echo",
    error: JobError | None = None,
) -> str:
    """Record a job going through ``states`` in the job store, as the middleware would.

    Returns:
      str: the new job's id.
    """
    store = JobStore(database)
    job_id = str(uuid.uuid4())
    for state in states:
        store.transition(
            job_id,
            actor_name=actor_name,
            queue_name="geo",
            status=state,
            attempt=0,
            ttl_ms=3_600_000,
            error=error if state is JobState.FAILURE else None,
        )
    return job_id


def finished_job(
    database: Database, result: object, *, actor_name: str = "shapefile_to_geojson"
) -> str:
    """Record a job that succeeded with ``result`` (a GeoJSONResult or a JSON value)."""
    job_id = record_job(database, [JobState.PENDING, JobState.STARTED], actor_name=actor_name)
    message: Message[Any] = Message(
        queue_name="geo",
        actor_name=actor_name,
        args=(),
        kwargs={},
        options={},
        message_id=job_id,
    )
    PostgresBackend(database=database).store_result(message, result, 3_600_000)
    JobStore(database).transition(
        job_id,
        actor_name=actor_name,
        queue_name="geo",
        status=JobState.SUCCESS,
        attempt=0,
        ttl_ms=3_600_000,
    )
    return job_id


def shift_job(database: Database, job_id: str, **ages_s: float) -> None:
    """Move a job's timestamps into the past: ``created=60`` sets created_at to 60 s ago."""
    columns = {"created": "created_at", "started": "started_at", "finished": "finished_at"}

    def work(cursor: Any) -> None:
        for name, age_s in ages_s.items():
            column = columns[name]
            cursor.execute(
                f"UPDATE geotasks.job SET {column} = now() - make_interval(secs => %s) "
                "WHERE message_id = %s",
                (age_s, job_id),
            )

    database.transaction(work)


def feature_collection(count: int) -> bytes:
    """An RFC 7946 FeatureCollection of ``count`` small squares and one point, encoded."""
    features = [
        {
            "type": "Feature",
            "properties": {"id": i, "name": f"square {i}"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[i, 45.0], [i + 0.5, 45.0], [i + 0.5, 45.5], [i, 45.5], [i, 45.0]]
                ],
            },
        }
        for i in range(count)
    ]
    features.append(
        {
            "type": "Feature",
            "properties": {"id": count},
            "geometry": {"type": "Point", "coordinates": [2.35, 48.85]},
        }
    )
    return orjson.dumps({"type": "FeatureCollection", "features": features})


def wait_for_status(
    client: TestClient, job_id: str, statuses: set[str], timeout_s: float = 20.0
) -> dict[str, Any]:
    """Poll ``/jobs/{id}`` until its status is one of ``statuses``; return the statusInfo."""
    deadline = time.monotonic() + timeout_s
    while True:
        document: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if document.get("status") in statuses:
            return document
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} stayed {document.get('status')} for {timeout_s} s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def static_client(module_database_url: str) -> Iterator[TestClient]:
    """A client of the open API for tests of resources that do not change (no jobs)."""
    settings = make_settings(module_database_url)
    database = Database(module_database_url, max_connections=2)
    app = create_app(settings, access=JobAccess(database, settings))
    try:
        with TestClient(app, base_url="http://testserver") as test_client:
            yield test_client
    finally:
        close_listeners(database.url)
        database.close()


#: Longest the worker process may take to start, in seconds.
WORKER_START_TIMEOUT_S = 30


@pytest.fixture
def production_broker(settings: Settings) -> Iterator[dramatiq.Broker]:
    """The broker a deployment builds from these settings, set as Dramatiq's global broker."""
    broker = build_broker(settings)
    previous = dramatiq.broker.global_broker
    dramatiq.set_broker(broker)
    try:
        yield broker
    finally:
        broker.close()
        dramatiq.broker.global_broker = previous
        close_listeners(database_for(settings).url)


@pytest.fixture
def worker_process(settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``dramatiq geotasks.worker geotasks.http.echo`` on the test's database, until it is ready."""
    with started(
        dramatiq_command(
            "geotasks.worker", "geotasks.http.echo", "--processes", "1", "--threads", "2"
        ),
        clean_environment(GEOTASKS_DATABASE_URL=settings.require_database_url()),
        tmp_path / "worker.log",
        stop_timeout_s=20,
    ) as worker:
        worker.wait_for_log(READY_LINE, timeout_s=WORKER_START_TIMEOUT_S)
        yield worker.process
