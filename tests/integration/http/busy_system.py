"""A system caught mid-work, for the monitoring views: workers alive and lost, a late schedule,
queued, delayed and dead-lettered messages, finished and failed jobs, limits in use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dramatiq.message import Message

from geotasks.job_model import JobError, JobState
from geotasks.postgres.broker import PostgresBroker
from geotasks.postgres.pool import Database
from tests.integration.http.conftest import record_job
from tests.integration.registry import register

#: Run times of the echo jobs that succeeded, in seconds, and of the one that failed.
SUCCESS_RUN_TIMES_S = (0.2, 0.3, 2.0)
FAILURE_RUN_TIME_S = 1.0


@dataclass(frozen=True)
class BusySystem:
    """What was put in the database."""

    failed_job_id: str
    lost_worker_host: str


def _run(database: Database, sql: str, params: Any = None) -> None:
    database.transaction(lambda cur: cur.execute(sql, params))


def _finished(database: Database, job_id: str, run_s: float) -> None:
    # Finished two minutes ago, after running run_s seconds.
    _run(
        database,
        "UPDATE geotasks.job SET finished_at = now() - interval '2 minutes', "
        "started_at = now() - interval '2 minutes' - make_interval(secs => %s) "
        "WHERE message_id = %s",
        (run_s, job_id),
    )


def make_busy_system(database: Database) -> BusySystem:
    """Fill the test's database with a busy system; see the module's docstring."""
    register(database, queues=("default", "geo"), hostname="host-a", pid=100)
    register(database, queues=("geo",), hostname="host-b", pid=200, silent_for_s=600)
    register(
        database,
        role="scheduler",
        queues=("maintenance",),
        schedules={"every_minute": "* * * * *"},
        started_ago_s=600,
    )
    broker = PostgresBroker(database=database)
    for delay_ms in (None, None, 60_000):
        message: Message[Any] = Message(
            queue_name="geo", actor_name="echo", args=(), kwargs={}, options={}
        )
        broker.enqueue(message, delay=delay_ms)
    _run(
        database,
        "INSERT INTO geotasks.broker_dead_letters (message_id, queue_name, body, error, "
        "enqueued_at) VALUES ('dead', 'geo', '{}', 'poison', now())",
    )
    for run_s in SUCCESS_RUN_TIMES_S:
        job_id = record_job(database, [JobState.PENDING, JobState.STARTED, JobState.SUCCESS])
        _finished(database, job_id, run_s)
    failed = record_job(
        database,
        [JobState.PENDING, JobState.STARTED, JobState.FAILURE],
        error=JobError("InputError", "no such dataset: parcels"),
    )
    _finished(database, failed, FAILURE_RUN_TIME_S)
    # Two start slots of a 60 s rate limit: one half a second ago, one reserved a second ahead.
    _run(
        database,
        "INSERT INTO geotasks.rate_limit_slots (key, slots_ms, expires_at) "
        "SELECT 'geotasks:rate:echo', ARRAY[now_ms - 500, now_ms + 1000], "
        "to_timestamp((now_ms + 1000 + 60000) / 1000.0) "
        "FROM (SELECT (extract(epoch FROM now()) * 1000)::bigint AS now_ms) AS clock",
    )
    _run(
        database,
        "INSERT INTO geotasks.concurrency_leases (key, holder, expires_at) "
        "VALUES ('geotasks:concurrency:echo', 'm/1', now() + interval '1 minute')",
    )
    return BusySystem(failed_job_id=failed, lost_worker_host="host-b")
