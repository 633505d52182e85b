"""A fresh, migrated database for one benchmark run, dropped afterwards.

Each run gets a database of its own, so benchmarks run side by side (or next to the test suite)
never drop each other's.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
from psycopg2 import sql

from geotasks.postgres.listener import close_listeners
from geotasks.postgres.migrate import migrate
from geotasks.postgres.pool import Database

#: The server benchmark databases are created on.
POSTGRES_URL = os.environ.get(
    "GEOTASKS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def with_database(url: str, name: str) -> str:
    """Return ``url`` pointing at database ``name`` on the same server."""
    scheme_host, _, _ = url.rpartition("/")
    return f"{scheme_host}/{name}"


@contextmanager
def bench_database(label: str) -> Iterator[str]:
    """Yield the URL of a fresh database with the geotasks schema, named after ``label``."""
    name = f"geotasks_bench_{label}_{uuid.uuid4().hex[:8]}"
    url = with_database(POSTGRES_URL, name)
    admin = psycopg2.connect(POSTGRES_URL, connect_timeout=5)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        database = Database(url, max_connections=1)
        try:
            migrate(database)
        finally:
            database.close()
        yield url
    finally:
        # This process's LISTEN connection would otherwise reconnect to a dropped database.
        close_listeners(url)
        with admin.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        admin.close()
