"""The job status state machine as a pure function: which transitions a stored job accepts."""

from __future__ import annotations

import itertools

import pytest

from geotasks.job_model import FINISHED_STATES, JobState, requeue_allowed, transition_allowed

S = JobState
HOOK_STATES = [S.PENDING, S.THROTTLED, S.RETRYING, S.STARTED, S.SUCCESS, S.FAILURE, S.SKIPPED]


@pytest.mark.parametrize(
    "path",
    [
        # (state, attempt) as the hooks of one message record them, in order
        [(S.PENDING, 0), (S.STARTED, 0), (S.SUCCESS, 0)],
        [(S.PENDING, 0), (S.STARTED, 0), (S.RETRYING, 1), (S.STARTED, 1), (S.FAILURE, 2)],
        [(S.PENDING, 0), (S.THROTTLED, 0), (S.THROTTLED, 0), (S.STARTED, 0), (S.SKIPPED, 0)],
        [(S.PENDING, 0), (S.STARTED, 0), (S.RETRYING, 1), (S.THROTTLED, 1), (S.STARTED, 1)],
        # a redelivered message (worker killed) starts again within the same attempt
        [(S.PENDING, 0), (S.STARTED, 0), (S.STARTED, 0), (S.SUCCESS, 0)],
        # a message for an unknown actor is nacked without ever starting
        [(S.PENDING, 0), (S.FAILURE, 0)],
        [(S.PENDING, 0), (S.CANCELLED, 0)],
        [(S.PENDING, 0), (S.THROTTLED, 0), (S.CANCELLED, 0)],
    ],
)
def test_every_step_of_a_normal_life_is_allowed(path: list[tuple[JobState, int]]) -> None:
    # Given each stored state, when the next hook's state arrives, then it is applied
    for (current, current_attempt), (new, new_attempt) in itertools.pairwise(path):
        assert transition_allowed(current, current_attempt, new, new_attempt), (current, new)


@pytest.mark.parametrize("new", [*HOOK_STATES])
def test_the_first_record_of_a_job_may_be_any_hook_state(new: JobState) -> None:
    # A late PENDING means STARTED may well come first
    assert transition_allowed(None, 0, new, 0)


def test_a_job_that_was_never_recorded_cannot_be_cancelled() -> None:
    assert not transition_allowed(None, 0, S.CANCELLED, 0)


@pytest.mark.parametrize(
    ("current", "current_attempt", "new", "new_attempt"),
    [
        # the sender's after_enqueue arrives after the worker's hooks
        (S.STARTED, 0, S.PENDING, 0),
        (S.SUCCESS, 0, S.PENDING, 0),
        # Retries' re-enqueue is recorded after the retried message already started
        (S.STARTED, 1, S.RETRYING, 1),
        # a throttle re-enqueue recorded after the message started elsewhere
        (S.STARTED, 0, S.THROTTLED, 0),
        # an older attempt's hooks arrive after a newer attempt's
        (S.STARTED, 2, S.STARTED, 1),
        (S.RETRYING, 2, S.SUCCESS, 1),
        (S.PENDING, 0, S.PENDING, 0),
    ],
)
def test_out_of_order_hooks_never_move_a_job_backwards(
    current: JobState, current_attempt: int, new: JobState, new_attempt: int
) -> None:
    assert not transition_allowed(current, current_attempt, new, new_attempt)


@pytest.mark.parametrize(
    ("current", "new"),
    list(itertools.product(sorted(FINISHED_STATES), [*HOOK_STATES, S.CANCELLED])),
)
def test_finished_states_are_final(current: JobState, new: JobState) -> None:
    for attempt in (0, 1, 5):
        assert not transition_allowed(current, 0, new, attempt)


def test_a_job_executing_cannot_be_cancelled() -> None:
    assert not transition_allowed(S.STARTED, 1, S.CANCELLED, 1)


@pytest.mark.parametrize("current", [S.PENDING, S.THROTTLED, S.RETRYING])
def test_a_job_waiting_to_start_for_a_slot_or_for_its_retry_can_be_cancelled(
    current: JobState,
) -> None:
    # Nothing runs while a job waits for its next retry: cancelling it stops nothing halfway
    assert transition_allowed(current, 1, S.CANCELLED, 1)


@pytest.mark.parametrize("current", [None, S.FAILURE, S.EXPIRED])
def test_a_requeued_dead_letter_brings_a_failed_or_forgotten_job_back(
    current: JobState | None,
) -> None:
    assert requeue_allowed(current)


@pytest.mark.parametrize(
    "current", [S.PENDING, S.THROTTLED, S.RETRYING, S.STARTED, S.SUCCESS, S.SKIPPED, S.CANCELLED]
)
def test_a_requeue_leaves_any_other_state_to_the_hooks(current: JobState) -> None:
    assert not requeue_allowed(current)


def test_no_hook_takes_a_failure_back_to_pending_only_a_requeue_does() -> None:
    # A late PENDING, even of a later attempt, must not reopen a failed job
    assert not transition_allowed(S.FAILURE, 0, S.PENDING, 1)
    assert requeue_allowed(S.FAILURE)


@pytest.mark.parametrize("new", [S.EXPIRED, S.UNKNOWN])
def test_expired_and_unknown_are_never_written_by_a_hook(new: JobState) -> None:
    assert not transition_allowed(None, 0, new, 0)
    assert not transition_allowed(S.STARTED, 0, new, 0)


def test_finished_states() -> None:
    assert {s for s in JobState if s.finished} == {
        S.SUCCESS,
        S.FAILURE,
        S.SKIPPED,
        S.CANCELLED,
        S.EXPIRED,
    }
    assert not S.UNKNOWN.finished
