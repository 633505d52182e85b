"""Which message owns each slot of a periodic actor (``geotasks.periodic_tick``).

Every running scheduler sends its own message for each slot, so with two schedulers every slot
arrives twice, under two message ids. The first message processed for ``(actor, slot)`` claims
the slot here; :class:`~geotasks.middleware.periodic.PeriodicDeduplication` skips the others,
and, unless the actor allows overlap, a slot whose previous slot's job has not finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg2.extensions import cursor as Cursor

from ..job_model import FINISHED_STATES, JobState
from .pool import Database
from .queries import load_queries


@dataclass(frozen=True)
class OtherTick:
    """A slot of the same actor that keeps this one from running.

    Attributes:
      slot: Its slot, in UTC.
      message_id: The job that owns it.
      status: That job's status (``None`` once its row is gone).
    """

    slot: datetime
    message_id: str
    status: str | None


@dataclass(frozen=True)
class Claim:
    """The outcome of :meth:`TickStore.claim`: exactly one of its fields is set.

    Attributes:
      deliveries: The message owns the slot and is processed for the n-th time (1, or more on a
        redelivery): it runs.
      owner: Another message owns the slot (a second scheduler's copy ran or runs).
      blocked_by: The actor's previous slot still runs, or a later slot already ran.
    """

    deliveries: int | None = None
    owner: str | None = None
    blocked_by: OtherTick | None = None


def still_running(status: str | None) -> bool:
    """Whether a job with ``status`` may still run (``None``: its row is gone, it has not)."""
    return status is not None and JobState(status) not in FINISHED_STATES


class TickStore:
    """The slots of periodic actors that a worker started.

    Parameters:
      database: The pool every statement goes through.
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    def claim(self, actor_name: str, slot: datetime, message_id: str, *, overlap: bool) -> Claim:
        """Claim ``slot`` of ``actor_name`` for ``message_id``, one claim per actor at a time.

        Parameters:
          actor_name: The periodic actor.
          slot: The slot, a timezone-aware datetime.
          message_id: The message about to be processed.
          overlap: Whether the slot may run while the previous slot's job has not finished
            (otherwise that, or a later slot already claimed, blocks it).

        Raises:
          DatabaseUnavailable: when Postgres cannot be reached.
          DatabaseError: when the schema is missing.
        """
        if slot.tzinfo is None:
            raise ValueError(f"slot must be timezone-aware, not {slot!r}")
        queries = load_queries("periodic")
        params = {"actor_name": actor_name, "slot": slot, "message_id": message_id}

        def claim(cursor: Cursor) -> Claim:
            cursor.execute(queries["lock_actor_ticks"], params)
            cursor.execute(queries["tick_owner"], params)
            owner = cursor.fetchone()
            if owner is not None and owner[0] != message_id:
                return Claim(owner=owner[0])
            if owner is not None:
                cursor.execute(queries["count_redelivery"], params)
                (deliveries,) = cursor.fetchone() or (1,)
                return Claim(deliveries=int(deliveries))
            if not overlap:
                cursor.execute(queries["latest_other_tick"], params)
                row = cursor.fetchone()
                if row is not None:
                    other = OtherTick(*row)
                    if other.slot > slot or still_running(other.status):
                        return Claim(blocked_by=other)
            cursor.execute(queries["insert_tick"], params)
            return Claim(deliveries=1)

        return self.database.transaction(claim)

    def delete_older_than(self, older_than_s: int) -> int:
        """Delete the ticks whose slot is more than ``older_than_s`` seconds in the past.

        Returns:
          The number of ticks deleted.

        Raises:
          DatabaseUnavailable: when Postgres cannot be reached.
        """
        query = load_queries("periodic")["delete_old_ticks"]

        def delete(cursor: Cursor) -> int:
            cursor.execute(query, {"older_than_s": older_than_s})
            return int(cursor.rowcount)

        return self.database.transaction(delete)
