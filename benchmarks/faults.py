"""The fault benchmark: SIGKILLed workers and a load run, per broker, measured in one run.

Run it from the repository root as a module::

    python -m benchmarks.faults [--geo-jobs 1000] [--kills 4] [--load-jobs 10000] [--only redis]

For each broker (geotasks' Postgres broker, RabbitMQ, Redis), on a queue unique to the run:

- kills: ``--geo-jobs`` ``shapefile_to_geojson`` jobs on ``naturalearth_cities`` (``limit=5``);
  one worker process (2 threads) is SIGKILLed ``--kills`` times during the run and restarted
  at once, as systemd's ``Restart=always`` would. Counted from the job status table and the
  results table: jobs ending SUCCESS, jobs lost (not final when the run's time is up, or final
  without a result), duplicate executions (``runs`` beyond the first: at-least-once delivery)
  and results stored twice;
- load: ``--load-jobs`` tiny jobs sent by 4 client threads while one worker command with 2
  processes runs them; one in 100 is bad input and must end FAILURE. Every job must be
  accounted for (SUCCESS, or FAILURE for the bad ones), none stuck; jobs/s from the first send
  to the last final state.

Servers: PostgreSQL, RabbitMQ and Redis on 127.0.0.1 (override with ``GEOTASKS_TEST_*_URL``).
A database unique to the run is created and dropped afterwards; the run's RabbitMQ queues and
Redis keys are deleted. On Redis, a killed worker's messages come back through the broker's
maintenance, within 1.25 heartbeat timeouts.
"""

from __future__ import annotations

import sys

if not __package__:
    sys.exit("run the benchmark as a module: python -m benchmarks.faults")

import argparse
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq.common import dq_name, xq_name
from dramatiq.message import Message

from benchmarks.databases import bench_database
from geotasks.broker import build_broker
from geotasks.postgres.pool import Database
from geotasks.settings import Settings

REPO = Path(__file__).resolve().parent.parent
RABBITMQ_URL = os.environ.get("GEOTASKS_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
REDIS_URL = os.environ.get("GEOTASKS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
#: Longest one phase (kills or load) of one broker may take, in seconds.
PHASE_TIMEOUT_S = 600
#: Heartbeat timeout of the Postgres broker, seconds: short, so a killed worker's claims return.
HEARTBEAT_TIMEOUT_S = 2
#: Interval between two looks at the status table, in seconds.
POLL_S = 0.25
#: One load job in this many is bad input (an expected FAILURE).
BAD_EVERY = 100
CLIENT_THREADS = 4
FINAL = ("SUCCESS", "FAILURE", "CANCELLED")


class Worker:
    """A ``dramatiq`` command in its own session, so a kill takes all its processes."""

    def __init__(self, env: dict[str, str], queue: str, processes: int, log: Path) -> None:
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dramatiq", "geotasks.worker", "benchmarks.fault_actors",
                 "-p", str(processes), "-t", "2", "-Q", queue],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


@dataclass
class Row:
    broker: str
    phase: str
    jobs: int
    success: int
    failure: int
    lost: int
    stuck: int
    duplicates: int
    double_stored: int
    wall_s: float
    restarts: int = 0

    @property
    def rate(self) -> float:
        return self.jobs / self.wall_s if self.wall_s else 0.0


def states(database: Database, ids: list[str]) -> dict[str, tuple[str, int]]:
    """(status, runs) of each job of ``ids`` the status table knows."""

    def read(cur: Any) -> dict[str, tuple[str, int]]:
        cur.execute(
            "SELECT message_id, status, runs FROM geotasks.job WHERE message_id = ANY(%s)", (ids,)
        )
        return {row[0]: (row[1], row[2]) for row in cur.fetchall()}

    return database.transaction(read)


def stored(database: Database, ids: list[str]) -> dict[str, int]:
    """How many result rows each job of ``ids`` has."""

    def read(cur: Any) -> dict[str, int]:
        cur.execute(
            "SELECT message_id, count(*) FROM geotasks.result WHERE message_id = ANY(%s) "
            "GROUP BY message_id",
            (ids,),
        )
        return {row[0]: row[1] for row in cur.fetchall()}

    return database.transaction(read)


def wait_final(
    database: Database, ids: list[str], deadline: float, on_progress: Callable[[int], None]
) -> float:
    """Poll until every job is final or the deadline passes; return when the last one was seen."""
    while time.monotonic() < deadline:
        done = sum(s in FINAL for s, _ in states(database, ids).values())
        on_progress(done)
        if done == len(ids):
            break
        time.sleep(POLL_S)
    return time.monotonic()


def count(
    database: Database, broker: str, phase: str, ids: list[str], bad: set[str], wall_s: float
) -> Row:
    rows = states(database, ids)
    results = stored(database, ids)
    expected = {i: ("FAILURE" if i in bad else "SUCCESS") for i in ids}
    final = {i for i in ids if rows.get(i, ("",))[0] in FINAL}
    return Row(
        broker=broker,
        phase=phase,
        jobs=len(ids),
        success=sum(rows[i][0] == "SUCCESS" for i in final),
        failure=sum(rows[i][0] == "FAILURE" for i in final),
        lost=sum(is_lost(i, rows, results, expected[i]) for i in ids),
        stuck=len(ids) - len(final),
        duplicates=sum(max(runs - 1, 0) for _, runs in rows.values()),
        double_stored=sum(n > 1 for n in results.values()),
        wall_s=wall_s,
    )


def is_lost(
    job_id: str, rows: dict[str, tuple[str, int]], results: dict[str, int], expected: str
) -> bool:
    """Whether a job vanished, or ended in the wrong state, or succeeded without a result."""
    if job_id not in rows:
        return True
    status = rows[job_id][0]
    if status not in FINAL:
        return False
    return status != expected or (expected == "SUCCESS" and results.get(job_id, 0) == 0)


def send(broker: dramatiq.Broker, queue: str, actor: str, *args: Any, **kwargs: Any) -> str:
    message: Message[Any] = Message(
        queue_name=queue, actor_name=actor, args=args, kwargs=kwargs, options={}
    )
    return broker.enqueue(message).message_id


def kill_phase(
    name: str, database_url: str, broker_url: str, env: dict[str, str], logs: Path,
    jobs: int, kills: int,
) -> Row:  # fmt: skip
    """Geo jobs with the worker SIGKILLed ``kills`` times and restarted at once."""
    queue = f"bench-faults-{uuid.uuid4().hex[:8]}"
    client = build_broker(Settings(database_url=database_url, broker_url=broker_url))
    client.declare_queue(queue)
    database = Database(database_url, max_connections=2)
    env = {**env, "GEOTASKS_BENCH_QUEUE": queue}
    workers: list[Worker] = []
    try:
        started = time.monotonic()
        ids = [
            send(client, queue, "shapefile_to_geojson", "naturalearth_cities", limit=5)
            for _ in range(jobs)
        ]
        workers.append(Worker(env, queue, 1, logs / f"{name}-kill-0.log"))
        thresholds = [jobs * (k + 1) // (kills + 2) for k in range(kills)]

        def progress(done: int) -> None:
            # Restart at once after a kill, as systemd would; kill at each threshold.
            if workers[-1].process.poll() is not None:
                workers.append(Worker(env, queue, 1, logs / f"{name}-kill-{len(workers)}.log"))
            if thresholds and done >= thresholds[0]:
                thresholds.pop(0)
                workers[-1].kill()
                workers.append(Worker(env, queue, 1, logs / f"{name}-kill-{len(workers)}.log"))

        finished = wait_final(database, ids, started + PHASE_TIMEOUT_S, progress)
        row = count(
            database, name, f"{jobs} geo jobs, {kills} kills", ids, set(), finished - started
        )
        row.restarts = len(workers) - 1
        return row
    finally:
        for worker in workers:
            worker.stop()
        cleanup(client, queue, broker_url)
        database.close()


def load_phase(
    name: str, database_url: str, broker_url: str, env: dict[str, str], logs: Path, jobs: int
) -> Row:
    """Tiny jobs from 4 client threads, run by one worker command of 2 processes."""
    queue = f"bench-faults-{uuid.uuid4().hex[:8]}"
    env = {**env, "GEOTASKS_BENCH_QUEUE": queue}
    setup = build_broker(Settings(database_url=database_url, broker_url=broker_url))
    setup.declare_queue(queue)
    database = Database(database_url, max_connections=2)
    worker = Worker(env, queue, 2, logs / f"{name}-load.log")
    sent: list[list[str]] = [[] for _ in range(CLIENT_THREADS)]
    bad: list[set[str]] = [set() for _ in range(CLIENT_THREADS)]

    def client(index: int) -> None:
        # Each thread its own broker: RabbitMQ's connections are not shared between threads.
        broker = build_broker(Settings(database_url=database_url, broker_url=broker_url))
        broker.declare_queue(queue)
        try:
            for n in range(index, jobs, CLIENT_THREADS):
                value = -n if n % BAD_EVERY == BAD_EVERY - 1 else n
                message_id = send(broker, queue, "tiny", value)
                sent[index].append(message_id)
                if value < 0:
                    bad[index].add(message_id)
        finally:
            broker.close()

    try:
        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENT_THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=PHASE_TIMEOUT_S)
        ids = [i for part in sent for i in part]
        finished = wait_final(database, ids, started + PHASE_TIMEOUT_S, lambda done: None)
        row = count(
            database, name, f"{jobs} tiny jobs, 4 clients, 2 processes", ids,
            set().union(*bad), finished - started,
        )  # fmt: skip
        row.jobs = jobs
        row.lost += jobs - len(ids)
        return row
    finally:
        worker.stop()
        cleanup(setup, queue, broker_url)
        database.close()


def cleanup(broker: dramatiq.Broker, queue: str, broker_url: str) -> None:
    if broker_url.startswith("amqp"):
        for name in (queue, dq_name(queue), xq_name(queue)):
            broker.channel.queue_delete(name)  # type: ignore[attr-defined]
    if broker_url.startswith("redis"):
        client = broker.client  # type: ignore[attr-defined]
        keys = list(client.scan_iter(f"{broker.namespace}:{queue}*"))  # type: ignore[attr-defined]
        if keys:
            client.delete(*keys)
    broker.close()


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'broker':<9} {'run':<38} {'jobs':>6} {'SUCCESS':>7} {'FAILURE':>7} {'lost':>4} "
        f"{'stuck':>5} {'dup runs':>8} {'2x stored':>9} {'restarts':>8} {'wall s':>7} {'jobs/s':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.broker:<9} {r.phase:<38} {r.jobs:>6} {r.success:>7} {r.failure:>7} {r.lost:>4} "
            f"{r.stuck:>5} {r.duplicates:>8} {r.double_stored:>9} {r.restarts:>8} "
            f"{r.wall_s:>7.1f} {r.rate:>7.0f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--geo-jobs", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--load-jobs", type=int, default=10_000)
    parser.add_argument("--only", default="postgres,rabbitmq,redis")
    options = parser.parse_args(argv)
    rows: list[Row] = []
    with bench_database("faults") as database_url, tempfile.TemporaryDirectory() as scratch:
        logs = Path(scratch)
        base = {k: v for k, v in os.environ.items() if not k.startswith("GEOTASKS_")}
        base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), base.get("PYTHONPATH")]))
        brokers = (("postgres", database_url), ("rabbitmq", RABBITMQ_URL), ("redis", REDIS_URL))
        for name, broker_url in brokers:
            if name not in options.only.split(","):
                continue
            env = {
                **base,
                "GEOTASKS_DATABASE_URL": database_url,
                "GEOTASKS_BROKER_URL": broker_url,
                "GEOTASKS_DATA_DIR": str(REPO / "sample_data"),
                "GEOTASKS_TMP_DIR": str(logs / "tmp"),
                "GEOTASKS_BROKER_HEARTBEAT_TIMEOUT_S": str(HEARTBEAT_TIMEOUT_S),
            }
            args = (name, database_url, broker_url, env, logs)
            rows.append(kill_phase(*args, options.geo_jobs, options.kills))
            print(f"{name}: kills done", file=sys.stderr)
            rows.append(load_phase(*args, options.load_jobs))
            print(f"{name}: load done", file=sys.stderr)
    print_table(rows)
    return 0 if all(r.lost == r.stuck == r.double_stored == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
