"""A job's arguments, read back from the Postgres broker's copy of its message.

The job store keeps states, not arguments; the broker keeps the message while it waits in its
queue and, once it failed for good, as a dead letter (for ``GEOTASKS_DEAD_LETTER_RETENTION_S``).
That is what the Django admin shows, and what its "retry" action sends again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from psycopg2.extensions import cursor as Cursor

from .pool import Database
from .queries import load_queries


@dataclass(frozen=True)
class MessageArguments:
    """What a message asked its actor to do."""

    actor_name: str
    args: list[Any]
    kwargs: dict[str, Any]


def message_arguments(database: Database, message_id: str) -> MessageArguments | None:
    """Return the arguments of a message the broker still holds, or ``None``.

    ``None`` when the message has run (and did not fail for good), its dead letter is gone, or
    it went through Redis or RabbitMQ.
    """

    def fetch(cur: Cursor) -> str | None:
        cur.execute(load_queries("messages")["message_body"], {"message_id": message_id})
        row = cur.fetchone()
        return None if row is None else str(row[0])

    body = database.transaction(fetch)
    if body is None:
        return None
    try:
        message = orjson.loads(body)
        return MessageArguments(
            str(message["actor_name"]), list(message["args"]), dict(message["kwargs"])
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
