"""Execute → poll → results over HTTP, with the Postgres broker and a real Dramatiq worker.

Nothing is stubbed: the app sends through geotasks' Postgres broker, a ``dramatiq.Worker``
(in this process, so the test stays fast) claims the message from Postgres and runs the
``echo`` actor, the job status and results middleware record it, and the app reads it back.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import dramatiq
import dramatiq.broker
import pytest
from dramatiq.middleware import CurrentMessage, default_middleware
from starlette.testclient import TestClient

from geotasks.http.app import create_app
from geotasks.http.store import JobAccess
from geotasks.middleware.deliveries import DeliveryLimit
from geotasks.middleware.job_status import JobStatus
from geotasks.middleware.results import Results
from geotasks.postgres.broker import PostgresBroker
from geotasks.postgres.job_status import JobStore
from geotasks.postgres.listener import get_listener
from geotasks.postgres.pool import Database
from geotasks.postgres.results import PostgresBackend
from geotasks.settings import Settings
from tests.integration.http.conftest import wait_for_status


@pytest.fixture
def postgres_broker(database: Database, settings: Settings) -> Iterator[PostgresBroker]:
    """geotasks' Postgres broker with the production middleware order, set globally."""
    ttl_ms = settings.result_ttl_s * 1000
    broker = PostgresBroker(
        database=database,
        middleware=[
            DeliveryLimit(database, max_deliveries=settings.max_deliveries),
            JobStatus(store=JobStore(database), result_ttl_ms=ttl_ms),
            *(middleware() for middleware in default_middleware),
            CurrentMessage(),
            Results(backend=PostgresBackend(database=database), result_ttl=ttl_ms),
        ],
    )
    previous = dramatiq.broker.global_broker
    dramatiq.set_broker(broker)
    broker.declare_actor(importlib.import_module("geotasks.http.echo").echo)
    broker.emit_after("process_boot")
    try:
        yield broker
    finally:
        broker.close()
        dramatiq.broker.global_broker = previous
        get_listener(database).close()


def test_execute_poll_and_fetch_the_result_through_a_real_worker(
    postgres_broker: PostgresBroker, database: Database, settings: Settings
) -> None:
    app = create_app(settings, access=JobAccess(database, settings))
    worker = dramatiq.Worker(postgres_broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        with TestClient(app) as client:
            # Given a running worker, When a job is executed over HTTP
            created = client.post(
                "/processes/echo/execution",
                json={
                    "inputs": {
                        "stringInput": "through postgres",
                        "arrayInput": [1, 2],
                        "pause_s": 0.5,
                    }
                },
            )
            assert created.status_code == 201
            job_url = created.headers["location"]
            # Then it is followed to its end by polling its status
            status = wait_for_status(client, created.json()["jobID"], {"successful", "failed"})
            assert status["status"] == "successful", status
            assert status["progress"] == 100
            # And its result is what the worker computed
            results = client.get(f"{job_url}/results")
            assert results.headers["content-type"] == "application/json"
            assert results.json() == {"stringInput": "through postgres", "arrayInput": [1, 2]}
            # And the job list shows it
            listed = client.get("/jobs?processID=echo&status=successful").json()["jobs"]
            assert [job["jobID"] for job in listed] == [status["jobID"]]
            # And once dismissed, it is gone
            assert client.delete(job_url).status_code == 200
            assert client.get(job_url).status_code == 404
    finally:
        worker.stop(timeout=10_000)
