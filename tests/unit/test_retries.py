"""Only transient failures are retried, and not forever."""

from __future__ import annotations

import psycopg2
import pytest
from dramatiq.middleware.time_limit import TimeLimitExceeded

from geotasks.errors import DatabaseUnavailable, InputError, TransientError
from geotasks.retries import MAX_TRANSIENT_RETRIES, retry_when


@pytest.mark.parametrize(
    "exception",
    [
        TransientError("upstream busy"),
        DatabaseUnavailable("db restarting"),
        psycopg2.OperationalError("server closed the connection unexpectedly"),
        ConnectionResetError(),
    ],
)
def test_transient_errors_are_retried(exception: BaseException) -> None:
    assert retry_when(0, exception)


@pytest.mark.parametrize(
    "exception",
    [
        InputError("dataset 'parcels' not found"),
        TimeLimitExceeded(),
        ValueError("bug"),
        KeyError("bug"),
    ],
)
def test_bad_input_time_limits_and_bugs_fail_at_once(exception: BaseException) -> None:
    assert not retry_when(0, exception)


def test_transient_errors_stop_being_retried_after_the_cap() -> None:
    assert retry_when(MAX_TRANSIENT_RETRIES - 1, TransientError())
    assert not retry_when(MAX_TRANSIENT_RETRIES, TransientError())
