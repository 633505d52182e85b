"""Which Postgres errors are a wrong setting rather than an outage.

An unreachable server (refused, timed out, restarting) may come back, so the pool and Retries
try again. A server that answers "no such database", "no such role" or "authentication failed"
will answer the same until someone changes the settings: retrying only delays the message, so
these fail at once with what Postgres said.
"""

from __future__ import annotations

import re

import psycopg2

#: SQLSTATEs of a permanent refusal: invalid authorization specification, invalid password,
#: invalid catalog (database) name, invalid schema name.
PERMANENT_SQLSTATES = frozenset({"28000", "28P01", "3D000", "3F000"})

#: What libpq says when it refuses a connection for good. A refused connection carries no
#: SQLSTATE in psycopg2 (there is no result yet), only this text.
_PERMANENT_CONNECT_FAILURE = re.compile(
    r"authentication failed"
    r"|no pg_hba\.conf entry"
    r"|(database|role) \".*\" does not exist"
    r"|no password supplied"
    r"|password authentication"
)

#: A geotasks table that is missing: the schema was never created (``geotasks db init``).
_MISSING_GEOTASKS_RELATION = re.compile(r"relation \"geotasks\.\w+\" does not exist")


def is_permanent(exc: BaseException) -> bool:
    """Whether ``exc`` means a wrong setting that retrying cannot fix.

    Parameters:
      exc: An error raised by psycopg2 (others are never permanent here).
    """
    if not isinstance(exc, psycopg2.Error):
        return False
    if exc.pgcode in PERMANENT_SQLSTATES:
        return True
    return isinstance(exc, psycopg2.OperationalError) and bool(
        _PERMANENT_CONNECT_FAILURE.search(str(exc))
    )


def missing_schema_hint(exc: BaseException) -> str:
    """A hint for an error about a geotasks table that does not exist, else ``""``."""
    if isinstance(exc, psycopg2.Error) and _MISSING_GEOTASKS_RELATION.search(str(exc)):
        return "; the geotasks schema is missing: run `geotasks db init` on this database"
    return ""
