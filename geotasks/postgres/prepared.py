"""Statements Postgres parses and plans once per connection instead of at every execution.

On the per-job hot path planning cost as much as running (three times as much for the job-status
upsert), so each store prepares its hot statements under a name of its own, once per pooled
connection (:class:`~geotasks.postgres.pool.PooledConnection` remembers which), and executes
them by name; a statement can also be bound to its parameters and sent in one string beside
others (one round trip for a combined statement).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from psycopg2.extensions import cursor as Cursor

_NAMED_PARAMETER = re.compile(r"%\((\w+)\)s")
#: A parameter cast to an array type, such as ``%(ids)s::text[]``.
_ARRAY_PARAMETER = re.compile(r"%\((\w+)\)s(::\w+\[\])")


@dataclass(frozen=True)
class PreparedStatement:
    """A query with ``%(name)s`` parameters, run as a server-side prepared statement.

    Postgres then parses and plans it once per connection instead of at every execution: for
    the job-status upsert, planning took three times as long as running it.

    Attributes:
      name: The statement's name in each session; unique among geotasks' statements.
      query: The query, with psycopg2's ``%(name)s`` placeholders.
    """

    name: str
    query: str

    @cached_property
    def prepare(self) -> str:
        """``PREPARE name AS …`` with positional parameters (no psycopg2 placeholders left)."""
        positions: dict[str, int] = {}

        def position(match: re.Match[str]) -> str:
            return f"${positions.setdefault(match.group(1), len(positions) + 1)}"

        body = _NAMED_PARAMETER.sub(position, self.query).replace("%%", "%")
        return f"PREPARE {self.name} AS {body}"

    @cached_property
    def execute(self) -> str:
        """``EXECUTE name(%(a)s, …)``, parameters in the order ``prepare`` numbered them.

        A parameter the query casts to an array type is cast the same here: psycopg2 sends a
        list of ``None`` as ``ARRAY[NULL]``, a ``text[]``, which Postgres will not coerce to
        another array type. Built once: it is on the path of every job."""
        names = list(dict.fromkeys(_NAMED_PARAMETER.findall(self.query)))
        casts = dict(reversed(_ARRAY_PARAMETER.findall(self.query)))
        arguments = ", ".join(f"%({name})s{casts.get(name, '')}" for name in names)
        return f"EXECUTE {self.name}({arguments})"


def execute_prepared(
    cursor: Cursor, statement: PreparedStatement, params: Mapping[str, Any], *, prefix: str = ""
) -> None:
    """Execute ``statement``, preparing it first if this connection has not yet.

    A connection that is not the pool's (a caller's own) runs the plain query instead.

    Parameters:
      cursor: Where to execute it; autocommit or inside a transaction alike.
      statement: The statement.
      params: Its parameters, by name.
      prefix: Statements sent ahead of it in the same string (``SET LOCAL …;``), with any
        ``%`` of their own doubled.
    """
    prepared: set[str] | None = getattr(cursor.connection, "prepared", None)
    if prepared is None:
        cursor.execute(prefix + statement.query, params)
        return
    if statement.name not in prepared:
        # A prepared statement outlives a rolled back transaction: it is prepared once.
        cursor.execute(statement.prepare)
        prepared.add(statement.name)
    cursor.execute(prefix + statement.execute, params)


def bind_prepared(cursor: Cursor, statement: PreparedStatement, params: Mapping[str, Any]) -> bytes:
    """Return ``statement`` bound to ``params``, to send beside others in one string.

    On a connection of the pool that is ``EXECUTE name(…)``, after preparing the statement
    there if it was not yet (one extra round trip, once per connection); on another
    connection, the query itself.
    """
    prepared: set[str] | None = getattr(cursor.connection, "prepared", None)
    if prepared is None:
        return cursor.mogrify(statement.query, params)
    if statement.name not in prepared:
        cursor.execute(statement.prepare)
        prepared.add(statement.name)
    return cursor.mogrify(statement.execute, params)
