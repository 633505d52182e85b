"""The job vocabulary: a job's states, the machine that moves them, and what a job store returns.

Pure values, no I/O: the job store (:mod:`geotasks.postgres.job_status`), the middleware, the
client's :class:`~geotasks.Job`, the CLI and the HTTP API all speak it.

States, per attempt (``attempt`` is Dramatiq's retry count)::

    PENDING ─► THROTTLED ─► STARTED ─► SUCCESS | FAILURE | SKIPPED
                   ▲  │        │
                   └──┘        └─► RETRYING (attempt + 1) ─► THROTTLED / STARTED …
    PENDING | THROTTLED | RETRYING ─► CANCELLED (job.cancel())
    FAILURE | EXPIRED ─► PENDING (attempt + 1): only when its dead letter is re-queued

A finished job past its time to live reads EXPIRED (a tombstone kept ``GEOTASKS_JOB_RETENTION_S``);
an id that was never seen reads UNKNOWN. A transition is applied only if
:func:`transition_allowed` permits it from the stored state and attempt: hooks of one message run
in several processes and reach the store out of order. The same rule lives in SQL as
``geotasks.job_transition_allowed``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class JobState(enum.StrEnum):
    """Where a job is. ``UNKNOWN`` is never stored: it is what an id without a row reads."""

    PENDING = "PENDING"
    THROTTLED = "THROTTLED"
    RETRYING = "RETRYING"
    STARTED = "STARTED"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"

    @property
    def finished(self) -> bool:
        """Whether the job will never run (again): its outcome is known."""
        return self in FINISHED_STATES


#: States after which nothing runs any more.
FINISHED_STATES = frozenset(
    {
        JobState.SUCCESS,
        JobState.FAILURE,
        JobState.SKIPPED,
        JobState.CANCELLED,
        JobState.EXPIRED,
    }
)

#: Progress within one attempt: waiting (0), waiting for a rate-limit slot (1), running (2),
#: finished (3). Mirrors ``geotasks.job_phase`` in SQL.
_PHASES = {
    JobState.PENDING: 0,
    JobState.RETRYING: 0,
    JobState.THROTTLED: 1,
    JobState.STARTED: 2,
}
_FINISHED_PHASE = 3


def phase(state: JobState) -> int:
    """Return how far ``state`` is along one attempt (0 waiting … 3 finished)."""
    return _PHASES.get(state, _FINISHED_PHASE)


def transition_allowed(
    current: JobState | None, current_attempt: int, new: JobState, new_attempt: int
) -> bool:
    """Decide whether a job may move from ``current`` to ``new``.

    A state is applied only when it is further along than the stored one, comparing
    ``(attempt, phase)``; so a late PENDING never overwrites STARTED, and a late RETRYING of
    attempt 2 never overwrites STARTED of attempt 2. STARTED and THROTTLED may repeat within an
    attempt (a redelivered message starts again, a throttled one may be throttled again).
    Finished states are final for hooks (see :func:`requeue_allowed` for the one way out).
    CANCELLED applies only to a job that is waiting to start: first time, for a rate-limit slot,
    or for its retry.

    Parameters:
      current: The stored state, ``None`` when the job has no row yet.
      current_attempt: The stored attempt (ignored when ``current`` is ``None``).
      new: The state a hook wants to record.
      new_attempt: The attempt the hook saw (``message.options["retries"]``).

    Returns:
      bool: whether the transition is applied.
    """
    if new in (JobState.UNKNOWN, JobState.EXPIRED) or current is JobState.UNKNOWN:
        return False
    if current is None:
        return new is not JobState.CANCELLED
    if current in FINISHED_STATES:
        return False
    if new is JobState.CANCELLED:
        return current in CANCELLABLE_STATES
    stored = (current_attempt, phase(current))
    wanted = (new_attempt, phase(new))
    if new in (JobState.STARTED, JobState.THROTTLED) and wanted == stored:
        return True
    return wanted > stored


#: States in which nothing runs yet, so the job can still be cancelled.
CANCELLABLE_STATES = frozenset({JobState.PENDING, JobState.THROTTLED, JobState.RETRYING})

#: States a re-queued dead letter brings back to PENDING, as a new attempt.
REQUEUABLE_STATES = frozenset({JobState.FAILURE, JobState.EXPIRED})


def requeue_allowed(current: JobState | None) -> bool:
    """Decide whether re-queueing a job's dead letter makes the job PENDING again.

    A re-queued dead letter runs again, so its job must not keep reading FAILURE: this is the
    one way out of a finished state, and no hook can take it (:func:`transition_allowed` keeps
    finished states final). A job with no record any more is recorded anew. Any other state
    (the failure not recorded yet, say) is left to the worker's hooks. The SQL query
    ``requeue`` applies the same rule.

    Parameters:
      current: The stored state, ``None`` when the job has no row.
    """
    return current is None or current in REQUEUABLE_STATES


@dataclass(frozen=True)
class JobError:
    """What a failed job raised.

    Attributes:
      type_name: The exception's class name, such as ``InputError``.
      message: ``str()`` of the exception.
      traceback: The formatted traceback, ``""`` when none was recorded.
    """

    type_name: str
    message: str
    traceback: str = ""

    def to_dict(self) -> dict[str, str]:
        """Return the error as a JSON-ready mapping."""
        return {"type": self.type_name, "message": self.message, "traceback": self.traceback}


@dataclass(frozen=True)
class PastAttempt:
    """An attempt that ended before the job's dead letter was re-queued.

    Attributes:
      attempt: The attempt it was.
      status: How it ended, normally FAILURE.
      error: What it raised, if recorded.
      finished_at: When it ended.
      requeued_at: When its dead letter was re-queued.
    """

    attempt: int
    status: JobState
    error: JobError | None
    finished_at: datetime | None
    requeued_at: datetime

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> PastAttempt:
        """Build from an element of the ``history`` column."""
        error_type = entry.get("error_type")
        finished_at = entry.get("finished_at")
        return cls(
            attempt=int(entry["attempt"]),
            status=JobState(entry["status"]),
            error=(
                JobError(
                    error_type, entry.get("error_message") or "", entry.get("error_traceback") or ""
                )
                if error_type is not None
                else None
            ),
            finished_at=datetime.fromisoformat(finished_at) if finished_at else None,
            requeued_at=datetime.fromisoformat(entry["requeued_at"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the attempt as a JSON-ready mapping (no traceback)."""
        return {
            "attempt": self.attempt,
            "status": str(self.status),
            "error": (
                {"type": self.error.type_name, "message": self.error.message}
                if self.error is not None
                else None
            ),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "requeued_at": self.requeued_at.isoformat(),
        }


@dataclass(frozen=True)
class Progress:
    """What an actor last reported with :func:`geotasks.progress`."""

    done: int
    total: int | None
    reported_at: datetime

    @property
    def fraction(self) -> float | None:
        """``done / total`` between 0 and 1, or ``None`` when the total is unknown."""
        if not self.total:
            return None
        return min(max(self.done / self.total, 0.0), 1.0)


@dataclass(frozen=True)
class JobInfo:
    """Everything known about one job: its state, each state's timestamp, progress, error.

    Attributes:
      attempt: Dramatiq's retry count (``message.options["retries"]``): 0 until a retry; a
        re-queued dead letter counts one more.
      runs: How many times the actor was started (a redelivered message counts again).
      error: What the last attempt raised, while the job is FAILURE or RETRYING (or waits
        for a rate-limit slot between retries). Its traceback is read by ``get`` only, not by
        the lists.
      history: Attempts that ended before the job's dead letter was re-queued, oldest first.
      result_kind: ``value``, ``geojson`` or ``failure`` when a result is stored, else ``None``.
      result_media_type: The stored result's media type, such as ``application/geo+json``.
      result_size_bytes: The stored result's size.
      warnings: What the job warned about while it ran (:func:`geotasks.job_warnings.warn`),
        such as invalid geometries it kept: mappings with a ``message``, in order.
    """

    message_id: str
    actor_name: str
    queue_name: str
    status: JobState
    attempt: int
    runs: int
    created_at: datetime
    updated_at: datetime
    pending_at: datetime | None
    throttled_at: datetime | None
    retrying_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    expired_at: datetime | None
    next_at: datetime | None
    expires_at: datetime | None
    progress: Progress | None
    error: JobError | None
    result_kind: str | None
    result_media_type: str | None
    result_size_bytes: int | None
    history: tuple[PastAttempt, ...] = ()
    warnings: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> JobInfo:
        """Build from a row of the ``get`` or ``recent`` query."""
        (
            message_id,
            actor_name,
            queue_name,
            status,
            attempt,
            runs,
            created_at,
            updated_at,
            pending_at,
            throttled_at,
            retrying_at,
            started_at,
            finished_at,
            expired_at,
            next_at,
            expires_at,
            progress_done,
            progress_total,
            progress_at,
            error_type,
            error_message,
            error_traceback,
            history,
            result_kind,
            result_media_type,
            result_size_bytes,
            warnings,
        ) = row
        return cls(
            message_id=message_id,
            actor_name=actor_name,
            queue_name=queue_name,
            status=JobState(status),
            attempt=attempt,
            runs=runs,
            created_at=created_at,
            updated_at=updated_at,
            pending_at=pending_at,
            throttled_at=throttled_at,
            retrying_at=retrying_at,
            started_at=started_at,
            finished_at=finished_at,
            expired_at=expired_at,
            next_at=next_at,
            expires_at=expires_at,
            progress=(
                Progress(progress_done, progress_total, progress_at)
                if progress_at is not None
                else None
            ),
            error=(
                JobError(error_type, error_message or "", error_traceback or "")
                if error_type is not None
                else None
            ),
            result_kind=result_kind,
            result_media_type=result_media_type,
            result_size_bytes=result_size_bytes,
            history=tuple(PastAttempt.from_json(entry) for entry in history or ()),
            warnings=tuple(warnings or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the info as a JSON-ready mapping (timestamps in ISO 8601)."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "id": self.message_id,
            "actor_name": self.actor_name,
            "queue_name": self.queue_name,
            "status": str(self.status),
            "attempt": self.attempt,
            "runs": self.runs,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "pending_at": iso(self.pending_at),
            "throttled_at": iso(self.throttled_at),
            "retrying_at": iso(self.retrying_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "expired_at": iso(self.expired_at),
            "next_at": iso(self.next_at),
            "expires_at": iso(self.expires_at),
            "progress": (
                {
                    "done": self.progress.done,
                    "total": self.progress.total,
                    "reported_at": iso(self.progress.reported_at),
                }
                if self.progress is not None
                else None
            ),
            "error": (
                {"type": self.error.type_name, "message": self.error.message}
                if self.error is not None
                else None
            ),
            "result": (
                {"media_type": self.result_media_type, "size_bytes": self.result_size_bytes}
                if self.result_kind is not None and self.result_kind != "failure"
                else None
            ),
            "history": [attempt.to_dict() for attempt in self.history],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class Transition:
    """What a :meth:`JobStore.transition` did.

    Attributes:
      status: The job's status after the statement.
      applied: Whether the requested state was recorded (``False``: refused by the rules).
    """

    status: JobState
    applied: bool
