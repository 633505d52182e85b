"""Which failures are retried: transient ones only, with back-off capped at minutes.

Dramatiq's default retries everything up to 20 times with back-off growing to 7 days, so a bad
shapefile would be retried for a week. Geotasks actors declare ``retry_when=retry_when``: bad
input (:class:`~geotasks.errors.InputError`), a time limit, or any bug fails at once; a lost
database or broker connection is retried a few times.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import dramatiq.errors
import psycopg2

from .errors import TransientError
from .postgres.permanent_errors import is_permanent

#: Retries of a transient failure before the message fails for good.
MAX_TRANSIENT_RETRIES = 8
#: First back-off, in milliseconds (Dramatiq doubles it per retry).
MIN_BACKOFF_MS = 1_000
#: Longest back-off, in milliseconds: minutes, not Dramatiq's 7 days.
MAX_BACKOFF_MS = 5 * 60_000


@functools.cache
def transient_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean "try again later", including optional brokers' own."""
    errors: list[type[BaseException]] = [
        TransientError,
        psycopg2.OperationalError,
        psycopg2.InterfaceError,
        dramatiq.errors.BrokerConnectionError,
        ConnectionError,
        TimeoutError,
    ]
    with contextlib.suppress(ImportError):
        import redis.exceptions

        errors += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    with contextlib.suppress(ImportError):
        import pika.exceptions

        errors += [pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError]
    return tuple(errors)


def retry_when(
    retries_so_far: int, exception: BaseException, *, max_retries: int = MAX_TRANSIENT_RETRIES
) -> bool:
    """Dramatiq ``retry_when`` predicate: retry transient errors, at most ``max_retries`` times.

    A Postgres error that names a wrong setting (authentication, no such database or role) is
    an ``OperationalError`` like an outage, but permanent: it is not retried.
    """
    return (
        retries_so_far < max_retries
        and isinstance(exception, transient_errors())
        and not is_permanent(exception)
    )


def retry_options(max_retries: int | None = None) -> dict[str, Any]:
    """Actor options applying this policy, with an actor's own ``max_retries`` if it has one.

    Dramatiq ignores ``max_retries`` once an actor has a ``retry_when``, so the limit is
    carried into the predicate instead.
    """
    if max_retries is None:
        return dict(RETRY_OPTIONS)
    return {**RETRY_OPTIONS, "retry_when": functools.partial(retry_when, max_retries=max_retries)}


#: Actor options that apply this policy; every geotasks actor is declared with them.
RETRY_OPTIONS: dict[str, Any] = {
    "retry_when": retry_when,
    "min_backoff": MIN_BACKOFF_MS,
    "max_backoff": MAX_BACKOFF_MS,
}
