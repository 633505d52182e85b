"""The Django app: reads geotasks' settings when the project starts, upgrades the schema on
``migrate``."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS
from django.db.models.signals import post_migrate

from ...errors import ConfigurationError


class GeotasksConfig(AppConfig):
    """``geotasks.contrib.django``; its models are the geotasks tables, read-only."""

    name = "geotasks.contrib.django"
    label = "geotasks"
    verbose_name = "geotasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .conf import configure

        try:
            configure()
        except ConfigurationError as exc:
            raise ImproperlyConfigured(str(exc)) from exc
        post_migrate.connect(upgrade_schema, sender=self)


def upgrade_schema(*, using: str = DEFAULT_DB_ALIAS, verbosity: int = 1, **_: Any) -> None:
    """Bring the geotasks schema up to date at the end of every ``manage.py migrate``.

    The app's migration creates it the first time; this applies what a newer geotasks release
    added since, which Django's migration history cannot know about.
    """
    if using != DEFAULT_DB_ALIAS:
        return
    from .schema import migrate_schema

    report = migrate_schema()
    if verbosity and report.changed:
        print(
            f"  geotasks schema upgraded from version {report.version_before} "
            f"to {report.version_after}"
        )
