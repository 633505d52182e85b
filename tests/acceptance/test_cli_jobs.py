"""`geotasks submit / status / result / jobs` as a user runs them, against a real worker."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from dramatiq.message import Message

from geotasks.geo.result import GeoJSONResult
from geotasks.job_model import JobError, JobState
from geotasks.middleware.job_status import JobStatus
from geotasks.postgres.job_status import JobStore
from geotasks.postgres.pool import Database
from geotasks.postgres.results import PostgresBackend
from tests.acceptance.conftest import RunGeotasks, clean_environment
from tests.processes import Process, dramatiq_command, started

DOCUMENT = orjson.dumps(
    {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [7.44, 46.95]}}
        ],
    }
)
#: Longest a worker process may take to start and stop, in seconds.
WORKER_TIMEOUT_S = 30


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return clean_environment(GEOTASKS_DATABASE_URL=database_url)


def finished_job(database: Database, result: Any = None, error: Exception | None = None) -> str:
    """Record a job as a worker would: PENDING, STARTED, then its result or failure."""
    store = JobStore(database)
    backend = PostgresBackend(database=database)
    middleware = JobStatus(store=store, result_ttl_ms=60_000)
    message: Message[Any] = Message(
        queue_name="geo", actor_name="buffer_features", args=("parcels", 5), kwargs={}, options={}
    )
    middleware.after_enqueue(None, message, None)  # type: ignore[arg-type]
    store.transition(
        message.message_id,
        actor_name=message.actor_name,
        queue_name="geo",
        status=JobState.STARTED,
        attempt=0,
    )
    if error is None:
        backend.store_result(message, result, 60_000)
        status, job_error = JobState.SUCCESS, None
    else:
        backend.store_exception(message, error, 60_000)
        status, job_error = JobState.FAILURE, JobError(type(error).__name__, str(error))
    store.transition(
        message.message_id,
        actor_name=message.actor_name,
        queue_name="geo",
        status=status,
        attempt=0,
        ttl_ms=60_000,
        error=job_error,
    )
    return message.message_id


def test_status_result_and_jobs_of_a_finished_geojson_job(
    run_geotasks: RunGeotasks, env: dict[str, str], database: Database, tmp_path: Path
) -> None:
    # Given a job that produced a GeoJSON document
    job_id = finished_job(database, GeoJSONResult.from_bytes(DOCUMENT))

    # Then `status` shows it with its timestamps and result
    status = run_geotasks("status", job_id, env=env)
    assert status.returncode == 0, status.stderr
    assert "status:   SUCCESS" in status.stdout
    assert "buffer_features (queue geo)" in status.stdout
    assert f"{len(DOCUMENT):,} bytes application/geo+json" in status.stdout
    as_json = json.loads(run_geotasks("status", job_id, "--json", env=env).stdout)
    assert as_json["status"] == "SUCCESS"
    assert as_json["started_at"] is not None

    # And `result` writes the exact bytes to a file, or to standard output
    saved = run_geotasks("result", job_id, "-o", "out.geojson", env=env)
    assert saved.returncode == 0, saved.stderr
    assert (tmp_path / "out.geojson").read_bytes() == DOCUMENT
    streamed = subprocess.run(
        [sys.executable, "-m", "geotasks.cli", "result", job_id],
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert streamed.stdout == DOCUMENT

    # And `jobs` lists it, and filters by status
    jobs = run_geotasks("jobs", env=env)
    assert jobs.returncode == 0, jobs.stderr
    header, row = jobs.stdout.splitlines()
    assert header.split()[:3] == ["ID", "ACTOR", "STATUS"]
    assert row.split()[:3] == [job_id, "buffer_features", "SUCCESS"]
    assert job_id not in run_geotasks("jobs", "--status", "failure", env=env).stdout


def test_a_failed_job_shows_its_error_and_traceback(
    run_geotasks: RunGeotasks, env: dict[str, str], database: Database
) -> None:
    def read_dataset() -> None:
        raise ValueError("parcels.shp has no .dbf")

    try:
        read_dataset()
    except ValueError as exc:
        job_id = finished_job(database, error=exc)

    status = run_geotasks("status", job_id, env=env)
    assert "error:    ValueError: parcels.shp has no .dbf" in status.stdout

    result = run_geotasks("result", job_id, env=env)
    assert result.returncode == 1
    assert "failed: ValueError: parcels.shp has no .dbf" in result.stderr
    assert "in read_dataset" in result.stderr
    assert job_id in run_geotasks("jobs", "--status", "FAILURE", env=env).stdout


def test_an_unknown_id_reads_unknown(run_geotasks: RunGeotasks, env: dict[str, str]) -> None:
    status = run_geotasks("status", "no-such-job", env=env)
    assert status.returncode == 1
    assert "UNKNOWN" in status.stdout
    result = run_geotasks("result", "no-such-job", env=env)
    assert result.returncode == 2
    assert "no job no-such-job" in result.stderr


def test_submit_refuses_an_unknown_actor_or_argument_before_sending(
    run_geotasks: RunGeotasks, env: dict[str, str]
) -> None:
    unknown = run_geotasks("submit", "bufer_features", "parcels", env=env)
    assert unknown.returncode == 2
    assert "did you mean buffer_features" in unknown.stderr
    bad = run_geotasks("submit", "buffer_features", "parcels", "--distance", "5", env=env)
    assert bad.returncode == 2
    assert "unknown argument 'distance' (did you mean distance_m?)" in bad.stderr
    assert run_geotasks("jobs", env=env).stdout.splitlines()[1:] == []


def test_submit_wait_reports_the_time_it_actually_waited(
    run_geotasks: RunGeotasks, env: dict[str, str]
) -> None:
    # Given no worker, when a job is followed for 2 s
    started = time.monotonic()
    waited = run_geotasks(
        "submit", "measure_features", "naturalearth_cities", "--wait", "--timeout", "2", env=env
    )

    # Then the command gives up saying how long it waited, not how long its last step was
    assert waited.returncode == 2
    match = re.search(
        r"did not finish within ([0-9.]+) s \(--timeout 2\); it is PENDING", waited.stderr
    )
    assert match is not None, waited.stderr
    assert 2.0 <= float(match.group(1)) <= time.monotonic() - started


@pytest.fixture
def worker(env: dict[str, str], tmp_path: Path, database_url: str) -> Iterator[Process]:
    """``dramatiq geotasks.worker`` serving the demo actors (an application module) on the test
    database, once it has published them; stopped with SIGTERM afterwards."""
    with started(
        dramatiq_command("geotasks.worker", "--processes", "1", "--threads", "2"),
        {**env, "GEOTASKS_MODULES": "geotasks.demo_actors"},
        tmp_path / "worker.log",
        stop_timeout_s=WORKER_TIMEOUT_S,
    ) as worker:
        worker.wait_for_actors(database_url, "add_numbers")
        yield worker


def test_submit_wait_follows_the_job_and_saves_its_result(
    run_geotasks: RunGeotasks,
    env: dict[str, str],
    worker: Process,
    tmp_path: Path,
) -> None:
    # Given a worker, when a job is submitted by name and followed, the command's options
    # after the actor's arguments
    done = run_geotasks(
        "submit", "add_numbers", "2", "--y", "40", "--wait", "-o", "sum.json", "--timeout", "60",
        env=env,
    )  # fmt: skip

    # Then its status went by on stderr, and its result was saved to the file asked for
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "sum.json"
    assert json.loads((tmp_path / "sum.json").read_text()) == 42
    assert "submitted add_numbers as job" in done.stderr
    assert "SUCCESS" in done.stderr

    # And without --wait, the id is printed at once and `status` finds the job
    job_id = run_geotasks("submit", "add_numbers", "1", "1", env=env).stdout.strip()
    status = run_geotasks("status", job_id, env=env)
    assert status.returncode == 0, status.stderr
    assert "add_numbers (queue default)" in status.stdout
