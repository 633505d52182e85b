"""The poison guard's counts: one row per message id and attempt in ``geotasks.message_deliveries``.

Every statement of ``sql/deliveries.sql`` runs here; the ``DeliveryLimit`` middleware
(:mod:`geotasks.middleware.deliveries`) decides what to count and what the counts mean. The
counts commit with ``synchronous_commit`` off: a count must be visible before the actor runs,
and is once committed; only a crash of the database server itself could lose one, and then the
guard merely counts a crash fewer.

A count may carry the job's STARTED in the same statement (one round trip instead of two on the
path of every message), and the counts of worker threads that start at the same time share one
statement (:mod:`geotasks.postgres.group_commit`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg2.extensions import cursor as Cursor

from ..job_model import JobState
from .group_commit import GroupCommit
from .job_status import JobRun
from .pool import Database
from .prepared import PreparedStatement, execute_prepared
from .queries import load_queries

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryCount:
    """A message's counts for one attempt, this delivery included.

    Attributes:
      deliveries: Deliveries not known to have finished.
      solo_deliveries: Those of them that ran alone in their process.
      started: The job's status after STARTED was recorded with the count; ``None`` when it
        was not (no ``start`` given, or an earlier delivery died).
    """

    deliveries: int
    solo_deliveries: int
    started: JobState | None


@dataclass(frozen=True)
class Delivery:
    """A delivery the guard counted: a message id and its attempt (Dramatiq's ``retries``)."""

    message_id: str
    attempt: int


#: The arrays of ``record_deliveries``, by the parameter of ``record_delivery`` each collects.
_RECORD_ARRAYS = {
    "message_ids": "message_id",
    "attempts": "attempt",
    "solo": "solo",
    "start": "start",
    "actor_names": "actor_name",
    "queue_names": "queue_name",
    "sent_at_ms": "sent_at_ms",
}


class DeliveryStore:
    """Counts deliveries through a connection pool.

    Parameters:
      database: The pool to use.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self._queries = load_queries("deliveries")
        self._record_statement = PreparedStatement(
            "geotasks_record_delivery", self._queries["record_delivery"]
        )
        self._record_many_statement = PreparedStatement(
            "geotasks_record_deliveries", self._queries["record_deliveries"]
        )
        self._relax_commit = self._queries["relax_commit"] + "\n"
        #: The counts of worker threads that start messages at the same time share a statement.
        self.group: GroupCommit[dict[str, Any], tuple[Any, ...]] = GroupCommit(
            database,
            write_one=self._record_one,
            write_many=self._record_many,
            key=lambda params: params["message_id"],
        )

    def record(
        self, delivery: Delivery, *, solo: bool, restart: bool, start: JobRun | None = None
    ) -> DeliveryCount:
        """Count a delivery; with ``start``, record the job's STARTED in the same statement
        unless an earlier delivery of this attempt died.

        Parameters:
          delivery: The delivery.
          solo: Whether it runs alone in its process.
          restart: This process finished the previous delivery of the attempt but has not
            cleared its count yet: start the counts again.
          start: The attempt to record STARTED for (the same message id and attempt).

        Raises:
          DatabaseUnavailable: When Postgres cannot be reached.
        """
        params = {
            "message_id": delivery.message_id,
            "attempt": delivery.attempt,
            "restart": restart,
            "solo": int(solo),
            "start": start is not None,
            "actor_name": start.actor_name if start else None,
            "queue_name": start.queue_name if start else None,
            "sent_at_ms": start.sent_at_ms if start else None,
        }
        if restart:
            # Rare (a throttled message back in the process that ran it): the batch
            # statement has no restart.
            row = self.database.transaction(
                lambda cur: self._record_one(cur, params), single_statement=True
            )
        else:
            row = self.group.write(params)
        return DeliveryCount(int(row[0]), int(row[1]), JobState(row[3]) if row[2] else None)

    def _record_one(self, cur: Cursor, params: dict[str, Any]) -> tuple[Any, ...]:
        execute_prepared(cur, self._record_statement, params, prefix=self._relax_commit)
        row = cur.fetchone()
        if row is None:
            raise AssertionError(f"no delivery count returned for {params['message_id']}")
        return tuple(row)

    def _record_many(self, cur: Cursor, many: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        arrays = {
            array: [params[name] for params in many] for array, name in _RECORD_ARRAYS.items()
        }
        execute_prepared(cur, self._record_many_statement, arrays, prefix=self._relax_commit)
        rows = {row[0]: tuple(row[1:]) for row in cur.fetchall()}
        return [rows[params["message_id"]] for params in many]

    def record_solo(self, delivery: Delivery) -> None:
        """Count a delivery already counted as running alone: a suspect got its process to
        itself."""
        params = {"message_id": delivery.message_id, "attempt": delivery.attempt}
        self.database.transaction(
            lambda cur: cur.execute(self._queries["record_solo"], params),
            single_statement=True,
        )

    def forget(self, finished: Sequence[Delivery]) -> None:
        """Clear the counts of deliveries that finished, in one statement."""
        params = {
            "message_ids": [delivery.message_id for delivery in finished],
            "attempts": [delivery.attempt for delivery in finished],
        }
        self.database.transaction(
            lambda cur: cur.execute(self._queries["forget_deliveries"], params),
            single_statement=True,
        )

    def forget_interrupted(self, interrupted: Sequence[tuple[Delivery, bool]]) -> None:
        """Take deliveries that a graceful shutdown interrupted off the counts: they killed
        nothing.

        Parameters:
          interrupted: Each delivery, and whether it was counted as running alone.
        """
        params = {
            "message_ids": [delivery.message_id for delivery, _ in interrupted],
            "attempts": [delivery.attempt for delivery, _ in interrupted],
            "solo": [int(solo) for _, solo in interrupted],
        }
        self.database.transaction(
            lambda cur: cur.execute(self._queries["forget_interrupted_deliveries"], params),
            single_statement=True,
        )
