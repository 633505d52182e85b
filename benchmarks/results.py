"""Write and read a 100 MB GeoJSON result through the Postgres results store.

Each side runs in its own process, so each peak RSS is that process's own: the writer builds a
spooled GeoJSONResult and stores it (as a worker does), the reader streams it to a file with
``Job.save`` (as a client does) and then parses a 10 MB one with ``Job.result``. A last row
measures how long a blocked ``job.get()`` takes to wake after the result's transaction commits.

    python -m benchmarks.results [--size-mb 100] [--url postgresql://…]

Without ``--url`` (or ``GEOTASKS_DATABASE_URL``), a scratch database is created on the local
server (``GEOTASKS_TEST_POSTGRES_URL``, default postgresql://postgres@127.0.0.1:5432/postgres)
and dropped afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from dramatiq.message import Message
from psycopg2 import sql

from geotasks.geo.result import GeoJSONResult
from geotasks.jobs import Job
from geotasks.middleware.job_status import JobStatus
from geotasks.postgres.job_status import JobStore
from geotasks.postgres.listener import get_listener
from geotasks.postgres.migrate import migrate
from geotasks.postgres.pool import Database
from geotasks.postgres.results import PostgresBackend
from geotasks.settings import Settings

FEATURE = (
    b'{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[7.4401,46.9479],'
    b"[7.4412,46.9479],[7.4412,46.9486],[7.4401,46.9486],[7.4401,46.9479]]]},"
    b'"properties":{"name":"parcel","area_m2":8123.5}}'
)
TTL_MS = 3_600_000


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_result(size_bytes: int, spool_dir: str) -> GeoJSONResult:
    result = GeoJSONResult(dir=spool_dir)
    result.write(b'{"type":"FeatureCollection","features":[')
    block = b",".join([FEATURE] * 2000) + b","
    while result.size_bytes + len(block) < size_bytes:
        result.write(block)
    result.write(FEATURE + b"]}")
    return result


def run_writer(url: str, message_id: str, size_mb: int, spool_dir: str) -> dict[str, Any]:
    database = Database(url)
    backend = PostgresBackend(database=database)
    store = JobStore(database)
    message: Message[Any] = Message(
        queue_name="geo",
        actor_name="shapefile_to_geojson",
        args=("parcels",),
        kwargs={},
        options={},
        message_id=message_id,
    )
    JobStatus(store=store, result_ttl_ms=TTL_MS).after_enqueue(None, message, None)  # type: ignore[arg-type]
    started = time.perf_counter()
    result = build_result(size_mb * 1024 * 1024, spool_dir)
    built = time.perf_counter()
    backend.store_result(message, result, TTL_MS)
    stored = time.perf_counter()
    size = result.size_bytes
    result.close()
    return {
        "size_bytes": size,
        "build_s": built - started,
        "store_s": stored - built,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_reader(url: str, message_id: str, output: str) -> dict[str, Any]:
    settings = Settings(database_url=url)
    job = Job(message_id, database=Database(url), settings=settings)
    started = time.perf_counter()
    job.save(output)
    return {"save_s": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb()}


def run_parser(url: str, message_id: str) -> dict[str, Any]:
    settings = Settings(database_url=url)
    job = Job(message_id, database=Database(url), settings=settings)
    started = time.perf_counter()
    document = job.result
    return {
        "parse_s": time.perf_counter() - started,
        "features": len(document["features"]),
        "peak_rss_mb": peak_rss_mb(),
    }


def wake_up_latencies_ms(url: str, rounds: int) -> list[float]:
    """Milliseconds from a result's commit to a blocked get() returning, ``rounds`` times."""
    database = Database(url)
    backend = PostgresBackend(database=database)
    latencies = []
    for _ in range(rounds):
        message: Message[Any] = Message(
            queue_name="q", actor_name="a", args=(), kwargs={}, options={}
        )
        returned: list[float] = []

        def wait(message: Message[Any] = message, returned: list[float] = returned) -> None:
            backend.get_result(message, block=True, timeout=10_000)
            returned.append(time.perf_counter())

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.05)
        backend.store_result(message, {"ok": True}, TTL_MS)
        committed = time.perf_counter()
        waiter.join(timeout=10)
        latencies.append((returned[0] - committed) * 1000)
    # The listener would otherwise try to reconnect to the scratch database once it is dropped.
    get_listener(database).close()
    database.close()
    return latencies


def child(role: str, *args: str) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.results", "--role", role, *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    report: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return report


@contextlib.contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    name = f"geotasks_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(server_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = urlunsplit(urlsplit(server_url)._replace(path="/" + name))
        database = Database(url)
        migrate(database)
        database.close()
        yield url
    finally:
        with admin.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        admin.close()


def benchmark(url: str, size_mb: int) -> None:
    big, small = str(uuid.uuid4()), str(uuid.uuid4())
    with tempfile.TemporaryDirectory() as scratch:
        writer = child("writer", url, big, str(size_mb), scratch)
        reader = child("reader", url, big, os.path.join(scratch, "out.geojson"))
        assert os.path.getsize(os.path.join(scratch, "out.geojson")) == writer["size_bytes"]
        child("writer", url, small, "10", scratch)
        parser = child("parser", url, small)
    latencies = wake_up_latencies_ms(url, rounds=20)

    mb = writer["size_bytes"] / 1e6
    rows = [
        ("build GeoJSONResult (writer)", mb, writer["build_s"], ""),
        ("store in Postgres (writer)", mb, writer["store_s"], f"{writer['peak_rss_mb']:.0f}"),
        ("job.save() to a file (reader)", mb, reader["save_s"], f"{reader['peak_rss_mb']:.0f}"),
        (
            f"job.result, {parser['features']:,} features (reader)",
            10 * 1024 * 1024 / 1e6,
            parser["parse_s"],
            f"{parser['peak_rss_mb']:.0f}",
        ),
    ]
    print(f"{'step':<40} {'MB':>8} {'seconds':>8} {'MB/s':>8} {'peak RSS MB':>12}")
    for step, size, seconds, rss in rows:
        print(f"{step:<40} {size:>8.1f} {seconds:>8.2f} {size / seconds:>8.0f} {rss:>12}")
    print(
        f"{'get() wake-up after commit, ms':<40} "
        f"median {statistics.median(latencies):.1f}, max {max(latencies):.1f} "
        f"({len(latencies)} rounds)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--url", default=os.environ.get("GEOTASKS_DATABASE_URL"))
    parser.add_argument("--role", choices=["writer", "reader", "parser"])
    parser.add_argument("args", nargs="*")
    args = parser.parse_args()
    if args.role == "writer":
        url, message_id, size_mb, spool_dir = args.args
        print(json.dumps(run_writer(url, message_id, int(size_mb), spool_dir)))
    elif args.role == "reader":
        print(json.dumps(run_reader(*args.args)))
    elif args.role == "parser":
        print(json.dumps(run_parser(*args.args)))
    elif args.url:
        benchmark(args.url, args.size_mb)
    else:
        server = os.environ.get(
            "GEOTASKS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        )
        with scratch_database(server) as url:
            benchmark(url, args.size_mb)


if __name__ == "__main__":
    main()
