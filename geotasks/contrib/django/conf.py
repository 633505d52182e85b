"""geotasks' settings in a Django project: ``DATABASES["default"]``, ``GEOTASKS = {...}``, the
environment.

A Django project already says where its PostgreSQL is; geotasks uses that database (and, unless
``GEOTASKS_BROKER_URL`` says otherwise, the same database as its broker) when no
``GEOTASKS_DATABASE_URL`` is set. Any other setting can be given in Django's settings as
``GEOTASKS = {"RESULT_TTL_S": 3600, "MODULES": ["myapp.geo"]}``. The environment wins over both,
so a deployment's ``EnvironmentFile`` still has the last word. The merged values are validated by
:func:`geotasks.settings.load_settings`, with its errors, and then written into the environment
of this process (for geotasks' own readers and for the worker processes it starts).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from ...errors import ConfigurationError
from ...settings import Settings, env_name, get_settings, load_settings

#: Django database engines that speak to PostgreSQL (psycopg2 or psycopg 3 alike).
POSTGRES_ENGINES = frozenset(
    {
        "django.db.backends.postgresql",
        "django.db.backends.postgresql_psycopg2",
        "django.contrib.gis.db.backends.postgis",
    }
)

#: Django's own ``OPTIONS`` of the PostgreSQL backend, which are not libpq connection parameters.
DJANGO_ONLY_OPTIONS = frozenset(
    {"isolation_level", "assume_role", "server_side_binding", "pool", "cursor_factory", "context"}
)

_SETTING_NAMES = frozenset(env_name(setting.name) for setting in fields(Settings))


def database_url_from_django(database: Mapping[str, Any], alias: str = "default") -> str:
    """Return a libpq URL for one entry of Django's ``DATABASES``.

    ``NAME``, ``USER``, ``PASSWORD``, ``HOST`` (a socket directory too) and ``PORT`` go where
    libpq expects them; ``OPTIONS`` that are libpq parameters (``sslmode``, ``service``,
    ``passfile``…) become query parameters, Django's own (``pool``, ``isolation_level``…) are left
    out.

    Raises:
      ConfigurationError: when the database is not PostgreSQL.
    """
    engine = database.get("ENGINE", "")
    if engine not in POSTGRES_ENGINES:
        raise ConfigurationError(
            f'geotasks needs PostgreSQL, and DATABASES["{alias}"] uses {engine or "no ENGINE"}. '
            "Set GEOTASKS_DATABASE_URL (or GEOTASKS['DATABASE_URL']) to a PostgreSQL URL."
        )
    user = quote(str(database.get("USER") or ""), safe="")
    password = quote(str(database.get("PASSWORD") or ""), safe="")
    host = str(database.get("HOST") or "")
    port = str(database.get("PORT") or "")
    query = {
        key: str(value)
        for key, value in (database.get("OPTIONS") or {}).items()
        if key not in DJANGO_ONLY_OPTIONS and value is not None
    }
    if host.startswith("/"):
        query["host"] = host
        host = ""
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    netloc = credentials + host + (f":{port}" if port else "")
    url = f"postgresql://{netloc}/{quote(str(database.get('NAME') or ''), safe='')}"
    return f"{url}?{urlencode(query)}" if query else url


def setting_text(name: str, value: Any) -> str:
    """Write one ``GEOTASKS`` value the way the environment would spell it.

    Raises:
      ConfigurationError: when the value has no such spelling (a dict, an object).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | Path):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset) and all(
        isinstance(item, str) for item in value
    ):
        return ",".join(value)
    raise ConfigurationError(f"{name}: {type(value).__name__} is not a valid value")


def merged_environ(
    geotasks: Mapping[str, Any],
    databases: Mapping[str, Mapping[str, Any]],
    environ: Mapping[str, str],
) -> dict[str, str]:
    """Return the ``GEOTASKS_*`` variables a Django project configures, environment first.

    Parameters:
      geotasks: Django's ``GEOTASKS`` setting; keys with or without the ``GEOTASKS_`` prefix,
        in any case (``"RESULT_TTL_S"``, ``"result_ttl_s"``).
      databases: Django's ``DATABASES``: ``"default"`` is the database when none is named.
      environ: The process environment, which wins.

    Raises:
      ConfigurationError: for a key that is no geotasks setting, a value that cannot be written,
        or (with no database URL given) a default database that is not PostgreSQL.
    """
    merged: dict[str, str] = {}
    for key, value in geotasks.items():
        name = key.upper() if key.upper().startswith("GEOTASKS_") else env_name(key.lower())
        if name not in _SETTING_NAMES:
            raise ConfigurationError(
                f"GEOTASKS[{key!r}] is not a geotasks setting (known: "
                f"{', '.join(sorted(n.removeprefix('GEOTASKS_') for n in _SETTING_NAMES))})"
            )
        if value is not None:
            merged[name] = setting_text(f"GEOTASKS[{key!r}]", value)
    merged.update({k: v for k, v in environ.items() if k in _SETTING_NAMES and v.strip()})
    database_url = env_name("database_url")
    if not merged.get(database_url, "").strip():
        if "default" not in databases:
            raise ConfigurationError(
                'geotasks: DATABASES has no "default" and GEOTASKS_DATABASE_URL is not set'
            )
        merged[database_url] = database_url_from_django(databases["default"])
    return merged


def configure(
    django_settings: Any | None = None, environ: MutableMapping[str, str] | None = None
) -> Settings:
    """Validate the project's geotasks settings and put them into the environment.

    Called when the app is ready (``INSTALLED_APPS``), so every geotasks reader in the process
    (``geotasks.settings.get_settings``) and every worker it starts sees them.

    Returns:
      Settings: the validated settings.

    Raises:
      ConfigurationError: naming the first bad setting.
    """
    if django_settings is None:
        from django.conf import settings as project_settings

        django_settings = project_settings
    environ = os.environ if environ is None else environ
    merged = merged_environ(
        getattr(django_settings, "GEOTASKS", None) or {},
        getattr(django_settings, "DATABASES", {}),
        environ,
    )
    settings = load_settings(merged)
    for name, value in merged.items():
        if not environ.get(name, "").strip():
            environ[name] = value
    get_settings.cache_clear()
    return settings
