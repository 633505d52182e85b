"""``geotasks demo``: a real worker on the Postgres broker, end to end, for a first look.

It starts ``dramatiq geotasks.worker`` as a child process, submits a few jobs by name (one of
them delayed), waits for each result with ``job.get()`` (woken by Postgres NOTIFY), prints the
results with each job's status and timings, and stops the worker with SIGTERM, as systemd would.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import IO

from .broker import setup_broker
from .errors import GeotasksError
from .jobs import Job, submit, submit_with_options
from .postgres.broker import PostgresBroker
from .postgres.job_status import JobInfo
from .postgres.migrate import schema_version
from .postgres.pool import Database

#: Longest the demo waits for the worker to process everything, in seconds.
DEMO_TIMEOUT_S = 60
#: Longest the worker may take to stop after SIGTERM, in seconds.
STOP_TIMEOUT_S = 30


class _LogReader(threading.Thread):
    """Collects the worker's log lines as they come."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(name="demo-worker-log", daemon=True)
        self.stream = stream
        self.lines: list[str] = []

    def run(self) -> None:
        for line in self.stream:
            self.lines.append(line.rstrip("\n"))


def run_demo(database_url: str) -> int:
    """Run the demo against ``database_url`` and return the exit code."""
    database = Database(database_url, max_connections=1)
    try:
        print(
            "geotasks demo: PostgreSQL is ready, geotasks schema version "
            f"{schema_version(database)}",
            flush=True,
        )
        return _run_worker_and_send(database)
    finally:
        database.close()


def _run_worker_and_send(database: Database) -> int:
    worker = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "geotasks.worker", "--processes", "1", "--threads", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert worker.stdout is not None
    log = _LogReader(worker.stdout)
    log.start()
    print(f"geotasks demo: started `dramatiq geotasks.worker` (pid {worker.pid})", flush=True)
    lines: list[str] = []
    try:
        broker = setup_broker()
        jobs = _submit_jobs()
        print(
            f"geotasks demo: submitted {len(jobs)} jobs through the {type(broker).__name__} "
            "(one delayed by 1 s)",
            flush=True,
        )
        deadline = time.monotonic() + DEMO_TIMEOUT_S
        for call, job in jobs:
            value = job.get(timeout=max(deadline - time.monotonic(), 0))
            lines.append(f"  {call} = {value!r}  [{_timings(job.info())}]")
        if isinstance(broker, PostgresBroker):
            broker.join("default", timeout=DEMO_TIMEOUT_S * 1000)
            print("geotasks demo: the Postgres broker's queue is empty: every message was acked")
    except GeotasksError as exc:
        print(f"geotasks demo: {exc}; the worker's log:", file=sys.stderr)
        for line in log.lines:
            print(f"  {line}", file=sys.stderr)
        return 1
    finally:
        exit_code = _stop(worker)
        log.join(timeout=STOP_TIMEOUT_S)
    print("geotasks demo: results, read from the results store with job.get():")
    for line in lines:
        print(line)
    print(f"geotasks demo: worker stopped with SIGTERM (exit code {exit_code})")
    return 0 if exit_code == 0 else 1


def _submit_jobs() -> list[tuple[str, Job]]:
    jobs = [(f"add_numbers({n}, {n * n})", submit("add_numbers", n, n * n)) for n in range(1, 5)]
    delayed = submit_with_options("add_numbers", args=(1000, 1), delay_ms=1000)
    jobs.append(("add_numbers(1000, 1), 1 s later", delayed))
    return jobs


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
