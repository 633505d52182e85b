"""What a failed job's error says, when the exception itself says nothing."""

from __future__ import annotations

from dramatiq.middleware import TimeLimitExceeded

from geotasks.failures import describe_exception


def test_a_time_limit_is_explained_not_stored_as_an_empty_message() -> None:
    # Given Dramatiq's TimeLimitExceeded, raised without a message
    # When it is described for storing
    error = describe_exception(TimeLimitExceeded())
    # Then the job's error says what happened, and that it is not retried
    assert error.type_name == "TimeLimitExceeded"
    assert "time limit" in error.message and "not retried" in error.message


def test_other_messageless_exceptions_name_their_type_and_a_message_is_kept() -> None:
    assert describe_exception(KeyError()).message == "KeyError (no message)"
    assert describe_exception(ValueError("bad")).message == "bad"
