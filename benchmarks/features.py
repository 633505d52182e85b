"""Benchmark: a user's actor returning a generator of point features, against the built-in writer.

``to_result`` turns what a user's actor returns into RFC 7946 GeoJSON, streamed as the
generator produces it. This measures it on a generator of point features against
``shapefile_to_geojson`` on a shapefile of the same points (generated once, cached in
``benchmarks/data/``, which git ignores), each in its own subprocess: features per second of
the conversion itself (imports and start-up left out), and the peak RSS of the converting
process (from ``wait4``), which must stay under 150 MB however many features there are.
The same generator then runs as a user's actor (:mod:`benchmarks.feature_actors`) in a real
worker (``dramatiq geotasks.worker -p 1 -t 1`` on a fresh Postgres database): submit to
SUCCESS, the result stored in Postgres, and the worker process's peak RSS (``VmHWM``).

    python -m benchmarks.features                 # 1,000,000 points
    python -m benchmarks.features --features 100000 --repeat 3

Run it alone, under the exclusive CPU lock (``flock -x /tmp/geotasks-cpu.lock``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Where generated inputs are cached (ignored by git).
DATA_DIR = Path(__file__).resolve().parent / "data"

#: The repository root, put first on the subprocesses' ``PYTHONPATH``.
ROOT = Path(__file__).resolve().parents[1]

#: Fixed seed: every run makes the same points.
SEED = 42

#: Points made at a time (vectorised), by the generator and the shapefile writer alike.
CHUNK = 10_000

#: Largest peak RSS allowed to a converting process, in MB.
MAX_RSS_MB = 150

#: What each measured child runs: ``python -m benchmarks.features --child CASE COUNT OUT``.
CASES = {
    "generator": "generator of Features, consumed without converting (its own cost)",
    "to_result": "generator of Features → to_result",
    "read_features": "read_features(shapefile) → to_result",
    "shapefile_to_geojson/1": "shapefile_to_geojson, 1 process",
    "shapefile_to_geojson/2": "shapefile_to_geojson, 2 processes",
}

#: The worker run, measured apart (submit to SUCCESS, the result stored in Postgres).
WORKER = "the generator as an actor, in a real worker (submit → SUCCESS)"

#: Longest wait for the worker's job, in seconds.
WORKER_TIMEOUT_S = 30 * 60


@dataclass
class Run:
    """One measured child."""

    case: str
    convert_s: float
    peak_rss_mb: float
    output_mb: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=1_000_000, help="points to convert")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case; the best kept")
    parser.add_argument("--worker-only", action="store_true", help="only the real worker's run")
    parser.add_argument(
        "--child", nargs=3, metavar=("CASE", "COUNT", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        case, count, out = args.child
        run_child(case, int(count), Path(out))
        return
    DATA_DIR.mkdir(exist_ok=True)
    # Generating in a child keeps this process small: a child's peak RSS as wait4 reports it
    # includes the memory it shared with this process before exec.
    subprocess.run(_command("generate", args.features, DATA_DIR), check=True, env=_env(), cwd=ROOT)
    best: dict[str, Run] = {}
    with tempfile.TemporaryDirectory(dir=DATA_DIR) as scratch:
        for _ in range(0 if args.worker_only else max(1, args.repeat)):
            for case in CASES:
                run = measure(case, args.features, Path(scratch))
                if case not in best or run.convert_s < best[case].convert_s:
                    best[case] = run
        worker = measure_worker(args.features, Path(scratch))
    print_table([*best.values(), worker], args.features)


def _command(case: str, count: int, out: Path) -> list[str]:
    return [sys.executable, "-m", "benchmarks.features", "--child", case, str(count), str(out)]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def measure(case: str, count: int, out: Path) -> Run:
    """Run one case alone in a child; read its timing from its output, its peak RSS from wait4."""
    process = subprocess.Popen(
        _command(case, count, out), stdout=subprocess.PIPE, env=_env(), cwd=ROOT
    )
    _, status, usage = os.wait4(process.pid, 0)
    stdout = process.stdout.read() if process.stdout else b""
    if status != 0:
        raise SystemExit(f"{case} failed (status {status})")
    printed = json.loads(stdout)
    run = Run(case, printed["seconds"], usage.ru_maxrss / 1024, printed["bytes"] / 1e6)
    print(f"  {case:<24} {run.convert_s:7.2f} s {run.peak_rss_mb:6.0f} MB", file=sys.stderr)
    return run


def measure_worker(count: int, out: Path) -> Run:
    """Submit the generator's actor to a real worker; time it to SUCCESS, read its peak RSS."""
    from benchmarks.databases import bench_database

    with bench_database("features") as database_url:
        os.environ.update(GEOTASKS_DATABASE_URL=database_url, GEOTASKS_TMP_DIR=str(out))
        env = {**_env(), "GEOTASKS_MODULES": "benchmarks.feature_actors"}
        command = [sys.executable, "-m", "dramatiq", "geotasks.worker", "-p", "1", "-t", "1"]
        with (out / "worker.log").open("ab") as log:
            worker = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        try:
            import geotasks

            _wait_for_actor(database_url, "point_features")
            started = time.perf_counter()
            job = geotasks.submit("point_features", count)
            info = job.wait(timeout=WORKER_TIMEOUT_S)
            seconds = time.perf_counter() - started
            if info.status is not geotasks.JobState.SUCCESS:
                raise SystemExit(f"the worker's job ended {info.status}: {job.error}")
            stored = job.result_info()
            if stored.media_type != "application/geo+json":
                raise SystemExit(f"the worker stored {stored.media_type}, not GeoJSON")
            size = stored.size_bytes
            peak_kb = max(_peak_rss_kb(pid) for pid in _children(worker.pid))
        except BaseException:
            print((out / "worker.log").read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=60)
    run = Run("worker", seconds, peak_kb / 1024, size / 1e6)
    print(f"  {'worker':<24} {run.convert_s:7.2f} s {run.peak_rss_mb:6.0f} MB", file=sys.stderr)
    return run


def _wait_for_actor(database_url: str, name: str) -> None:
    """Wait until the worker has published ``name`` to the catalogue (it has booted)."""
    import psycopg2

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM geotasks.actor_catalogue WHERE actor_name = %s", (name,))
            found = cursor.fetchone() is not None
        connection.close()
        if found:
            return
        time.sleep(0.5)
    raise SystemExit(f"no worker published {name} within 120 s")


def _children(pid: int) -> list[int]:
    """The worker processes of a ``dramatiq`` main process."""
    tasks = Path(f"/proc/{pid}/task")
    return [
        int(child) for task in tasks.iterdir() for child in (task / "children").read_text().split()
    ]


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


def points(count: int) -> Iterator[tuple[int, Any, Any]]:
    """The benchmark's points, a chunk at a time: (first index, longitudes, latitudes)."""
    import numpy as np

    for start in range(0, count, CHUNK):
        rng = np.random.default_rng([SEED, start])
        size = min(CHUNK, count - start)
        yield start, rng.uniform(-180.0, 180.0, size), rng.uniform(-85.0, 85.0, size)


def features(count: int) -> Iterator[Any]:
    """What a user's actor might return: a generator of ``Feature``s, one point each."""
    import shapely

    from geotasks.geo import Feature

    for start, lon, lat in points(count):
        for offset, point in enumerate(shapely.points(lon, lat)):
            index = start + offset
            yield Feature(index, point, {"name": f"point {index}", "rank": index % 100})


def shapefile_name(count: int) -> str:
    return f"points_{count}"


def generate(count: int, data_dir: Path) -> None:
    """Write (or reuse) the shapefile of the benchmark's points, in EPSG:4326."""
    import fiona

    path = data_dir / f"{shapefile_name(count)}.shp"
    if path.exists():
        return
    print(f"generating {count} points in {path} ...", file=sys.stderr)
    schema = {"geometry": "Point", "properties": {"name": "str:20", "rank": "int"}}
    with fiona.open(
        path, "w", driver="ESRI Shapefile", schema=schema, crs="EPSG:4326", encoding="utf-8"
    ) as sink:
        for start, lon, lat in points(count):
            sink.writerecords(
                {
                    "geometry": {"type": "Point", "coordinates": (float(x), float(y))},
                    "properties": {"name": f"point {start + i}", "rank": (start + i) % 100},
                }
                for i, (x, y) in enumerate(zip(lon, lat, strict=True))
            )


def run_child(case: str, count: int, out: Path) -> None:
    """Convert in this process; print the conversion's seconds and the output's bytes."""
    if case == "generate":
        generate(count, out)
        return
    from geotasks.geo.context import ReadContext, set_context_provider
    from geotasks.geo.conversion import to_result
    from geotasks.geo.limits import GeoLimits
    from geotasks.geo.operations import shapefile_to_geojson

    name = shapefile_name(count)
    processes = int(case.rsplit("/", 1)[1]) if "/" in case else 1
    limits = GeoLimits(max_features=10**8, max_read_processes=processes)
    set_context_provider(lambda: ReadContext(data_dir=DATA_DIR, limits=limits, tmp_dir=out))
    started = time.perf_counter()
    result = None
    if case == "generator":
        for _ in features(count):
            pass
    elif case == "to_result":
        result = to_result(features(count), tmp_dir=out, limits=limits)
    elif case == "read_features":
        from geotasks.geo import read_features

        result = to_result(read_features(name), tmp_dir=out, limits=limits)
    else:
        result = shapefile_to_geojson(name, data_dir=DATA_DIR, limits=limits, tmp_dir=out)
    seconds = time.perf_counter() - started
    size = 0
    if result is not None:
        size = result.size_bytes
        result.close()
    print(json.dumps({"seconds": seconds, "bytes": size}))


def print_table(runs: list[Run], count: int) -> None:
    """Print the results as a Markdown table."""
    print(f"\n{count:,} point features\n")
    print("| case | seconds | features/s | peak RSS MB | output MB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for run in runs:
        rss = f"{run.peak_rss_mb:.0f}" + (" (over!)" if run.peak_rss_mb > MAX_RSS_MB else "")
        print(
            f"| {CASES.get(run.case, WORKER)} | {run.convert_s:.2f} | "
            f"{count / run.convert_s:,.0f} | {rss} | {run.output_mb:.0f} |"
        )
    print(
        f"\nseconds: the conversion alone (imports and start-up left out); peak RSS: the "
        f"converting process (limit {MAX_RSS_MB} MB); with 2 processes, the job's process only; "
        "the worker: its worker process (VmHWM), the seconds include storing the result."
    )


if __name__ == "__main__":
    main()
