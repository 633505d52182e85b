"""Dead letters of the Postgres broker: messages a worker rejected, kept with their error.

A message lands here when its actor failed for good (nack), when its body does not decode or
names an unknown actor, and when it was redelivered too often or killed its worker too often.
``geotasks dead-letters`` lists, shows, re-queues and purges them through these functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dramatiq.common import q_name
from dramatiq.errors import DecodeError
from dramatiq.message import Message
from psycopg2.extensions import cursor as Cursor

from .broker_store import NOTIFY_CHANNEL
from .job_status import JobStore
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


def requeue_dead_letter(
    database: Database, dead_letter_id: int, *, jobs: JobStore | None = None
) -> tuple[str, str] | None:
    """Put a dead letter back in its queue, ready now, with its poison-guard count cleared.

    It runs as a new attempt (one more than the attempt that failed): the message counts it in
    its ``retries`` option, and its job, FAILURE until now, is PENDING again in the same
    transaction, the failed attempt kept in the job's history (see
    :func:`~geotasks.postgres.job_status.requeue_allowed`). A body that does not decode goes
    back as it was, and its job is left alone.

    Parameters:
      database: The broker's database.
      dead_letter_id: Which dead letter.
      jobs: The job store, when it is not in the broker's database: the job is then made
        PENDING first, in a transaction of its own, so no worker's STARTED can precede it.

    Returns:
      tuple: the message id and queue name, or ``None`` when there is no such dead letter.
    """
    letter = get_dead_letter(database, dead_letter_id)
    if letter is None:
        return None
    next_attempt = _next_attempt(letter)
    if jobs is not None and next_attempt is not None:
        jobs.database.transaction(lambda cur: _requeue_job(jobs, cur, next_attempt))

    def requeue(cur: Cursor) -> tuple[str, str] | None:
        cur.execute(
            load_queries("broker")["requeue_dead_letter"],
            {
                "dead_letter_id": dead_letter_id,
                "channel": NOTIFY_CHANNEL,
                "body": next_attempt.encode().decode() if next_attempt is not None else None,
            },
        )
        row = cur.fetchone()
        if row is None:
            return None
        if jobs is None and next_attempt is not None:
            _requeue_job(JobStore(database), cur, next_attempt)
        return str(row[0]), str(row[1])

    return database.transaction(requeue)


def _requeue_job(store: JobStore, cur: Cursor, message: Message[Any]) -> bool:
    return store.requeue(
        cur,
        message.message_id,
        actor_name=message.actor_name,
        queue_name=q_name(message.queue_name),
        attempt=message.options["retries"],
    )


def _next_attempt(letter: DeadLetter) -> Message[Any] | None:
    """The dead letter's message as its next attempt, or ``None`` when the body is unreadable."""
    try:
        message: Message[Any] = Message.decode(letter.body.encode())
    except DecodeError:
        return None
    return message.copy(options={"retries": message.options.get("retries", 0) + 1})


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
