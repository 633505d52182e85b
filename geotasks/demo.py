"""``geotasks demo``: a real worker on the Postgres broker, end to end, for a first look.

It starts ``dramatiq geotasks.worker`` as a child process, sends it a few messages (one of them
delayed), waits until the worker has processed them, prints what it computed and stops it with
SIGTERM, as systemd would. Until the results store exists, the results are read from the
worker's log.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from typing import IO

from .broker import setup_broker
from .postgres.broker import PostgresBroker
from .postgres.migrate import schema_version
from .postgres.pool import Database

#: Longest the demo waits for the worker to process everything, in seconds.
DEMO_TIMEOUT_S = 60
#: Longest the worker may take to stop after SIGTERM, in seconds.
STOP_TIMEOUT_S = 30

_RESULT_LINE = re.compile(r"\] (add_numbers\(.*\) = .*)$")


class _LogReader(threading.Thread):
    """Collects the worker's log lines as they come."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(name="demo-worker-log", daemon=True)
        self.stream = stream
        self.lines: list[str] = []

    def run(self) -> None:
        for line in self.stream:
            self.lines.append(line.rstrip("\n"))

    def results(self) -> list[str]:
        return [match.group(1) for line in self.lines if (match := _RESULT_LINE.search(line))]


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
    try:
        broker = setup_broker()
        sent = _send_messages()
        print(
            f"geotasks demo: sent {sent} messages through the {type(broker).__name__} "
            "(one delayed by 1 s)",
            flush=True,
        )
        deadline = time.monotonic() + DEMO_TIMEOUT_S
        while len(log.results()) < sent and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.1)
        results = log.results()
        if isinstance(broker, PostgresBroker) and len(results) == sent:
            broker.join("default", timeout=DEMO_TIMEOUT_S * 1000)
            print("geotasks demo: the Postgres broker's queue is empty: every message was acked")
    finally:
        exit_code = _stop(worker)
        log.join(timeout=STOP_TIMEOUT_S)
    print("geotasks demo: results, as the worker logged them (the results store comes later):")
    for result in results:
        print(f"  {result}")
    if len(results) != sent:
        print(
            f"geotasks demo: only {len(results)} of {sent} messages completed; the worker's log:",
            file=sys.stderr,
        )
        for line in log.lines:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"geotasks demo: worker stopped with SIGTERM (exit code {exit_code})")
    return 0 if exit_code == 0 else 1


def _send_messages() -> int:
    from .demo_actors import add_numbers

    for n in range(1, 5):
        add_numbers.send(n, n * n)
    add_numbers.send_with_options(args=(1000, 1), delay=1000)
    return 5


def _stop(worker: subprocess.Popen[str]) -> int:
    if worker.poll() is None:
        worker.terminate()
    try:
        return worker.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        worker.kill()
        return worker.wait()
