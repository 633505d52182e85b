"""The pool on geotasks' database that the admin and the Tasks backend share in a process."""

from __future__ import annotations

from ...postgres.pool import Database, get_database
from ...settings import get_settings


def geotasks_database() -> Database:
    """The pool on geotasks' database (the settings' ``GEOTASKS_DATABASE_URL``)."""
    settings = get_settings()
    return get_database(
        settings.require_database_url(), connect_timeout_s=settings.connect_timeout_s
    )
