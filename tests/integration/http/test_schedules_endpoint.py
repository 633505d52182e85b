"""``GET /schedules``: every periodic actor with its next slot and last slot's job, as JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.testclient import TestClient

from geotasks.job_model import JobState
from geotasks.postgres.job_status import JobStore
from geotasks.postgres.periodic import TickStore
from geotasks.postgres.pool import Database
from tests.integration.registry import register


def test_schedules_lists_each_periodic_actor_with_its_last_job(
    client: TestClient, database: Database
) -> None:
    # Given a scheduler sending a 30 s schedule, whose slot 12 s ago ran as job "tick-1"
    register(database, role="scheduler", schedules={"refresh_tiles": "every 30s"})
    now = datetime.now(UTC)
    slot = now - timedelta(seconds=12)
    jobs = JobStore(database)
    for status in (JobState.PENDING, JobState.SUCCESS):
        jobs.transition(
            "tick-1", actor_name="refresh_tiles", queue_name="default", status=status, attempt=0
        )
        if status is JobState.PENDING:
            TickStore(database).claim("refresh_tiles", slot, "tick-1", overlap=False)

    # When the schedules are asked for
    response = client.get("/schedules")

    # Then the actor is listed with its schedule, last slot, job, status and start lateness
    assert response.status_code == 200
    (schedule,) = response.json()
    assert schedule["actor"] == "refresh_tiles"
    assert schedule["schedule"] == "every 30s"
    assert datetime.fromisoformat(schedule["last_slot"]) == slot
    assert (schedule["last_job_id"], schedule["last_status"]) == ("tick-1", "SUCCESS")
    assert 0 <= schedule["last_start_lateness_s"] < 60
    # And its next slot is the multiple of 30 s after the last one
    assert datetime.fromisoformat(schedule["next_slot"]) > slot
    assert datetime.fromisoformat(schedule["next_slot"]).timestamp() % 30 == 0
    assert schedule["late"] is False
    # And the endpoint is in the OpenAPI document
    assert "/schedules" in client.get("/openapi.json").json()["paths"]


def test_schedules_need_the_token_when_tokens_are_set(secured_client: TestClient) -> None:
    assert secured_client.get("/schedules").status_code == 401
