"""geotasks job states map onto OGC's five, and statusInfo documents carry what is known."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from geotasks.http.status import (
    OGC_STATUS_CODES,
    REL_RESULTS,
    ogc_status,
    progress_percent,
    states_for,
    status_info,
)
from geotasks.job_model import JobError, JobInfo, JobState, Progress

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def make_info(status: JobState, **changes: object) -> JobInfo:
    info = JobInfo(
        message_id="0f8fad5b-d9cb-469f-a165-70867728950e",
        actor_name="buffer_features",
        queue_name="geo",
        status=status,
        attempt=0,
        runs=1,
        created_at=T0,
        updated_at=T0 + timedelta(seconds=3),
        pending_at=T0,
        throttled_at=None,
        retrying_at=None,
        started_at=None,
        finished_at=None,
        expired_at=None,
        next_at=None,
        expires_at=None,
        progress=None,
        error=None,
        result_kind=None,
        result_media_type=None,
        result_size_bytes=None,
    )
    return dataclasses.replace(info, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (JobState.PENDING, "accepted"),
        (JobState.THROTTLED, "accepted"),
        (JobState.STARTED, "running"),
        (JobState.RETRYING, "running"),
        (JobState.SUCCESS, "successful"),
        (JobState.FAILURE, "failed"),
        (JobState.SKIPPED, "failed"),
        (JobState.EXPIRED, "failed"),
        (JobState.CANCELLED, "dismissed"),
        (JobState.UNKNOWN, None),
    ],
)
def test_each_state_maps_as_the_issue_says(state: JobState, expected: str | None) -> None:
    assert ogc_status(state) == expected


def test_every_state_but_unknown_has_an_ogc_status() -> None:
    assert {ogc_status(state) for state in JobState} - {None} == set(OGC_STATUS_CODES)


def test_a_status_filter_expands_to_every_state_that_reads_as_it() -> None:
    assert set(states_for(["accepted", "failed"])) == {
        JobState.PENDING,
        JobState.THROTTLED,
        JobState.FAILURE,
        JobState.SKIPPED,
        JobState.EXPIRED,
    }


def test_progress_is_a_whole_percentage_when_the_total_is_known() -> None:
    running = make_info(JobState.STARTED, progress=Progress(1, 3, T0))
    assert progress_percent(running) == 33
    assert progress_percent(make_info(JobState.STARTED, progress=Progress(5, None, T0))) is None
    assert progress_percent(make_info(JobState.SUCCESS)) == 100


def test_status_info_of_a_running_job() -> None:
    # Given a job that started and reported progress
    info = make_info(
        JobState.STARTED, started_at=T0 + timedelta(seconds=1), progress=Progress(2, 4, T0)
    )
    # When it is described
    document = status_info(info, "http://api.example/")
    # Then it has the statusInfo members, in RFC 3339, and no results link yet
    assert document["jobID"] == info.message_id
    assert document["processID"] == "buffer_features"
    assert document["type"] == "process"
    assert document["status"] == "running"
    assert document["progress"] == 50
    assert document["created"] == "2026-05-01T12:00:00Z"
    assert document["started"] == "2026-05-01T12:00:01Z"
    assert "finished" not in document
    assert document["message"] == "running: 2 of 4 done"
    assert {link["rel"] for link in document["links"]} == {"self", "alternate"}


def test_status_info_of_a_successful_job_links_its_results() -> None:
    info = make_info(
        JobState.SUCCESS,
        finished_at=T0 + timedelta(seconds=9),
        result_kind="geojson",
        result_media_type="application/geo+json",
        result_size_bytes=1234,
    )
    document = status_info(info, "http://api.example/")
    results = [link for link in document["links"] if link["rel"] == REL_RESULTS]
    assert results == [
        {
            "href": f"http://api.example/jobs/{info.message_id}/results",
            "rel": REL_RESULTS,
            "type": "application/geo+json",
            "title": "the result",
        }
    ]
    assert document["finished"] == "2026-05-01T12:00:09Z"


def test_status_info_of_a_failed_job_says_what_was_raised() -> None:
    info = make_info(JobState.FAILURE, error=JobError("InputError", "no dataset named 'x'"))
    document = status_info(info, "http://api.example/")
    assert document["status"] == "failed"
    assert document["message"] == "failed: InputError: no dataset named 'x'"
