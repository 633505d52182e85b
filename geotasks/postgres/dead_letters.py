"""Dead letters of the Postgres broker: messages a worker rejected, kept with their error.

A message lands here when its actor failed for good (nack), when its body does not decode or
names an unknown actor, and when it was redelivered too often or killed its worker too often.
``geotasks dead-letters`` lists, shows, re-queues and purges them through these functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg2.extensions import cursor as Cursor

from .broker import NOTIFY_CHANNEL
from .pool import Database
from .queries import load_queries


@dataclass(frozen=True)
class DeadLetter:
    """One rejected message."""

    dead_letter_id: int
    message_id: str
    queue_name: str
    #: ``None`` when the body could not be decoded.
    actor_name: str | None
    #: Dramatiq's encoded message, as it was enqueued.
    body: str
    #: The traceback or reason it was rejected.
    error: str
    redeliveries: int
    enqueued_at: datetime
    dead_at: datetime

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> DeadLetter:
        """Build a dead letter from a row of the ``list_dead_letters`` query."""
        return cls(*row)


def list_dead_letters(
    database: Database, *, queue_name: str | None = None, limit: int = 100
) -> list[DeadLetter]:
    """Return the oldest dead letters first, of one queue or of all.

    Parameters:
      database: The broker's database.
      queue_name: Only this queue's; every queue's when ``None``.
      limit: At most this many.
    """

    def fetch(cur: Cursor) -> list[DeadLetter]:
        cur.execute(
            load_queries("broker")["list_dead_letters"],
            {"queue_name": queue_name, "limit": limit},
        )
        return [DeadLetter.from_row(row) for row in cur.fetchall()]

    return database.transaction(fetch)


def get_dead_letter(database: Database, dead_letter_id: int) -> DeadLetter | None:
    """Return one dead letter, or ``None`` when there is none with that id."""

    def fetch(cur: Cursor) -> DeadLetter | None:
        cur.execute(load_queries("broker")["get_dead_letter"], {"dead_letter_id": dead_letter_id})
        row = cur.fetchone()
        return None if row is None else DeadLetter.from_row(row)

    return database.transaction(fetch)


def requeue_dead_letter(database: Database, dead_letter_id: int) -> tuple[str, str] | None:
    """Put a dead letter back in its queue, ready now, with its poison-guard count cleared.

    Returns:
      tuple: the message id and queue name, or ``None`` when there is no such dead letter.
    """

    def requeue(cur: Cursor) -> tuple[str, str] | None:
        cur.execute(
            load_queries("broker")["requeue_dead_letter"],
            {"dead_letter_id": dead_letter_id, "channel": NOTIFY_CHANNEL},
        )
        row = cur.fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    return database.transaction(requeue)


def purge_dead_letters(database: Database, *, queue_name: str | None = None) -> int:
    """Delete the dead letters of one queue, or of all; return how many were deleted."""

    def purge(cur: Cursor) -> int:
        cur.execute(load_queries("broker")["purge_dead_letters"], {"queue_name": queue_name})
        return int(cur.rowcount)

    return database.transaction(purge)


def delete_dead_letters(database: Database, dead_letter_ids: list[int]) -> int:
    """Delete these dead letters; return how many were deleted."""

    def delete(cur: Cursor) -> int:
        cur.execute(
            load_queries("broker")["delete_dead_letters"], {"dead_letter_ids": dead_letter_ids}
        )
        return int(cur.rowcount)

    return database.transaction(delete)
