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


@pytest.mark.parametrize(
    "text",
    [
        'connection to server at "db", port 5432 failed: FATAL:  password authentication failed '
        'for user "app"',
        'connection to server at "db", port 5432 failed: FATAL:  database "geo" does not exist',
        'connection to server at "db", port 5432 failed: FATAL:  role "app" does not exist',
        'connection to server at "db", port 5432 failed: FATAL:  no pg_hba.conf entry for host '
        '"10.0.0.5", user "app", database "geo", no encryption',
        'connection to server at "db", port 5432 failed: fe_sendauth: no password supplied',
    ],
)
def test_a_wrong_database_setting_fails_at_once(text: str) -> None:
    # An OperationalError like an outage, but retrying cannot fix it
    assert not retry_when(0, psycopg2.OperationalError(text))


def test_an_unreachable_server_is_retried() -> None:
    refused = psycopg2.OperationalError(
        'connection to server at "db", port 5432 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?"
    )
    assert retry_when(0, refused)


def test_transient_errors_stop_being_retried_after_the_cap() -> None:
    assert retry_when(MAX_TRANSIENT_RETRIES - 1, TransientError())
    assert not retry_when(MAX_TRANSIENT_RETRIES, TransientError())
