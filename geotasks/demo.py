"""``geotasks demo``: the main job end to end on a real worker, for a first look.

It starts ``dramatiq geotasks.worker`` as a child process on the Postgres broker, submits the
geo jobs by name — Natural Earth countries to GeoJSON, a clip chained into a geodesic buffer by
job id, a measurement, and a bad dataset name that must fail at once — waits for each with
``job.wait()`` (woken by Postgres NOTIFY), saves every GeoJSON result under
``.geotasks/demo/``, prints what each job did, and stops the worker with SIGTERM, as systemd
would. Beside the worker it runs a scheduler (``geotasks scheduler``) and shows its first
maintenance job arrive and succeed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

import orjson

from .broker import setup_broker
from .errors import GeotasksError
from .job_model import JobInfo, JobState
from .jobs import Job, submit
from .postgres.broker import PostgresBroker
from .postgres.job_status import JobStore
from .postgres.migrate import schema_version
from .postgres.overview import database_now
from .postgres.pool import Database
from .settings import env_name

#: Longest the demo waits for the worker to process everything, in seconds.
DEMO_TIMEOUT_S = 60
#: Longest the worker may take to stop after SIGTERM, in seconds.
STOP_TIMEOUT_S = 30
#: Where the demo saves the GeoJSON results.
OUTPUT_DIR = Path(".geotasks") / "demo"
#: Western Europe, in lon/lat degrees (west, south, east, north).
EUROPE_BBOX = [-10.0, 35.0, 30.0, 60.0]
#: The demo runs ``delete_expired_results`` every minute (unless configured otherwise), so the
#: first maintenance job arrives at the next minute instead of at the next five-minute mark.
DEMO_MAINTENANCE_SCHEDULE = "* * * * *"
#: How long the demo waits for that first maintenance job, in seconds: its slot, the next whole
#: minute, may be up to a minute away.
MAINTENANCE_TIMEOUT_S = 60 + DEMO_TIMEOUT_S
#: Seconds between looks at the job-status store while waiting for the maintenance job.
POLL_INTERVAL_S = 0.2


@dataclass(frozen=True)
class DemoJob:
    """A job the demo sent, described the way a user would have typed it."""

    call: str
    job: Job
    output_name: str | None


class _LogReader(threading.Thread):
    """Collects the worker's log lines as they come."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(name="demo-worker-log", daemon=True)
        self.stream = stream
        self.lines: list[str] = []

    def run(self) -> None:
        for line in self.stream:
            self.lines.append(line.rstrip("\n"))


def run_demo(database_url: str, scheduler_argv: list[str]) -> int:
    """Run the demo against ``database_url`` and return the exit code.

    Parameters:
      database_url: The database the worker, the scheduler and the demo share.
      scheduler_argv: The command line that starts a scheduler (the ``geotasks`` command
        knows it: it runs the same one as ``geotasks scheduler``).
    """
    database = Database(database_url, max_connections=1)
    try:
        print(
            "geotasks demo: PostgreSQL is ready, geotasks schema version "
            f"{schema_version(database)}",
            flush=True,
        )
        return _run_worker_and_send(database, scheduler_argv)
    finally:
        database.close()


def _run_worker_and_send(database: Database, scheduler_argv: list[str]) -> int:
    env = dict(os.environ)
    env.setdefault(env_name("delete_expired_results_schedule"), DEMO_MAINTENANCE_SCHEDULE)
    worker, worker_log = _start(
        [sys.executable, "-m", "dramatiq", "geotasks.worker", "--processes", "1", "--threads", "2"],
        env,
    )
    print(f"geotasks demo: started `dramatiq geotasks.worker` (pid {worker.pid})", flush=True)
    scheduler, scheduler_log = _start(scheduler_argv, env)
    print(
        "geotasks demo: started the scheduler `python -m geotasks.scheduler` "
        f"(pid {scheduler.pid})",
        flush=True,
    )
    lines: list[str] = []
    # This run's jobs only: the data directory keeps earlier runs' (and their maintenance ticks).
    started_at = database_now(database)
    try:
        broker = setup_broker()
        jobs = _submit_jobs()
        print(
            f"geotasks demo: submitted {len(jobs)} jobs through the {type(broker).__name__} "
            "by actor name",
            flush=True,
        )
        deadline = time.monotonic() + DEMO_TIMEOUT_S
        OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
        for sent in jobs:
            info = sent.job.wait(timeout=max(deadline - time.monotonic(), 0))
            lines.append(f"  {sent.call}\n    {_outcome(sent, info)}  [{_timings(info)}]")
        lines.append(
            maintenance_outcome(
                database, time.monotonic() + MAINTENANCE_TIMEOUT_S, since=started_at
            )
        )
        if isinstance(broker, PostgresBroker):
            broker.join("geo", timeout=DEMO_TIMEOUT_S * 1000)
            print("geotasks demo: the Postgres broker's queue is empty: every message was acked")
    except GeotasksError as exc:
        print(f"geotasks demo: {exc}; the worker's and the scheduler's logs:", file=sys.stderr)
        for line in worker_log.lines + scheduler_log.lines:
            print(f"  {line}", file=sys.stderr)
        return 1
    finally:
        # The scheduler only sends: it has nothing to drain, and dies of SIGTERM as under systemd.
        _stop(scheduler)
        exit_code = _stop(worker)
        worker_log.join(timeout=STOP_TIMEOUT_S)
        scheduler_log.join(timeout=STOP_TIMEOUT_S)
    print("geotasks demo: results, read from the results store by job id:")
    for line in lines:
        print(line)
    print(
        f"geotasks demo: scheduler and worker stopped with SIGTERM (worker exit code {exit_code})"
    )
    return 0 if exit_code == 0 else 1


def _start(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], _LogReader]:
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    log = _LogReader(process.stdout)
    log.start()
    return process, log


def maintenance_outcome(database: Database, deadline: float, *, since: datetime) -> str:
    """Wait for the scheduler's first ``delete_expired_results`` job sent after ``since``;
    describe how it ended.

    A tick of a minute an earlier run already ticked in is SKIPPED by the periodic
    de-duplication: that is what this run shows then, not the earlier run's result.
    """
    store = JobStore(database)
    finished = [JobState.SUCCESS, JobState.FAILURE, JobState.SKIPPED]
    while not (
        done := store.page(
            actor_names=["delete_expired_results"], statuses=finished, created_from=since, limit=1
        )
    ):
        if time.monotonic() >= deadline:
            raise GeotasksError(f"no maintenance job finished within {MAINTENANCE_TIMEOUT_S} s")
        time.sleep(POLL_INTERVAL_S)
    info = done[0]
    if info.error is not None:
        outcome = f"{info.status}: {info.error.type_name}: {info.error.message}"
    elif info.status is JobState.SKIPPED:
        outcome = (
            f"{info.status}: this minute's tick had already run (an earlier run's scheduler "
            "sent it): each cron slot runs once, whatever the number of schedulers"
        )
    else:
        outcome = f"{info.status}: removed {Job(info.message_id, database=database).result}"
    return (
        "  delete_expired_results()  # sent by the scheduler to the maintenance queue\n"
        f"    {outcome}  [{_timings(info)}]"
    )


def _submit_jobs() -> list[DemoJob]:
    countries = submit("shapefile_to_geojson", "naturalearth_lowres")
    clipped = submit("clip_features", "naturalearth_lowres", bbox=EUROPE_BBOX)
    # A chained job reads the clip's stored result by id: the client downloads nothing. (Sent
    # earlier, it would be retried until the clip had finished.)
    clipped.wait(timeout=DEMO_TIMEOUT_S)
    buffered = submit("buffer_features", f"job:{clipped.id}", 50_000)
    return [
        DemoJob('shapefile_to_geojson("naturalearth_lowres")', countries, "countries.geojson"),
        DemoJob(
            f'clip_features("naturalearth_lowres", bbox={EUROPE_BBOX})',
            clipped,
            "europe.geojson",
        ),
        DemoJob(
            f'buffer_features("job:{clipped.id[:8]}…", 50_000)  # the clip\'s result, +50 km',
            buffered,
            "europe_buffered_50km.geojson",
        ),
        DemoJob(
            'measure_features("naturalearth_cities", limit=3)',
            submit("measure_features", "naturalearth_cities", limit=3),
            "cities_measured.geojson",
        ),
        DemoJob(
            'shapefile_to_geojson("no_such_dataset")  # must fail at once, never retried',
            submit("shapefile_to_geojson", "no_such_dataset"),
            None,
        ),
    ]


def _outcome(sent: DemoJob, info: JobInfo) -> str:
    if info.error is not None:
        return f"{info.status} after {info.runs} run: {info.error.type_name}: {info.error.message}"
    if sent.output_name is None:
        return str(info.status)
    path = sent.job.save(OUTPUT_DIR / sent.output_name)
    features = orjson.loads(path.read_bytes())["features"]
    return f"{info.status}: {len(features)} features, {path.stat().st_size:,} bytes -> {path}"


def _timings(info: JobInfo) -> str:
    if info.started_at is None or info.finished_at is None or info.pending_at is None:
        return str(info.status)
    waited_ms = (info.started_at - info.pending_at).total_seconds() * 1000
    ran_ms = (info.finished_at - info.started_at).total_seconds() * 1000
    return f"{info.status}: waited {waited_ms:.0f} ms, ran {ran_ms:.1f} ms"


def _stop(worker: subprocess.Popen[str]) -> int:
    if worker.poll() is None:
        worker.terminate()
    try:
        return worker.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        worker.kill()
        return worker.wait()
