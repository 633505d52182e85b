"""The HTTP API benchmark: status requests per second, and streaming a large result.

Run it from the repository root as a module::

    python -m benchmarks.http [--requests 4000] [--clients 8] [--duration-s 20] [--result-mb 100]

It creates a fresh database on the machine's PostgreSQL (``GEOTASKS_TEST_POSTGRES_URL``),
records 500 finished jobs and one whose GeoJSON result is ``--result-mb`` MB, starts
``geotasks serve`` on a free loopback port as a subprocess, and measures from a Python load
client on loopback (``--clients`` threads, each on its own keep-alive connection; every phase
stops at ``--requests`` requests or ``--duration-s`` seconds, whichever comes first):

- requests per second and latency (p50, p99) of the landing page (no database), of a job's
  status (``GET /jobs/{id}``, one indexed read) and of one page of the job list;
- streaming the large result, whole, without and with gzip: MB/s, and the server's resident
  memory before and at its peak (sampled every 20 ms from ``/proc``), which shows the memory
  a download costs does not grow with the result's size.

The client and the server share the machine's cores, so the figures are a floor.
Everything it creates is removed at the end.
"""

from __future__ import annotations

import sys

if not __package__:
    sys.exit("run the benchmark as a module: python -m benchmarks.http")

import argparse
import http.client
import os
import platform
import random
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
from dramatiq.message import Message

from benchmarks.databases import bench_database
from geotasks.geo.result import GeoJSONResult
from geotasks.job_model import JobState
from geotasks.postgres.job_status import JobStore
from geotasks.postgres.pool import Database
from geotasks.postgres.results import PostgresBackend

REPO = Path(__file__).resolve().parent.parent
#: Finished jobs recorded for the status and list requests.
JOBS = 500
#: Longest the server may take to answer its first request, in seconds.
STARTUP_TIMEOUT_S = 60
#: Bytes read at a time while streaming.
READ_BYTES = 1024 * 1024
#: Interval of the server's memory samples, in seconds.
RSS_SAMPLE_S = 0.02
#: How long results live in the benchmark database, in milliseconds.
TTL_MS = 3_600_000


def record_success(database: Database, result: object) -> str:
    """Record a finished job with ``result``, as the worker's middleware would."""
    store = JobStore(database)
    job_id = str(uuid.uuid4())
    for state in (JobState.PENDING, JobState.STARTED):
        store.transition(
            job_id, actor_name="shapefile_to_geojson", queue_name="geo", status=state, attempt=0
        )
    message: Message[object] = Message(
        queue_name="geo",
        actor_name="shapefile_to_geojson",
        args=(),
        kwargs={},
        options={},
        message_id=job_id,
    )
    PostgresBackend(database=database).store_result(message, result, TTL_MS)
    store.transition(
        job_id,
        actor_name="shapefile_to_geojson",
        queue_name="geo",
        status=JobState.SUCCESS,
        attempt=0,
        ttl_ms=TTL_MS,
    )
    return job_id


def large_geojson(size_mb: int) -> GeoJSONResult:
    """A FeatureCollection of about ``size_mb`` MB of polygons, spooled to disk."""
    result = GeoJSONResult()
    result.write(b'{"type":"FeatureCollection","features":[')
    target = size_mb * 1_000_000
    index = 0
    while result.size_bytes < target:
        x, y = (index % 3600) / 10 - 180, (index // 3600 % 1700) / 10 - 85
        feature = {
            "type": "Feature",
            "properties": {"id": index, "name": f"parcel {index}", "area_m2": 1234.5 + index},
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[x, y], [x + 0.05, y], [x + 0.05, y + 0.05], [x, y + 0.05], [x, y]]
                ],
            },
        }
        result.write((b"," if index else b"") + orjson.dumps(feature))
        index += 1
    result.write(b"]}")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(database_url: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``geotasks serve`` on loopback, as a subprocess, stopped afterwards."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOTASKS_")}
    env["GEOTASKS_DATABASE_URL"] = database_url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "geotasks.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/")
                connection.getresponse().read()
                connection.close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    stderr = process.stderr.read().decode() if process.stderr else ""
                    raise RuntimeError(f"geotasks serve did not start:\n{stderr}") from None
                time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """A process's resident memory (``VmRSS``) or its peak (``VmHWM``), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for process {pid}")


@dataclass
class LoadResult:
    requests: int
    errors: int
    elapsed_s: float
    latencies_s: list[float]

    @property
    def per_second(self) -> float:
        return self.requests / self.elapsed_s

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)] * 1000


def load(
    port: int, paths: Callable[[], str], *, clients: int, requests: int, duration_s: float
) -> LoadResult:
    """Send GETs from ``clients`` threads until ``requests`` are done or time runs out."""
    lock = threading.Lock()
    counters = {"sent": 0, "errors": 0}
    latencies: list[float] = []
    deadline = time.monotonic() + duration_s

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        try:
            while time.monotonic() < deadline:
                with lock:
                    if counters["sent"] >= requests:
                        break
                    counters["sent"] += 1
                started = time.perf_counter()
                connection.request("GET", paths(), headers={"Accept": "application/json"})
                response = connection.getresponse()
                response.read()
                mine.append(time.perf_counter() - started)
                if response.status != 200:
                    with lock:
                        counters["errors"] += 1
        finally:
            connection.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadResult(len(latencies), counters["errors"], time.perf_counter() - started, latencies)


@dataclass
class StreamResult:
    bytes_read: int
    elapsed_s: float
    rss_before: int
    rss_peak: int


def stream(port: int, pid: int, path: str, *, gzip: bool) -> StreamResult:
    """Download ``path`` whole, discarding it, while sampling the server's memory."""
    rss_before = rss_bytes(pid)
    peak = [rss_before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes(pid))
            time.sleep(RSS_SAMPLE_S)

    sampler = threading.Thread(target=sample)
    sampler.start()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    read = 0
    started = time.perf_counter()
    try:
        connection.request("GET", path, headers={"Accept-Encoding": "gzip" if gzip else "identity"})
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {response.read()[:300]!r}")
        while chunk := response.read(READ_BYTES):
            read += len(chunk)
    finally:
        elapsed = time.perf_counter() - started
        connection.close()
        done.set()
        sampler.join()
    return StreamResult(read, elapsed, rss_before, peak[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000, help="requests per phase (4000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument("--duration-s", type=float, default=20, help="longest phase, s (20)")
    parser.add_argument("--result-mb", type=int, default=100, help="large result size (100)")
    args = parser.parse_args()

    print(f"# geotasks HTTP benchmark, {platform.python_version()}, {os.cpu_count()} CPUs")
    with bench_database("http") as url:
        database = Database(url, max_connections=2)
        try:
            print(f"recording {JOBS} finished jobs and a {args.result_mb} MB result…", flush=True)
            job_ids = [record_success(database, {"answer": i}) for i in range(JOBS)]
            started = time.perf_counter()
            big = large_geojson(args.result_mb)
            big_size = big.size_bytes
            big_id = record_success(database, big)
            store_s = time.perf_counter() - started
        finally:
            database.close()
        port = free_port()
        with server(url, port) as process:
            phases = [
                ("GET / (landing page)", lambda: "/"),
                ("GET /jobs/{id} (status)", lambda: f"/jobs/{random.choice(job_ids)}"),
                ("GET /jobs?limit=20 (list)", lambda: "/jobs?limit=20"),
            ]
            print()
            print(f"{'requests':32} {'n':>6} {'err':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
            for label, paths in phases:
                load(port, paths, clients=args.clients, requests=200, duration_s=5)  # warm-up
                result = load(
                    port,
                    paths,
                    clients=args.clients,
                    requests=args.requests,
                    duration_s=args.duration_s,
                )
                print(
                    f"{label:32} {result.requests:>6} {result.errors:>4} "
                    f"{result.per_second:>8.0f} {result.percentile_ms(0.5):>8.1f} "
                    f"{result.percentile_ms(0.99):>8.1f}"
                )
            print()
            print(
                f"streaming a {big_size / 1e6:.0f} MB GeoJSON result "
                f"(stored in {store_s:.1f} s, 1 MiB chunks)"
            )
            print(f"{'download':32} {'MB sent':>8} {'MB/s':>8} {'RSS before':>11} {'RSS peak':>9}")
            for gzip in (False, True):
                result = stream(port, process.pid, f"/jobs/{big_id}/results", gzip=gzip)
                print(
                    f"{'gzip' if gzip else 'identity':32} {result.bytes_read / 1e6:>8.1f} "
                    f"{big_size / 1e6 / result.elapsed_s:>8.1f} "
                    f"{result.rss_before / 1e6:>9.0f}MB {result.rss_peak / 1e6:>7.0f}MB"
                )
            peak_mb = rss_bytes(process.pid, "VmHWM") / 1e6
            print(f"server peak RSS over the whole run (VmHWM): {peak_mb:.0f} MB")
            print("MB/s is of the result's size: the rate a client gets the document at.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
