"""The job status store: one row per message id, moved along a state machine that never goes back.

Dramatiq's hooks for one message run in several processes (the sender's ``after_enqueue``, a
worker's ``before_process_message``…), so their writes can reach Postgres out of order: a slow
sender may record PENDING after a worker recorded SUCCESS. Every write is therefore one guarded
upsert that applies a state only if :func:`transition_allowed` permits it from the stored state
and attempt. The same rule lives in SQL as ``geotasks.job_transition_allowed``.

The states and their machine are :mod:`geotasks.job_model`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg2.extensions import cursor as Cursor
from psycopg2.extras import Json

from ..job_model import (
    JobError,
    JobInfo,
    JobState,
    Transition,
)
from .pool import Database
from .prepared import PreparedStatement, execute_prepared
from .queries import load_queries

logger = logging.getLogger(__name__)

#: The notification channel whose payload is a message id: "this job finished, look again".
FINISHED_CHANNEL = "geotasks_result"


@dataclass(frozen=True)
class JobRun:
    """One attempt of a job, as a worker runs it: what its SUCCESS records.

    Attributes:
      message_id: The job's id.
      actor_name: Recorded when the row is created.
      queue_name: Recorded when the row is created (without Dramatiq's ``.DQ`` suffix).
      attempt: Dramatiq's retry count for this delivery.
      sent_at_ms: When the message was first sent, in ms since the epoch.
    """

    message_id: str
    actor_name: str
    queue_name: str
    attempt: int
    sent_at_ms: int | None


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
        arguments: str | None = None,
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
          arguments: The message's ``{"args", "kwargs"}`` as JSON text, kept once recorded.

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
                arguments=arguments,
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
        arguments: str | None = None,
        preceded_by: bytes | None = None,
        durable: bool = False,
        outcome_payload: str | None = None,
    ) -> Transition:
        """Like :meth:`transition`, inside the caller's transaction (``cursor``).

        Parameters:
          outcome_payload: For SUCCESS, the outcome channel's payload carrying the result
            (:func:`geotasks.postgres.outcome.success_payload`); the message id by default.
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
            "arguments": arguments,
            "outcome": outcome_payload,
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
