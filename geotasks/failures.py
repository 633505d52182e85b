"""What a failed job records of the exception it raised: type, message and traceback.

Pure: the results backend stores it with a failure, ``JobStatus`` with FAILURE and RETRYING.
"""

from __future__ import annotations

import traceback

from dramatiq.middleware import TimeLimitExceeded

from .job_model import JobError

#: Longest traceback stored with a failure, in characters (the innermost frames are kept).
MAX_TRACEBACK_CHARS = 64 * 1024


def describe_exception(
    exception: BaseException, *, fallback_traceback: str | None = None
) -> JobError:
    """Return the type, message and traceback of an exception, for storing.

    Parameters:
      exception: What the actor raised.
      fallback_traceback: Used when the exception carries no traceback (Dramatiq's Retries
        records one in ``message.options["traceback"]``).
    """
    if exception.__traceback__ is not None:
        text = "".join(traceback.format_exception(exception))
    else:
        text = fallback_traceback or ""
    if len(text) > MAX_TRACEBACK_CHARS:
        text = "…" + text[-MAX_TRACEBACK_CHARS:]
    return JobError(type(exception).__name__, str(exception) or _explain(exception), text)


def _explain(exception: BaseException) -> str:
    # Dramatiq raises some of its own exceptions without a message; a client reading the job
    # must still learn what happened.
    if isinstance(exception, TimeLimitExceeded):
        return (
            "the job ran longer than its time limit and was stopped (the actor's time_limit "
            "option; GEOTASKS_GEO_TIME_LIMIT_S for the geo actors); it is not retried"
        )
    return f"{type(exception).__name__} (no message)"
