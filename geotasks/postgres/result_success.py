"""Results stored with their job's SUCCESS: the hot path's one commit per job.

A worker thread stores the small result of the job it ran and the job's SUCCESS in one string
(one round trip, one implicit transaction), so the result is durable before the status says
SUCCESS and the job costs one commit instead of two. The results of threads that finish at the
same time share one statement, ``store_successes`` (:mod:`geotasks.postgres.group_commit`).
The SUCCESS is :class:`~geotasks.postgres.job_status.JobStore`'s guarded transition: it is
refused, as any other, when the job has moved on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg2.extensions import cursor as Cursor

from ..job_model import JobState
from .group_commit import GroupCommit
from .job_status import JobRun, JobStore
from .outcome import success_payload
from .pool import Database, PreparedStatement, bind_prepared, execute_prepared
from .queries import load_queries

logger = logging.getLogger(__name__)

#: Largest result, in bytes, that shares a statement with the results of other worker threads
#: (group commit); a larger one costs more than a statement's fixed cost and goes alone.
GROUP_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class _Success:
    """An inline result of the job a worker thread ran, to store with the job's SUCCESS.

    Attributes:
      params: The parameters of the ``store`` query.
      job: The attempt that produced it.
      outcome_payload: The SUCCESS notification carrying the result, if it fits in one.
    """

    params: dict[str, Any]
    job: JobRun
    outcome_payload: str | None

    @property
    def message_id(self) -> str:
        return str(self.params["message_id"])


class SuccessWriter:
    """Writes results together with their job's SUCCESS; part of
    :class:`~geotasks.postgres.result_store.ResultStore`.

    Parameters:
      database: The pool to use.
      store_statement: The result store's ``store`` statement.
    """

    def __init__(self, database: Database, store_statement: PreparedStatement) -> None:
        self.database = database
        #: Records SUCCESS in the transaction that stores a result.
        self.jobs = JobStore(database)
        self._store_statement = store_statement
        self._successes_statement = PreparedStatement(
            "geotasks_result_store_successes", load_queries("results")["store_successes"]
        )
        # The results (and SUCCESS) of worker threads that finish at the same time share a
        # statement and a commit.
        self.group: GroupCommit[_Success, None] = GroupCommit(
            database,
            write_one=self._store_success,
            write_many=self._store_successes,
            key=lambda success: success.message_id,
        )

    def write(self, params: dict[str, Any], job: JobRun) -> None:
        """Store an inline result (the ``store`` query's ``params``) with ``job``'s SUCCESS; a
        small one travels in the SUCCESS notification too (:mod:`geotasks.postgres.outcome`)."""
        payload = success_payload(
            job.message_id,
            kind=params["kind"],
            media_type=params["media_type"],
            ttl_ms=params["ttl_ms"],
            data=params["data"],
        )
        success = _Success(params, job, payload)
        if params["size_bytes"] <= GROUP_MAX_BYTES:
            self.group.write(success)
        else:
            self.database.transaction(
                lambda cursor: self._store_success(cursor, success), single_statement=True
            )

    def record(
        self,
        cursor: Cursor,
        job: JobRun,
        ttl_ms: int,
        *,
        preceded_by: bytes | None = None,
        outcome_payload: str | None = None,
    ) -> None:
        """Record ``job``'s SUCCESS in the caller's transaction (after a chunked result), or
        sent in one string after ``preceded_by``; its notification carries ``outcome_payload``
        if given."""
        self.jobs.apply(
            cursor,
            job.message_id,
            actor_name=job.actor_name,
            queue_name=job.queue_name,
            status=JobState.SUCCESS,
            attempt=job.attempt,
            sent_at_ms=job.sent_at_ms,
            ttl_ms=ttl_ms,
            preceded_by=preceded_by,
            outcome_payload=outcome_payload,
        )

    def _store_success(self, cursor: Cursor, success: _Success) -> None:
        # The header and SUCCESS go in one string: one round trip, one implicit transaction,
        # so the result is durable before the status says SUCCESS.
        self.record(
            cursor,
            success.job,
            success.params["ttl_ms"],
            preceded_by=bind_prepared(cursor, self._store_statement, success.params),
            outcome_payload=success.outcome_payload,
        )

    def _store_successes(self, cursor: Cursor, many: Sequence[_Success]) -> list[None]:
        arrays = (
            {
                array: [success.params[name] for success in many]
                for array, name in _SUCCESS_RESULT_ARRAYS.items()
            }
            | {
                array: [getattr(success.job, name) for success in many]
                for array, name in _SUCCESS_JOB_ARRAYS.items()
            }
            | {"outcomes": [success.outcome_payload for success in many]}
        )
        execute_prepared(cursor, self._successes_statement, arrays)
        for message_id, status, applied in cursor.fetchall():
            if not applied:
                logger.debug("Job %s: SUCCESS refused, status stays %s", message_id, status)
        return [None] * len(many)


#: The arrays of ``store_successes`` from the ``store`` query's parameters, by parameter.
_SUCCESS_RESULT_ARRAYS = {
    "message_ids": "message_id",
    "kinds": "kind",
    "media_types": "media_type",
    "size_bytes": "size_bytes",
    "data": "data",
    "ttl_ms": "ttl_ms",
}
#: The arrays of ``store_successes`` from the attempt, by attribute.
_SUCCESS_JOB_ARRAYS = {
    "actor_names": "actor_name",
    "queue_names": "queue_name",
    "attempts": "attempt",
    "sent_at_ms": "sent_at_ms",
}
