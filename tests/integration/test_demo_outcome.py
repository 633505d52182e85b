"""``geotasks demo`` shows its own run's maintenance job, not an earlier run's (issue 25, 6)."""

from __future__ import annotations

import time

from geotasks.demo import database_now, maintenance_outcome
from geotasks.job_model import JobError, JobState
from geotasks.postgres.pool import Database
from tests.integration.http.conftest import record_job

ACTOR = "delete_expired_results"


def test_the_demo_shows_this_run_s_maintenance_tick_even_when_it_was_skipped(
    database: Database,
) -> None:
    # Given an earlier run's maintenance job that failed
    record_job(
        database,
        [JobState.PENDING, JobState.STARTED, JobState.FAILURE],
        actor_name=ACTOR,
        error=JobError("RuntimeError", "from the first run"),
    )

    # When this run starts and its scheduler's tick is skipped (the minute already ticked)
    since = database_now(database)
    record_job(database, [JobState.PENDING, JobState.STARTED, JobState.SKIPPED], actor_name=ACTOR)

    # Then the demo reports this run's SKIPPED tick, not the earlier run's outcome
    outcome = maintenance_outcome(database, time.monotonic() + 5, since=since)
    assert "SKIPPED: this minute's tick had already run" in outcome
    assert "from the first run" not in outcome
