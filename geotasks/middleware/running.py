"""The job a worker thread is running, as ``JobStatus`` announces it: where :func:`progress`
and the warnings of :func:`geotasks.job_warnings.warn` are recorded.

It lives in a context variable of the worker thread, set by
:meth:`~geotasks.middleware.job_status.JobStatus.before_process_message` and cleared when the
message ends; outside a worker (an actor called as a plain function) there is none, and
reporting does nothing.
"""

from __future__ import annotations

import contextvars
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..postgres.job_status import JobRun, JobStore

#: Most warnings recorded per attempt of a job; later ones are only logged.
MAX_WARNINGS_PER_JOB = 20
#: Shortest interval between two progress writes of one job, in seconds (the last one, with
#: ``done == total``, is always written).
PROGRESS_INTERVAL_S = 0.5


@dataclass
class RunningJob:
    """The job a worker thread is running, as :meth:`JobStatus.before_process_message` announces
    it: :func:`progress` and the warnings recorder report on it.

    Attributes:
      success_recorded: Set once SUCCESS was written with the result (see
        :meth:`JobStatus.success_stored`).
      result_not_stored: Set when the result could not be stored: the message runs again (the
        store was away) or fails (the result cannot be stored); there is no SUCCESS to record
        (see :meth:`JobStatus.withhold_success`).
    """

    store: JobStore
    run: JobRun
    success_recorded: bool = False
    result_not_stored: bool = False
    last_progress_s: float = 0.0
    warnings: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


_running: contextvars.ContextVar[RunningJob | None] = contextvars.ContextVar(
    "geotasks_running_job", default=None
)


def running_job() -> RunningJob | None:
    """Return the job this thread is running, or ``None`` outside an actor."""
    return _running.get()


def set_running_job(job: RunningJob | None) -> None:
    """Announce (or, with ``None``, clear) the job this thread runs."""
    _running.set(job)


def progress(done: int, total: int | None = None) -> None:
    """Report how far the running actor is, for the client's ``job.progress``.

    Writes at most every half second (and always when ``done`` reaches ``total``), so it is
    cheap to call per feature. Outside a worker (an actor called as a plain function) it does
    nothing.

    Parameters:
      done: Units of work done so far (features, bytes…).
      total: Units of work in all, when known.
    """
    running = running_job()
    if running is None:
        return
    now_s = time.monotonic()
    with running.lock:
        if now_s - running.last_progress_s < PROGRESS_INTERVAL_S and done != total:
            return
        running.last_progress_s = now_s
    running.store.set_progress(
        running.run.message_id, attempt=running.run.attempt, done=done, total=total
    )


def record_warning(running: RunningJob, warning: dict[str, Any]) -> None:
    """Add a warning to the running job's (see :func:`geotasks.job_warnings.warn`)."""
    with running.lock:
        if len(running.warnings) >= MAX_WARNINGS_PER_JOB:
            return
        running.warnings.append(warning)
        warnings = list(running.warnings)
    running.store.set_warnings(
        running.run.message_id, attempt=running.run.attempt, warnings=warnings
    )
