"""Creating and upgrading the geotasks schema (``geotasks db init``).

A fresh database gets ``schema.sql`` whole and every migration recorded as applied; an existing
one gets the migrations it has not seen, in order. Everything happens in one transaction under a
transaction-level advisory lock, so running it twice, or from several hosts at once, is safe:
the second run waits for the first and then finds nothing to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from psycopg2.extensions import cursor as Cursor

from ..errors import DatabaseError
from .pool import Database
from .queries import load_queries, read_sql

_MIGRATION_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One append-only schema change, ``migrations/NNNN_name.sql``."""

    version: int
    name: str
    sql: str


@dataclass(frozen=True)
class MigrationReport:
    """What :func:`migrate` did."""

    version_before: int
    version_after: int
    applied: tuple[str, ...]

    @property
    def changed(self) -> bool:
        """Whether anything was applied."""
        return bool(self.applied)


def list_migrations() -> list[Migration]:
    """Return every migration shipped with the package, in version order.

    Raises:
      ValueError: when versions are not exactly 1, 2, 3, … (a gap or a duplicate).
    """
    folder = resources.files(__package__).joinpath("sql", "migrations")
    migrations = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            migrations.append(
                Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8"))
            )
    migrations.sort(key=lambda m: m.version)
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migration versions must run 1, 2, 3, … without gaps: {versions}")
    return migrations


def latest_version() -> int:
    """Return the schema version this package expects."""
    return len(list_migrations())


def migrate(database: Database) -> MigrationReport:
    """Bring the database's schema up to date; safe to run concurrently and repeatedly.

    Returns:
      MigrationReport: the versions before and after, and the migrations applied.

    Raises:
      DatabaseError: when a migration fails; nothing of this run is then kept.
    """
    return database.transaction(_migrate, attempts=1)


def apply_migrations(cursor: Cursor, migrations: list[Migration]) -> None:
    """Apply ``migrations`` in order and record each one (used on existing databases)."""
    queries = load_queries("migrate")
    for migration in migrations:
        cursor.execute(migration.sql)
        cursor.execute(
            queries["record_version"], {"version": migration.version, "name": migration.name}
        )


def schema_version(database: Database) -> int:
    """Return the database's schema version, 0 when geotasks was never installed there."""

    def read(cursor: Cursor) -> int:
        queries = load_queries("migrate")
        cursor.execute(queries["installed"])
        if not _fetch_value(cursor):
            return 0
        cursor.execute(queries["current_version"])
        return int(_fetch_value(cursor))

    return database.transaction(read)


def _migrate(cursor: Cursor) -> MigrationReport:
    queries = load_queries("migrate")
    migrations = list_migrations()
    cursor.execute(queries["lock"])
    cursor.execute(queries["installed"])
    if not _fetch_value(cursor):
        cursor.execute(read_sql("schema.sql"))
        for migration in migrations:
            cursor.execute(
                queries["record_version"], {"version": migration.version, "name": migration.name}
            )
        return MigrationReport(0, len(migrations), tuple(m.name for m in migrations))
    cursor.execute(queries["applied_versions"])
    applied = {row[0] for row in cursor.fetchall()}
    pending = [m for m in migrations if m.version not in applied]
    before = max(applied, default=0)
    if before > len(migrations):
        raise DatabaseError(
            f"the database's geotasks schema is version {before}, newer than this "
            f"geotasks release knows ({len(migrations)}): upgrade geotasks on this host"
        )
    apply_migrations(cursor, pending)
    after = pending[-1].version if pending else before
    return MigrationReport(before, after, tuple(m.name for m in pending))


def _fetch_value(cursor: Cursor) -> Any:
    row = cursor.fetchone()
    if row is None:
        raise AssertionError("query returned no row")
    return row[0]
