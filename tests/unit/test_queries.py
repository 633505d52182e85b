"""Named SQL blocks and the migration list."""

from __future__ import annotations

from geotasks.postgres.migrate import latest_version, list_migrations
from geotasks.postgres.queries import load_queries


def test_named_blocks_are_split_and_stripped() -> None:
    queries = load_queries("migrate")
    assert set(queries) >= {"lock", "installed", "applied_versions", "record_version"}
    assert queries["record_version"].startswith("INSERT INTO geotasks.schema_version")
    assert "-- name:" not in queries["installed"]


def test_migrations_are_numbered_without_gaps() -> None:
    migrations = list_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert latest_version() == len(migrations)
    assert all(m.sql.strip() for m in migrations)
