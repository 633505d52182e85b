"""A job's arguments, read back: the job's own record of them, or the broker's copy.

The job-status middleware records the arguments of the message that created a job
(``geotasks.job.arguments``) unless they are too large or not plain JSON; the Postgres broker
keeps the whole message while it waits in its queue and, once it failed for good, as a dead
letter. The Django admin shows them, and its "retry" action sends them again.
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


def job_arguments(database: Database, message_id: str) -> MessageArguments | None:
    """Return a job's arguments, or ``None`` when neither the job nor the broker has them.

    ``None`` for a job sent without geotasks' job-status middleware, or whose arguments were too
    large to record and whose message the broker (Redis, RabbitMQ, or Postgres after the run)
    no longer holds, or for an id never sent.
    """
    queries = load_queries("messages")

    def fetch(cur: Cursor) -> tuple[str | None, str] | None:
        cur.execute(queries["job_arguments"], {"message_id": message_id})
        recorded = cur.fetchone()
        if recorded is not None:
            return str(recorded[0]), str(recorded[1])
        cur.execute(queries["message_body"], {"message_id": message_id})
        copy = cur.fetchone()
        return None if copy is None else (None, str(copy[0]))

    found = database.transaction(fetch)
    if found is None:
        return None
    actor_name, text = found
    try:
        document = orjson.loads(text)
        return MessageArguments(
            actor_name or str(document["actor_name"]),
            list(document["args"]),
            dict(document["kwargs"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
