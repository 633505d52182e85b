"""The geotasks schema in the database the settings name (Django's default unless told)."""

from __future__ import annotations

from ...postgres.migrate import MigrationReport, migrate
from ...postgres.pool import Database
from ...settings import get_settings


def migrate_schema() -> MigrationReport:
    """Create or upgrade the geotasks schema; safe to run repeatedly and concurrently."""
    database = Database(get_settings().require_database_url(), max_connections=1)
    try:
        return migrate(database)
    finally:
        database.close()
