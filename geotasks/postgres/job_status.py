"""The job status store: one row per message id, moved along a state machine that never goes back.

Dramatiq's hooks for one message run in several processes (the sender's ``after_enqueue``, a
worker's ``before_process_message``…), so their writes can reach Postgres out of order: a slow
sender may record PENDING after a worker recorded SUCCESS. Every write is therefore one guarded
upsert that applies a state only if :func:`transition_allowed` permits it from the stored state
and attempt. The same rule lives in SQL as ``geotasks.job_transition_allowed``.

States, per attempt (``attempt`` is Dramatiq's retry count)::

    PENDING ─► THROTTLED ─► STARTED ─► SUCCESS | FAILURE | SKIPPED
                   ▲  │        │
                   └──┘        └─► RETRYING (attempt + 1) ─► THROTTLED / STARTED …
    PENDING | THROTTLED | RETRYING ─► CANCELLED (job.cancel())
    FAILURE | EXPIRED ─► PENDING (attempt + 1): only when its dead letter is re-queued

A finished job past its time to live reads EXPIRED (a tombstone kept ``GEOTASKS_JOB_RETENTION_S``);
an id that was never seen reads UNKNOWN.
"""

from __future__ import annotations

import contextvars
import enum
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg2.extensions import cursor as Cursor
from psycopg2.extras import Json

from .pool import Database, PreparedStatement, execute_prepared
from .queries import load_queries

logger = logging.getLogger(__name__)

#: The notification channel whose payload is a message id: "this job finished, look again".
FINISHED_CHANNEL = "geotasks_result"


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


@dataclass
class RunningJob:
    """The job a worker thread is running, as the ``JobStatus`` middleware announces it.

    The results backend reads it to record SUCCESS in the transaction that stores the result
    (one commit instead of two on the hot path); :func:`geotasks.progress` reads it to know
    which job to report on.

    Attributes:
      success_recorded: Set once SUCCESS was written with the result.
      result_not_stored: Set when the result could not be stored: the message runs again (the
        store was away) or fails (the result cannot be stored); there is no SUCCESS to record.
    """

    store: JobStore
    message_id: str
    actor_name: str
    queue_name: str
    attempt: int
    sent_at_ms: int | None
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
    """Announce (or, with ``None``, clear) the job this thread runs; for ``JobStatus``."""
    _running.set(job)


class JobStore:
    """Reads and writes ``geotasks.job`` through a connection pool.

    Parameters:
      database: The pool to use.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self._queries = load_queries("job_status")
        # The hot path: one per hook of every message.
        self._transition = PreparedStatement("geotasks_job_transition", self._queries["transition"])
        self._relaxed_progress = self._queries["relax_commit"] + "\n" + self._queries["progress"]

    def transition(
        self,
        message_id: str,
        *,
        actor_name: str,
        queue_name: str,
        status: JobState,
        attempt: int,
        sent_at_ms: int | None = None,
        next_at_ms: int | None = None,
        ttl_ms: int | None = None,
        error: JobError | None = None,
    ) -> Transition:
        """Record ``status`` for a job if the state machine allows it; one statement.

        Parameters:
          message_id: The job's id.
          actor_name: Recorded when the row is created.
          queue_name: Recorded when the row is created (without Dramatiq's ``.DQ`` suffix).
          status: The state to record (not UNKNOWN or EXPIRED, which are never written here).
          attempt: Dramatiq's retry count for this delivery.
          sent_at_ms: When the message was first sent (``message.message_timestamp``), in ms
            since the epoch: recorded as PENDING's time by whichever hook creates the row.
          next_at_ms: When a waiting job is due to run, in ms since the epoch.
          ttl_ms: For a finished state: how long the job (and its result) stays readable.
          error: For FAILURE and RETRYING: what the attempt raised.

        Returns:
          Transition: the job's status afterwards and whether this write was applied.

        Raises:
          ValueError: for UNKNOWN, EXPIRED or CANCELLED, which hooks never record.
          DatabaseUnavailable: when Postgres cannot be reached.
        """
        return self.database.transaction(
            lambda cursor: self.apply(
                cursor,
                message_id,
                actor_name=actor_name,
                queue_name=queue_name,
                status=status,
                attempt=attempt,
                sent_at_ms=sent_at_ms,
                next_at_ms=next_at_ms,
                ttl_ms=ttl_ms,
                error=error,
            ),
            single_statement=True,
        )

    def apply(
        self,
        cursor: Cursor,
        message_id: str,
        *,
        actor_name: str,
        queue_name: str,
        status: JobState,
        attempt: int,
        sent_at_ms: int | None = None,
        next_at_ms: int | None = None,
        ttl_ms: int | None = None,
        error: JobError | None = None,
        preceded_by: bytes | None = None,
        durable: bool = False,
    ) -> Transition:
        """Like :meth:`transition`, inside the caller's transaction (``cursor``).

        Parameters:
          preceded_by: A statement with its parameters bound (``cursor.mogrify``) sent ahead of
            the transition in the same string: one round trip, and on an autocommit connection
            one implicit transaction, for both. It commits as durably as ``status`` does, unless
            ``durable``.
          durable: Commit waiting for the WAL flush even for a state that a later one
            supersedes (whose commit alone need not wait).
        """
        if status in (JobState.UNKNOWN, JobState.EXPIRED, JobState.CANCELLED):
            raise ValueError(f"{status} is not recorded by a transition")
        params = {
            "message_id": message_id,
            "actor_name": actor_name,
            "queue_name": queue_name,
            "status": str(status),
            "attempt": attempt,
            "sent_at_ms": sent_at_ms,
            "next_at_ms": next_at_ms,
            "ttl_ms": ttl_ms,
            "error_type": error.type_name if error is not None else None,
            "error_message": error.message if error is not None else None,
            "error_traceback": error.traceback if error is not None else None,
        }
        # Sent with the statement in one round trip: psycopg2 returns the last one's rows.
        prefix = "" if status.finished or durable else self._queries["relax_commit"] + "\n"
        if preceded_by is not None:
            # Bound already: its own % signs must reach Postgres as they are.
            prefix = preceded_by.decode().replace("%", "%%") + ";\n" + prefix
        execute_prepared(cursor, self._transition, params, prefix=prefix)
        row = cursor.fetchone()
        if row is None:
            # The row was inserted by a transaction that committed while this statement
            # waited for it: too late for the statement's snapshot, visible to the next one
            # (a read, which may as well run in a transaction of its own).
            cursor.execute(self._queries["status"], {"message_id": message_id})
            row = cursor.fetchone()
            if row is None:
                raise AssertionError(f"job {message_id} has no row after its transition")
        outcome = Transition(JobState(row[0]), bool(row[1]))
        if not outcome.applied:
            logger.debug(
                "Job %s: %s (attempt %d) refused, status stays %s",
                message_id,
                status,
                attempt,
                outcome.status,
            )
        return outcome

    def requeue(
        self, cursor: Cursor, message_id: str, *, actor_name: str, queue_name: str, attempt: int
    ) -> bool:
        """Make a FAILURE (or EXPIRED, or forgotten) job PENDING again as ``attempt``, inside
        the caller's transaction: its dead letter is being re-queued (see
        :func:`requeue_allowed`).

        The failed attempt is kept in the job's history, its failure result deleted.

        Returns:
          bool: whether the job was made PENDING (``False``: it was in another state).
        """
        cursor.execute(
            self._queries["requeue"],
            {
                "message_id": message_id,
                "actor_name": actor_name,
                "queue_name": queue_name,
                "attempt": attempt,
            },
        )
        return cursor.fetchone() is not None

    def cancel(self, message_id: str, *, ttl_ms: int) -> bool:
        """Mark a job that is waiting (PENDING, THROTTLED, RETRYING) CANCELLED; workers then
        skip its message.

        Returns:
          bool: whether the job was cancelled (``False``: it had started, finished, or is unknown).
        """

        def work(cursor: Cursor) -> bool:
            cursor.execute(self._queries["cancel"], {"message_id": message_id, "ttl_ms": ttl_ms})
            return cursor.fetchone() is not None

        return self.database.transaction(work, single_statement=True)

    def set_progress(self, message_id: str, *, attempt: int, done: int, total: int | None) -> bool:
        """Record progress of a STARTED job's current attempt.

        Returns:
          bool: whether it was recorded (``False`` when the job is not running that attempt).
        """

        def work(cursor: Cursor) -> bool:
            cursor.execute(
                self._relaxed_progress,
                {"message_id": message_id, "attempt": attempt, "done": done, "total": total},
            )
            return cursor.rowcount == 1

        return self.database.transaction(work, single_statement=True)

    def set_warnings(
        self, message_id: str, *, attempt: int, warnings: Sequence[Mapping[str, Any]]
    ) -> bool:
        """Record the warnings of a STARTED job's current attempt (replacing earlier ones).

        Returns:
          bool: whether they were recorded (``False`` when the job is not running that attempt).
        """

        def work(cursor: Cursor) -> bool:
            cursor.execute(
                self._queries["warnings"],
                {"message_id": message_id, "attempt": attempt, "warnings": Json(list(warnings))},
            )
            return cursor.rowcount == 1

        return self.database.transaction(work, single_statement=True)

    def get(self, message_id: str) -> JobInfo | None:
        """Return what is known about a job, or ``None`` when its id is UNKNOWN."""

        def work(cursor: Cursor) -> JobInfo | None:
            cursor.execute(self._queries["get"], {"message_id": message_id})
            row = cursor.fetchone()
            return JobInfo.from_row(row) if row is not None else None

        return self.database.transaction(work, single_statement=True)

    def recent(
        self,
        *,
        statuses: Sequence[JobState] | None = None,
        actor_name: str | None = None,
        before: datetime | None = None,
        limit: int = 50,
    ) -> list[JobInfo]:
        """Return jobs, newest first.

        Parameters:
          statuses: Only jobs in one of these states (as a client reads them, so EXPIRED works).
          actor_name: Only jobs of this actor.
          before: Only jobs created before this time (for paging: pass the last one's
            ``created_at``).
          limit: At most this many jobs.
        """
        params = {
            "statuses": [str(s) for s in statuses] if statuses else None,
            "actor_name": actor_name,
            "before": before,
            "limit": limit,
        }

        def work(cursor: Cursor) -> list[JobInfo]:
            cursor.execute(self._queries["recent"], params)
            return [JobInfo.from_row(row) for row in cursor.fetchall()]

        return self.database.transaction(work, single_statement=True)

    def page(
        self,
        *,
        statuses: Sequence[JobState] | None = None,
        actor_names: Sequence[str] | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        min_duration_s: float | None = None,
        max_duration_s: float | None = None,
        key: tuple[datetime, str] | None = None,
        newer: bool = False,
        limit: int = 100,
    ) -> list[JobInfo]:
        """Return one page of jobs from a keyset position, for paging through a filtered list.

        Parameters:
          statuses: Only jobs in one of these states (as a client reads them).
          actor_names: Only jobs of these actors.
          created_from: Only jobs created at or after this time.
          created_to: Only jobs created at or before this time.
          min_duration_s: Only jobs that started and have run (or ran) at least this long.
          max_duration_s: Only jobs that started and have run (or ran) at most this long.
          key: ``(created_at, message_id)`` of the job the page starts after; the newest job
            when ``None`` (only for ``newer=False``).
          newer: Walk towards newer jobs (oldest first) instead of older ones (newest first).
          limit: At most this many jobs.

        Returns:
          list[JobInfo]: newest first, or oldest first when ``newer``.
        """
        if newer and key is None:
            raise ValueError("paging towards newer jobs needs a starting key")
        params = {
            "statuses": [str(s) for s in statuses] if statuses else None,
            "actor_names": list(actor_names) if actor_names else None,
            "created_from": created_from,
            "created_to": created_to,
            "min_duration_s": min_duration_s,
            "max_duration_s": max_duration_s,
            "key_created": key[0] if key else None,
            "key_id": key[1] if key else None,
            "limit": limit,
        }
        query = self._queries["page_newer" if newer else "page_older"]

        def work(cursor: Cursor) -> list[JobInfo]:
            cursor.execute(query, params)
            return [JobInfo.from_row(row) for row in cursor.fetchall()]

        return self.database.transaction(work, single_statement=True)

    def dismiss(self, message_id: str) -> bool:
        """Delete a finished job and its result; its id then reads UNKNOWN.

        Returns:
          bool: whether the job was deleted (``False``: unknown, or not finished).
        """

        def work(cursor: Cursor) -> bool:
            cursor.execute(self._queries["dismiss"], {"message_id": message_id})
            return cursor.fetchone() is not None

        return self.database.transaction(work, single_statement=True)

    def expire(self, *, retention_s: int, batch_size: int) -> tuple[int, int]:
        """Turn finished jobs past their time to live into tombstones; purge old tombstones.

        Does one batch of each; call again while either count equals ``batch_size``.

        Returns:
          tuple[int, int]: jobs tombstoned, tombstones deleted.
        """

        def work(cursor: Cursor) -> tuple[int, int]:
            cursor.execute(self._queries["tombstone"], {"batch_size": batch_size})
            tombstoned = cursor.rowcount
            cursor.execute(
                self._queries["purge"], {"batch_size": batch_size, "retention_s": retention_s}
            )
            return tombstoned, cursor.rowcount

        return self.database.transaction(work)
