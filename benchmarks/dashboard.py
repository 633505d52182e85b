"""What the dashboard, ``/metrics`` and ``geotasks health`` cost Postgres at a million job rows.

Run from the repository root, under the exclusive CPU lock::

    flock -x /tmp/geotasks-cpu.lock python -m benchmarks.dashboard [--jobs 1000000]

It fills a fresh database with ``--jobs`` finished jobs (generated in SQL, never committed
anywhere): ``--busy-hour`` of them in the last hour (1,000 a minute by default), the rest spread
over the week before, 2 % failures, ten actors; plus a backlog of waiting messages, dead letters,
periodic ticks, registered workers and rate-limit slots. Then, for every query of
``geotasks/postgres/sql/overview.sql``, it prints the plan's scans (``EXPLAIN``) and the median and
95th percentile of ``--repeat`` runs; it fails if any query scans the job table sequentially.
Last, it times a whole dashboard read and a whole ``/metrics`` rendering.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from geotasks.monitoring.dashboard import dashboard_document
from geotasks.monitoring.metrics import render_metrics
from geotasks.monitoring.queues import read_queues
from geotasks.postgres.overview import RECENT_FAILURES, RUN_TIME_BOUNDS_S, WINDOW_S, read_state
from geotasks.postgres.pool import Database
from geotasks.postgres.queries import load_queries
from geotasks.settings import Settings

from .databases import bench_database

#: The parameters each overview query is run with.
PARAMETERS: dict[str, dict[str, Any]] = {
    "finished_per_minute": {"window_s": WINDOW_S},
    "finished_by_status": {"window_s": WINDOW_S},
    "run_time_buckets": {"window_s": WINDOW_S, "bounds_s": list(RUN_TIME_BOUNDS_S)},
    "recent_failures": {"window_s": WINDOW_S, "limit": RECENT_FAILURES},
}

FILL = """
INSERT INTO geotasks.job (message_id, actor_name, queue_name, status, attempt, runs, created_at,
    updated_at, pending_at, started_at, finished_at, expires_at, error_type, error_message)
SELECT id, actor, 'geo', status, 0, 1, created, finished, created, started, finished,
    finished + interval '1 day', err_type, err_message
FROM (
    SELECT
        md5(i::text)::uuid::text AS id,
        'actor_' || (i %% 10) AS actor,
        CASE WHEN i %% 50 = 0 THEN 'FAILURE' ELSE 'SUCCESS' END AS status,
        CASE WHEN i %% 50 = 0 THEN 'InputError' END AS err_type,
        CASE WHEN i %% 50 = 0 THEN 'no such dataset' END AS err_message,
        t AS created,
        t + interval '200 milliseconds' AS started,
        t + interval '200 milliseconds' + (i %% 997) * interval '20 milliseconds' AS finished
    FROM generate_series(1, %(jobs)s) AS i,
        LATERAL (
            SELECT now() - interval '30 seconds' - CASE WHEN i <= %(busy)s
                THEN random() * interval '59 minutes'
                ELSE interval '1 hour' + random() * interval '7 days' END AS t
        ) AS created
) AS generated;

INSERT INTO geotasks.broker_messages (message_id, queue_name, body, available_at)
SELECT md5('m' || i)::uuid::text, 'geo', '{}', now() + (i %% 3 - 1) * interval '1 minute'
FROM generate_series(1, %(waiting)s) AS i;

INSERT INTO geotasks.broker_dead_letters (message_id, queue_name, body, error, enqueued_at)
SELECT md5('d' || i)::uuid::text, 'geo', '{}', 'poison', now()
FROM generate_series(1, 1000) AS i;

INSERT INTO geotasks.periodic_tick (actor_name, slot, message_id)
SELECT 'maintenance_' || a, date_trunc('minute', now()) - s * interval '5 minutes',
    md5(a || '-' || s)::uuid::text
FROM generate_series(1, 3) AS a, generate_series(0, 7 * 288) AS s;

INSERT INTO geotasks.worker (worker_id, role, hostname, pid, parent_pid, queues, threads, version)
SELECT md5('w' || i)::uuid, 'worker', 'host-' || (i %% 5), 1000 + i, 1, ARRAY['geo'], 8, 'bench'
FROM generate_series(1, 20) AS i;

INSERT INTO geotasks.rate_limit_slots (key, slots_ms, expires_at)
SELECT 'geotasks:rate:actor_' || i, ARRAY[(extract(epoch FROM now()) * 1000)::bigint],
    now() + interval '1 minute'
FROM generate_series(0, 9) AS i;
"""


def scans(plan: dict[str, Any]) -> Iterator[str]:
    """Yield every scan node of a JSON plan, as ``Node Type on relation (index)``."""
    node = plan["Node Type"]
    if "Scan" in node:
        relation = plan.get("Relation Name", plan.get("Alias"))
        on = f" on {relation}" if relation else ""
        index = f" using {plan['Index Name']}" if "Index Name" in plan else ""
        yield f"{node}{on}{index}"
    for child in plan.get("Plans", []):
        yield from scans(child)


def timed(work: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Return the median and 95th percentile of ``repeat`` runs of ``work``, in ms."""
    work()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        runs.append((time.perf_counter() - start) * 1000)
    runs.sort()
    return statistics.median(runs), runs[min(len(runs) - 1, int(0.95 * len(runs)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000, help="job rows (1,000,000)")
    parser.add_argument("--busy-hour", type=int, default=60_000, help="of them in the last hour")
    parser.add_argument("--waiting", type=int, default=10_000, help="messages in the queue")
    parser.add_argument("--repeat", type=int, default=20, help="runs per query (20)")
    args = parser.parse_args()
    queries = load_queries("overview")
    with bench_database("dashboard") as url:
        database = Database(url, max_connections=2)
        start = time.perf_counter()
        fill = {"jobs": args.jobs, "busy": args.busy_hour, "waiting": args.waiting}
        database.transaction(lambda cur: cur.execute(FILL, fill), attempts=1)
        with database.connection() as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("VACUUM ANALYZE")
        fill_s = time.perf_counter() - start
        print(f"filled {args.jobs:,} jobs ({args.busy_hour:,} in the last hour) in {fill_s:.1f} s")
        seq_scans_of_jobs = []
        print(f"{'query':<22} {'median ms':>9} {'p95 ms':>8}  scans")
        for name, sql in queries.items():
            params = PARAMETERS.get(name, {})

            def explain(cur: Any, sql: str = sql, params: dict[str, Any] = params) -> Any:
                cur.execute("EXPLAIN (FORMAT JSON) " + sql, params)
                return cur.fetchone()[0]

            def run(sql: str = sql, params: dict[str, Any] = params) -> None:
                database.transaction(lambda cur: (cur.execute(sql, params), cur.fetchall()))

            plan = database.transaction(explain)
            plan = plan if isinstance(plan, list) else json.loads(plan)
            found = sorted(set(scans(plan[0]["Plan"])))
            seq_scans_of_jobs += [f"{name}: {s}" for s in found if s == "Seq Scan on job"]
            median, p95 = timed(run, args.repeat)
            print(f"{name:<22} {median:9.1f} {p95:8.1f}  {'; '.join(found) or '-'}")
        settings = Settings(database_url=url)
        median, p95 = timed(
            lambda: dashboard_document(
                settings,
                state := read_state(database, 60),
                read_queues(settings, state),
                None,
                base_url="http://localhost/",
            ),
            args.repeat,
        )
        print(f"{'whole dashboard':<22} {median:9.1f} {p95:8.1f}")
        median, p95 = timed(lambda: render_metrics(settings, read_state(database, 60)), args.repeat)
        print(f"{'whole /metrics':<22} {median:9.1f} {p95:8.1f}")
        database.close()
    if seq_scans_of_jobs:
        print("sequential scans of the job table:", *seq_scans_of_jobs, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
