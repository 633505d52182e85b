"""Execute → poll → results over HTTP, with the Postgres broker and a real worker process.

Nothing is stubbed: the app sends through the broker ``geotasks.broker`` builds from the
settings (geotasks' Postgres broker and its middleware), a ``dramatiq geotasks.worker`` process
claims the message and runs the ``echo`` actor, the job status and results middleware record
it, and the app reads it back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import dramatiq.broker
import pytest
from starlette.testclient import TestClient

from geotasks.broker import build_broker, database_for
from geotasks.http.app import create_app
from geotasks.http.store import JobAccess
from geotasks.postgres.listener import close_listeners
from geotasks.postgres.pool import Database
from geotasks.settings import Settings
from tests.integration.http.conftest import wait_for_status

ROOT = Path(__file__).resolve().parents[3]
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
    log = tmp_path / "worker.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOTASKS_")}
    env["GEOTASKS_DATABASE_URL"] = settings.require_database_url()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dramatiq",
                "geotasks.worker",
                "geotasks.http.echo",
                "--processes",
                "1",
                "--threads",
                "2",
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while b"ready for action" not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the worker did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
