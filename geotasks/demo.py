"""``geotasks demo``: the main job end to end, for a first look at the product."""

from __future__ import annotations

from .postgres.migrate import schema_version
from .postgres.pool import Database


def run_demo(database_url: str) -> int:
    """Run the demo against ``database_url`` and return the exit code."""
    database = Database(database_url, max_connections=1)
    try:
        version = schema_version(database)
    finally:
        database.close()
    print(f"geotasks demo: PostgreSQL is ready, geotasks schema version {version}")
    return 0
