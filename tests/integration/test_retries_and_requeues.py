"""A job between attempts: its error while it waits for a retry, cancelling it then, and a
re-queued dead letter as a new attempt (issue 25, items 1 to 3)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from geotasks.cli.job_commands import format_info
from geotasks.errors import JobFailed, JobSkipped
from geotasks.http.status import status_info
from geotasks.job_model import JobInfo, JobState
from geotasks.jobs import Job
from geotasks.postgres.dead_letters import list_dead_letters, requeue_dead_letter
from tests.integration.conftest import Stack

S = JobState


def wait_for(job: Job, status: JobState, timeout_s: float = 10) -> JobInfo:
    deadline = time.monotonic() + timeout_s
    while True:
        info = job.info()
        if info.status is status:
            return info
        assert time.monotonic() < deadline, f"job {job.id} is {info.status}, not {status}"
        time.sleep(0.05)


def test_a_retrying_job_shows_the_error_of_its_last_attempt_everywhere(stack: Stack) -> None:
    # Given an actor that fails with an unexpected (retried) error, retried in a minute
    @stack.actor(max_retries=3, min_backoff=60_000, max_backoff=60_000)
    def flaky() -> None:
        raise ConnectionError("the tile server went away")

    # When it has failed once and waits for its retry
    with stack.worker():
        job = stack.job(flaky.send().message_id)
        info = wait_for(job, S.RETRYING)

    # Then its error is readable as a FAILURE's is: type, message and traceback
    error = job.error
    assert error is not None
    assert (error.type_name, error.message) == ("ConnectionError", "the tile server went away")
    assert "Traceback (most recent call last)" in error.traceback
    assert "in flaky" in error.traceback
    assert info.to_dict()["error"] == {
        "type": "ConnectionError",
        "message": "the tile server went away",
    }
    assert "error:    ConnectionError: the tile server went away" in format_info(info)
    message = status_info(info, "http://testserver/")["message"]
    assert "ConnectionError: the tile server went away" in message
    assert "will be retried" in message


def test_a_job_waiting_for_its_retry_is_cancelled_and_never_runs_again(stack: Stack) -> None:
    # Given an actor that fails once, retried after a second
    calls: list[int] = []

    @stack.actor(max_retries=3, min_backoff=1_000, max_backoff=1_000)
    def flaky() -> None:
        calls.append(1)
        raise ConnectionError("try again")

    with stack.worker():
        job = stack.job(flaky.send().message_id)
        wait_for(job, S.RETRYING)

        # When it is cancelled while it waits
        assert job.cancel()

        # Then it reads CANCELLED, and the worker skips the retry when it comes due
        time.sleep(2.5)
        assert calls == [1]
        assert job.status is S.CANCELLED
    with pytest.raises(JobSkipped):
        job.get(timeout=1)


def test_a_delayed_job_is_cancelled_like_a_pending_one(stack: Stack) -> None:
    calls: list[int] = []

    @stack.actor
    def later() -> None:
        calls.append(1)

    with stack.worker():
        job = stack.job(later.send_with_options(delay=1_000).message_id)
        assert job.cancel()
        time.sleep(2.5)
    assert calls == []
    assert job.status is S.CANCELLED


@pytest.mark.parametrize("stack", ["postgres"], indirect=True)
def test_a_requeued_dead_letter_is_a_new_attempt_of_its_job(stack: Stack) -> None:
    # Given an actor that fails for good while its dataset is missing
    dataset_exists = threading.Event()

    @stack.actor(throws=(FileNotFoundError,))
    def convert(name: str) -> dict[str, Any]:
        if not dataset_exists.is_set():
            raise FileNotFoundError(f"no dataset {name}")
        return {"converted": name}

    with stack.worker():
        job = stack.job(convert.send("parcels").message_id)
        with pytest.raises(JobFailed):
            job.get(timeout=10)
    failed = job.info()
    assert (failed.status, failed.attempt, failed.runs) == (S.FAILURE, 0, 1)
    [letter] = list_dead_letters(stack.database)

    # When the dataset is created and the dead letter re-queued
    dataset_exists.set()
    assert requeue_dead_letter(stack.database, letter.dead_letter_id) is not None

    # Then the job is PENDING again as a new attempt, the old error in its history only
    pending = job.info()
    assert (pending.status, pending.attempt, pending.error) == (S.PENDING, 1, None)
    assert job.error is None
    [past] = pending.history
    assert (past.attempt, past.status) == (0, S.FAILURE)
    assert past.error is not None
    assert (past.error.type_name, past.error.message) == ("FileNotFoundError", "no dataset parcels")
    assert pending.to_dict()["history"][0]["error"]["type"] == "FileNotFoundError"
    assert "earlier:" in format_info(pending)

    # And when it runs, it succeeds: status, result, runs and attempt all move on
    with stack.worker():
        assert job.get(timeout=10) == {"converted": "parcels"}
    done = job.info()
    assert (done.status, done.attempt, done.runs, done.error) == (S.SUCCESS, 1, 2, None)
    assert len(done.history) == 1
