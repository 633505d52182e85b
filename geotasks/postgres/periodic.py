"""Which message owns each tick of a periodic actor (``geotasks.periodic_tick``).

periodiq sends one message per scheduler per tick, so with two schedulers running every tick
arrives twice, under two message ids. The first message processed for ``(actor, slot)`` claims
the tick here; :class:`~geotasks.middleware.periodic.PeriodicDeduplication` skips the others.
"""

from __future__ import annotations

from datetime import datetime

from psycopg2.extensions import cursor as Cursor

from .pool import Database
from .queries import load_queries


class TickStore:
    """The ticks of periodic actors that a worker started.

    Parameters:
      database: The pool every statement goes through.
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    def claim(self, actor_name: str, slot: datetime, message_id: str) -> int | None:
        """Claim the tick ``slot`` of ``actor_name`` for ``message_id``.

        Parameters:
          actor_name: The periodic actor.
          slot: The tick's cron slot, a timezone-aware datetime.
          message_id: The message about to be processed.

        Returns:
          How many times ``message_id`` has now been processed for this tick (1 the first
          time, more on a redelivery), or ``None`` when another message already owns the tick.

        Raises:
          DatabaseUnavailable: when Postgres cannot be reached.
          DatabaseError: when the schema is missing.
        """
        if slot.tzinfo is None:
            raise ValueError(f"slot must be timezone-aware, not {slot!r}")
        query = load_queries("periodic")["claim_tick"]
        params = {"actor_name": actor_name, "slot": slot, "message_id": message_id}

        def claim(cursor: Cursor) -> int | None:
            cursor.execute(query, params)
            row = cursor.fetchone()
            return None if row is None else int(row[0])

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
