"""The actor catalogue in Postgres (``geotasks.actor_catalogue``): what workers serve.

Workers publish their public actors when they start; clients that cannot import an actor's code
(a web process, the CLI, the HTTP API) read them through :mod:`geotasks.catalogue`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from psycopg2.extensions import cursor as Cursor
from psycopg2.extras import Json

from ..registry import ActorSpec
from .pool import Database
from .queries import load_queries


@dataclass(frozen=True)
class PublishedActor:
    """An actor as the catalogue holds it: its spec, and who published it when."""

    spec: ActorSpec
    published_at: datetime
    published_by: str


def publish_actors(database: Database, specs: Iterable[ActorSpec], published_by: str) -> list[str]:
    """Publish ``specs``; an unchanged one is left as it is.

    Parameters:
      database: The pool to write through.
      specs: The actors a worker serves.
      published_by: Who publishes (host, pid, version), shown by ``geotasks actors``.

    Returns:
      The names of the actors that were new or changed.

    Raises:
      DatabaseUnavailable: when Postgres cannot be reached.
      DatabaseError: when the schema is missing.
    """
    query = load_queries("catalogue")["publish_actor"]
    specs = list(specs)

    def publish(cursor: Cursor) -> list[str]:
        changed = []
        for spec in specs:
            cursor.execute(
                query,
                {
                    "actor_name": spec.name,
                    "spec": Json(spec.to_json()),
                    "published_by": published_by,
                },
            )
            if cursor.fetchone() is not None:
                changed.append(spec.name)
        return changed

    return database.transaction(publish)


def list_published(database: Database) -> list[PublishedActor]:
    """Every published actor, by name.

    Raises:
      DatabaseUnavailable: when Postgres cannot be reached.
      DatabaseError: when the schema is missing.
    """

    def fetch(cursor: Cursor) -> list[PublishedActor]:
        cursor.execute(load_queries("catalogue")["list_actors"])
        return [
            PublishedActor(ActorSpec.from_json(spec), published_at, published_by)
            for spec, published_at, published_by in cursor.fetchall()
        ]

    return database.transaction(fetch)
