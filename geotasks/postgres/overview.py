"""What the whole system looks like now, read from Postgres in one transaction.

The dashboard, ``/metrics`` and ``geotasks health`` all start from a :class:`SystemState`: the
worker registry, the Postgres broker's queues and dead letters, the jobs that finished in the
last hour, rate-limit and concurrency slots in use, and the latest tick of each periodic actor.
Every query is bounded by an index or by a small table (``benchmarks/dashboard.py`` times them at
a million job rows), so a dashboard refreshing itself stays light on the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg2.extensions import cursor as Cursor

from .pool import Database
from .queries import load_queries
from .workers import WorkerProcess

#: The window of the job statistics (per minute, per actor, run times), in seconds.
WINDOW_S = 3600
#: Failures listed with their error.
RECENT_FAILURES = 10
#: Upper bounds of the run-time histogram's buckets, in seconds (``+Inf`` is implied).
RUN_TIME_BOUNDS_S = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)


@dataclass(frozen=True)
class QueueDepth:
    """One queue of the Postgres broker: messages waiting, delayed, held by a worker."""

    queue_name: str
    ready: int
    delayed: int
    in_flight: int
    oldest_age_s: float | None


@dataclass(frozen=True)
class MinuteCount:
    """Jobs of one actor that finished within one minute, and how many of them failed."""

    actor_name: str
    minute: datetime
    finished: int
    failed: int


@dataclass(frozen=True)
class StatusCount:
    """Jobs of one actor that finished with one status in the window, with run-time quantiles."""

    actor_name: str
    status: str
    jobs: int
    p50_s: float | None
    p95_s: float | None


@dataclass(frozen=True)
class RunTimes:
    """The run-time histogram of one actor's jobs in the window.

    Attributes:
      buckets: Jobs per bucket of :data:`RUN_TIME_BOUNDS_S`: ``buckets[0]`` below the first
        bound, ``buckets[i]`` from bound ``i - 1`` up to bound ``i``, the last one above all.
      sum_s: Their run times added up.
    """

    actor_name: str
    buckets: tuple[int, ...]
    sum_s: float


@dataclass(frozen=True)
class FailedJob:
    """A job that failed in the window, with its error."""

    message_id: str
    actor_name: str
    finished_at: datetime
    error_type: str | None
    error_message: str | None


@dataclass(frozen=True)
class SlotsInUse:
    """Rate-limit or concurrency slots of one actor in use now.

    Attributes:
      period_s: The rate limit's period (``None`` for a concurrency limit).
    """

    actor_name: str
    in_use: int
    period_s: float | None


@dataclass(frozen=True)
class LatestTick:
    """The latest tick of a periodic actor that a worker started, and its job's status.

    Attributes:
      start_lateness_s: How long after its slot the tick started, in seconds.
    """

    actor_name: str
    slot: datetime
    message_id: str
    status: str | None
    start_lateness_s: float


@dataclass(frozen=True)
class SystemState:
    """Everything the monitoring views show, as of ``now`` on the database clock."""

    now: datetime
    workers: tuple[WorkerProcess, ...]
    broker_queues: tuple[QueueDepth, ...]
    dead_letters: dict[str, int]
    per_minute: tuple[MinuteCount, ...]
    by_status: tuple[StatusCount, ...]
    run_times: tuple[RunTimes, ...]
    recent_failures: tuple[FailedJob, ...]
    rate_limits: tuple[SlotsInUse, ...]
    concurrency: tuple[SlotsInUse, ...]
    latest_ticks: tuple[LatestTick, ...]


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _actor_of(key: str) -> str:
    # Limiter keys are "geotasks:rate:<actor>" and "geotasks:concurrency:<actor>".
    return key.split(":", 2)[-1]


def read_state(database: Database, heartbeat_timeout_s: float) -> SystemState:
    """Read the :class:`SystemState` in one transaction (one consistent snapshot per query).

    Parameters:
      database: The geotasks database.
      heartbeat_timeout_s: A worker silent this long is lost.

    Raises:
      DatabaseUnavailable: when Postgres cannot be reached.
      DatabaseError: when the schema is missing or behind.
    """
    queries = load_queries("overview")
    workers_query = load_queries("workers")["list_workers"]
    window = {"window_s": WINDOW_S}

    def rows(cur: Cursor, name: str, params: dict[str, Any] | None = None) -> list[Any]:
        cur.execute(queries[name], params or {})
        return cur.fetchall()

    def read(cur: Cursor) -> SystemState:
        (now,) = rows(cur, "clock")[0]
        cur.execute(workers_query, {"heartbeat_timeout_s": heartbeat_timeout_s})
        workers = tuple(WorkerProcess.from_row(row) for row in cur.fetchall())
        buckets: dict[str, list[int]] = {}
        sums: dict[str, float] = {}
        bounds = {**window, "bounds_s": list(RUN_TIME_BOUNDS_S)}
        for actor, bucket, jobs, run_s_sum in rows(cur, "run_time_buckets", bounds):
            counts = buckets.setdefault(actor, [0] * (len(RUN_TIME_BOUNDS_S) + 1))
            counts[bucket] += jobs
            sums[actor] = sums.get(actor, 0.0) + run_s_sum
        return SystemState(
            now=now,
            workers=workers,
            broker_queues=tuple(QueueDepth(*row) for row in rows(cur, "broker_queues")),
            dead_letters={queue: count for queue, count in rows(cur, "dead_letters")},
            per_minute=tuple(MinuteCount(*row) for row in rows(cur, "finished_per_minute", window)),
            by_status=tuple(
                StatusCount(actor, status, jobs, _seconds(p50), _seconds(p95))
                for actor, status, jobs, p50, p95 in rows(cur, "finished_by_status", window)
            ),
            run_times=tuple(
                RunTimes(actor, tuple(counts), sums[actor]) for actor, counts in buckets.items()
            ),
            recent_failures=tuple(
                FailedJob(*row)
                for row in rows(cur, "recent_failures", {**window, "limit": RECENT_FAILURES})
            ),
            rate_limits=tuple(
                SlotsInUse(_actor_of(key), in_use, float(period_s))
                for key, in_use, period_s in rows(cur, "rate_limits")
            ),
            concurrency=tuple(
                SlotsInUse(_actor_of(key), count, None)
                for key, count in rows(cur, "concurrency_leases")
            ),
            latest_ticks=tuple(LatestTick(*row) for row in rows(cur, "latest_ticks")),
        )

    return database.transaction(read)


def database_now(database: Database) -> datetime:
    """The database's clock, which stamps the jobs' ``created_at``."""

    def read(cur: Cursor) -> datetime:
        cur.execute(load_queries("overview")["clock"])
        row = cur.fetchone()
        if row is None:
            raise AssertionError("the clock query returned no row")
        moment: datetime = row[0]
        return moment

    return database.transaction(read, single_statement=True)
