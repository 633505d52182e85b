"""Named SQL queries, read from the ``.sql`` files beside this module.

A file holds blocks that each start with a ``-- name: query_name`` line, procrastinate-style;
placeholders are psycopg2's ``%(param)s``. Code reads ``load_queries("broker")["claim"]``.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

_NAME_LINE = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def read_sql(relative_path: str) -> str:
    """Return the text of ``sql/<relative_path>`` shipped with the package."""
    return resources.files(__package__).joinpath("sql", relative_path).read_text("utf-8")


@functools.cache
def load_queries(module: str) -> dict[str, str]:
    """Return the named queries of ``sql/<module>.sql``.

    Raises:
      ValueError: when a name is defined twice or the file has text before its first name.
    """
    text = read_sql(f"{module}.sql")
    parts = _NAME_LINE.split(text)
    if parts[0].strip() and not all(
        line.startswith("--") for line in parts[0].strip().splitlines()
    ):
        raise ValueError(f"sql/{module}.sql has SQL before its first '-- name:' line")
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"sql/{module}.sql defines {name!r} twice")
        queries[name] = body.strip()
    return queries
