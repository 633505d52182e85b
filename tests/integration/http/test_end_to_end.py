"""Execute → poll → results over HTTP, with the Postgres broker and a real worker process.

Nothing is stubbed: the app sends through the broker ``geotasks.broker`` builds from the
settings (geotasks' Postgres broker and its middleware), a ``dramatiq geotasks.worker`` process
claims the message and runs the ``echo`` actor, the job status and results middleware record
it, and the app reads it back.
"""

from __future__ import annotations

import subprocess

import dramatiq
import dramatiq.broker
from starlette.testclient import TestClient

from geotasks.http.app import create_app
from geotasks.http.store import JobAccess
from geotasks.postgres.pool import Database
from geotasks.settings import Settings
from tests.integration.http.conftest import wait_for_status


def test_execute_poll_and_fetch_the_result_through_a_worker_process(
    production_broker: dramatiq.Broker,
    worker_process: subprocess.Popen[bytes],
    database: Database,
    settings: Settings,
) -> None:
    app = create_app(settings, access=JobAccess(database, settings, broker=production_broker))
    with TestClient(app) as client:
        # Given a running worker, When a job is executed over HTTP
        created = client.post(
            "/processes/echo/execution",
            json={
                "inputs": {"stringInput": "through postgres", "arrayInput": [1, 2], "pause_s": 0.5}
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
