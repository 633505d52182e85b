"""A job records the arguments it was sent with, so they outlive the broker's copy."""

from __future__ import annotations

from typing import Any

from geotasks.job_model import JobState
from geotasks.middleware.job_status import JOB_ARGUMENTS_MAX_BYTES
from geotasks.postgres.messages import MessageArguments, job_arguments
from tests.integration.conftest import Stack
from tests.waiting import wait_until


def run_to_the_end(stack: Stack, actor: Any, *args: Any, **kwargs: Any) -> str:
    message = actor.send(*args, **kwargs)
    with stack.worker():
        wait_until(
            lambda: (
                stack.store.get(message.message_id) is not None
                and stack.store.get(message.message_id).status.finished
            ),
            10,
            "the job to finish",
        )
    return str(message.message_id)


def test_a_finished_job_still_has_its_arguments(stack: Stack) -> None:
    @stack.actor
    def measure(name: str, *, distance_m: float) -> float:
        return distance_m

    # When: a job is sent and runs (the Postgres broker's copy is gone afterwards)
    job_id = run_to_the_end(stack, measure, "parcels", distance_m=50.5)
    # Then: the job recorded what it was sent with
    assert stack.store.get(job_id).status is JobState.SUCCESS
    assert job_arguments(stack.database, job_id) == MessageArguments(
        "measure", ["parcels"], {"distance_m": 50.5}
    )


def test_arguments_too_large_or_with_a_nul_are_not_recorded_and_the_job_runs(
    stack: Stack,
) -> None:
    @stack.actor
    def echo(text: str) -> int:
        return len(text)

    for text in ("x" * JOB_ARGUMENTS_MAX_BYTES, "a\x00b"):
        job_id = run_to_the_end(stack, echo, text)
        assert stack.store.get(job_id).status is JobState.SUCCESS
        # Not in the job's row; the broker's copy (if any) went with the run
        assert job_arguments(stack.database, job_id) is None


def test_a_tombstone_drops_the_arguments(stack: Stack) -> None:
    @stack.actor
    def noop(x: int) -> int:
        return x

    job_id = run_to_the_end(stack, noop, 7)
    stack.database.transaction(
        lambda cur: cur.execute(
            "UPDATE geotasks.job SET expires_at = now() - interval '1 s' WHERE message_id = %s",
            (job_id,),
        )
    )
    stack.store.expire(retention_s=3600, batch_size=10)
    assert stack.store.get(job_id).status is JobState.EXPIRED
    assert job_arguments(stack.database, job_id) is None
