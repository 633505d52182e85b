"""Template databases of the test suite, shared safely by concurrent test runs on one server.

Each run copies its tests' databases from ``geotasks_tpl_<schema hash>``. Runs of several
developers share the server, and often the template: a run must never drop a template another
run is using, and the last one out drops it (issue 25).

- :data:`BUILD_LOCK` (an exclusive advisory lock) is held while a run checks for, builds or
  drops templates.
- A run holds :func:`in_use` (a shared advisory lock on the template's name) on a connection
  kept for its whole session; taken before the build lock is released, so no run can drop the
  template in between.
- At its end a run releases its shared lock, takes the build lock and drops its template if
  it can take that template's lock exclusively: nobody holds it shared. Templates half built
  by killed runs are dropped too (builds happen only under the build lock).
- ``make clean-db`` (``python -m tests.templates``) drops every template no run holds: those
  of other schema versions, left by runs that were killed.

Runs of an older conftest (before issue 25) do not take the shared lock; as long as one might
be running, templates are also kept while any connection is open to a database such a run
copied from a template (named ``geotasks_test_…``, ``geotasks_rel_…``, ``geotasks_http_…``;
this conftest names its copies ``geotasks_db_…``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor

#: Names of the templates, as a LIKE pattern.
TEMPLATE_PATTERN = r"geotasks\_tpl\_%"
#: Templates being built, or left half built by a killed run, as a LIKE pattern.
BUILDING_PATTERN = r"geotasks\_tpl\_%\_building\_%"
#: Databases that runs of an older conftest copy from a template, as LIKE patterns (this one
#: names its copies ``geotasks_db_…``, announced by its lock instead).
OLD_COPY_PATTERNS = [r"geotasks\_test\_%", r"geotasks\_rel\_%", r"geotasks\_http\_%"]
#: Held while a run checks for, builds or drops templates.
BUILD_LOCK = "geotasks.tests.template"
#: The class of the per-template locks (two-key advisory locks: class, template name).
IN_USE_LOCK = "geotasks.tests.template.in_use"


@contextlib.contextmanager
def build_lock(cur: Cursor) -> Iterator[None]:
    """Hold the build lock for the block (session level, on ``cur``'s connection)."""
    cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (BUILD_LOCK,))
    try:
        yield
    finally:
        cur.execute("SELECT pg_advisory_unlock(hashtext(%s))", (BUILD_LOCK,))


def use(cur: Cursor, template: str) -> None:
    """Announce that this run uses ``template``, until :func:`stop_using` or the connection
    closes; take it under the build lock."""
    cur.execute(
        "SELECT pg_advisory_lock_shared(hashtext(%s), hashtext(%s))", (IN_USE_LOCK, template)
    )


def stop_using(cur: Cursor, template: str) -> None:
    """Withdraw :func:`use`."""
    cur.execute(
        "SELECT pg_advisory_unlock_shared(hashtext(%s), hashtext(%s))", (IN_USE_LOCK, template)
    )


def drop_unused(
    cur: Cursor,
    *,
    template_pattern: str = TEMPLATE_PATTERN,
    old_copy_patterns: list[str] = OLD_COPY_PATTERNS,
) -> list[str]:
    """Drop the templates no run uses; call under the build lock.

    Returns:
      list[str]: the templates dropped.
    """
    cur.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE ANY (%s)", (old_copy_patterns,)
    )
    row = cur.fetchone()
    if row is not None and row[0] > 0:
        # A run of an older conftest uses a copy right now: it did not announce its template.
        return []
    cur.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY datname",
        (template_pattern,),
    )
    dropped = []
    for (name,) in cur.fetchall():
        cur.execute("SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))", (IN_USE_LOCK, name))
        row = cur.fetchone()
        if row is None or not row[0]:
            continue
        try:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            dropped.append(name)
        finally:
            cur.execute(
                "SELECT pg_advisory_unlock(hashtext(%s), hashtext(%s))", (IN_USE_LOCK, name)
            )
    return dropped


def like_literal(name: str) -> str:
    """``name`` as a LIKE pattern matching only itself."""
    return name.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")


def drop_all_unused(url: str) -> list[str]:
    """Drop every template on the server at ``url`` that no test run holds."""
    conn = psycopg2.connect(url, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur, build_lock(cur):
            return drop_unused(cur)
    finally:
        conn.close()


if __name__ == "__main__":
    from tests.servers import POSTGRES_URL

    dropped = drop_all_unused(POSTGRES_URL)
    print(f"dropped {len(dropped)} template database(s): {', '.join(dropped) or '-'}")
