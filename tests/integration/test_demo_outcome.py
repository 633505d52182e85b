"""``geotasks demo`` shows its own run's maintenance job, not an earlier run's (issue 25, 6)."""

from __future__ import annotations

import time
import uuid

from geotasks.demo import database_now, maintenance_outcome
from geotasks.postgres.job_status import JobError, JobState, JobStore
from geotasks.postgres.pool import Database


def record(store: JobStore, status: JobState, error: JobError | None = None) -> str:
    job_id = str(uuid.uuid4())
    for state in (JobState.PENDING, JobState.STARTED, status):
        store.transition(
            job_id,
            actor_name="delete_expired_results",
            queue_name="maintenance",
            status=state,
            attempt=0,
            ttl_ms=60_000,
            error=error if state is JobState.FAILURE else None,
        )
    return job_id


def test_the_demo_shows_this_run_s_maintenance_tick_even_when_it_was_skipped(
    database: Database,
) -> None:
    # Given an earlier run's maintenance job that failed
    store = JobStore(database)
    record(store, JobState.FAILURE, JobError("RuntimeError", "from the first run"))

    # When this run starts and its scheduler's tick is skipped (the minute already ticked)
    since = database_now(database)
    record(store, JobState.SKIPPED)

    # Then the demo reports this run's SKIPPED tick, not the earlier run's outcome
    outcome = maintenance_outcome(database, time.monotonic() + 5, since=since)
    assert "SKIPPED: this minute's tick had already run" in outcome
    assert "from the first run" not in outcome
