"""The schedules benchmark: how late after its slot a 30 s periodic job starts (Postgres broker).

Run it from the repository root (10 minutes by default)::

    python -m benchmarks.schedules [--minutes 10] [--actors 5]

The recommended, highly available set-up runs on a fresh database: a worker with its own
scheduler (``GEOTASKS_WORKER_SCHEDULER=true``, 1 process, 4 threads) and a second, standalone
scheduler (``python -m geotasks.scheduler``), both real processes, so that every slot arrives
twice and the duplicate is skipped. ``--actors`` actors are declared ``every=30``; each slot of
each actor is one sample. Start lateness is ``started_at`` of the job that ran the slot (written
by the worker before the actor runs) minus the slot, both on the database's clock.
"""

from __future__ import annotations

import sys

if not __package__:
    sys.exit("run the benchmark as a module: python -m benchmarks.schedules")

import argparse
import math
import os
import platform
import statistics
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from benchmarks.databases import bench_database
from geotasks.postgres.pool import Database

ROOT = Path(__file__).resolve().parents[1]
EVERY_S = 30


def app_module(actors: int) -> str:
    """An application module declaring ``actors`` actors that run every 30 s."""
    body = ["import geotasks", ""]
    for index in range(actors):
        body += [
            f"@geotasks.actor(every={EVERY_S}, actor_name='every_30_s_{index}')",
            f"def every_30_s_{index}() -> None:",
            "    pass",
            "",
        ]
    return "\n".join(body)


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def fetch(database: Database, query: str, params: dict[str, Any] | None = None) -> list[Any]:
    def read(cursor: Any) -> list[Any]:
        cursor.execute(query, params)
        return list(cursor.fetchall())

    return database.transaction(read)


def run(minutes: float, actors: int) -> None:
    with bench_database("schedules") as url, tempfile.TemporaryDirectory() as scratch:
        Path(scratch, "bench_schedules_app.py").write_text(app_module(actors))
        env = {k: v for k, v in os.environ.items() if not k.startswith("GEOTASKS_")}
        env.update(
            GEOTASKS_DATABASE_URL=url,
            GEOTASKS_MODULES="bench_schedules_app",
            GEOTASKS_TMP_DIR=str(Path(scratch, "tmp")),
            GEOTASKS_WORKER_SCHEDULER="true",
            PYTHONPATH=os.pathsep.join([scratch, str(ROOT)]),
        )
        commands = [
            [sys.executable, "-m", "dramatiq", "geotasks.worker", "-p", "1", "-t", "4"],
            [sys.executable, "-m", "geotasks.scheduler"],
        ]
        with Path(scratch, "processes.log").open("w") as log:
            processes = [
                subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
                for command in commands
            ]
            started = time.time()
            try:
                time.sleep(minutes * 60 + 5)
            finally:
                for process in processes:
                    process.terminate()
                for process in processes:
                    process.wait(timeout=30)
        database = Database(url, max_connections=1)
        try:
            rows = fetch(
                database,
                "SELECT extract(epoch FROM j.started_at - t.slot)::float8, j.status "
                "FROM geotasks.periodic_tick AS t JOIN geotasks.job AS j USING (message_id) "
                "WHERE t.actor_name LIKE 'every_30_s_%%' AND t.slot > to_timestamp(%(after)s)",
                {"after": started + 5},
            )
            ((skipped,),) = fetch(
                database,
                "SELECT count(*) FROM geotasks.job "
                "WHERE actor_name LIKE 'every_30_s_%%' AND status = 'SKIPPED'",
            )
        finally:
            database.close()
    lateness_ms = [row[0] * 1000 for row in rows]
    expected = actors * int(minutes * 60 // EVERY_S)
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(
        f"{actors} actors every {EVERY_S} s for {minutes:g} min, 2 schedulers: {len(rows)} slots "
        f"ran (about {expected} expected), {skipped} duplicate copies skipped, statuses "
        f"{sorted({row[1] for row in rows})}"
    )
    if lateness_ms:
        print(
            f"start lateness after the slot: p50 {percentile(lateness_ms, 0.5):.1f} ms, "
            f"p99 {percentile(lateness_ms, 0.99):.1f} ms, max {max(lateness_ms):.1f} ms, "
            f"mean {statistics.fmean(lateness_ms):.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=textwrap.dedent(__doc__ or ""))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--actors", type=int, default=5)
    args = parser.parse_args()
    run(args.minutes, args.actors)


if __name__ == "__main__":
    main()
