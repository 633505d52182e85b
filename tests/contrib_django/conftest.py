"""A real Django project (``tests/django_project``) on the real PostgreSQL, for this package.

One database for the package: ``manage.py migrate`` builds it (Django's tables and geotasks'
schema), one ``manage.py geotasks worker`` serves it, and the tests that use Django's API in
this process set Django up on it once. The geotasks settings Django puts into the environment
are taken out again when the package is done.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg2 import sql

from geotasks.postgres.listener import close_listeners
from geotasks.settings import get_settings
from tests.conftest import admin_connection, with_database
from tests.processes import ROOT, Process, clean_environment, started

pytest.importorskip("django")

PROJECT = ROOT / "tests" / "django_project"
SETTINGS_MODULE = "geoproject.settings"


def project_env(database_url: str, **overrides: str) -> dict[str, str]:
    """The environment of a ``manage.py`` command on ``database_url``, with no GEOTASKS_*."""
    env = clean_environment(
        TEST_DJANGO_DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE=SETTINGS_MODULE
    )
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT), env["PYTHONPATH"]])
    env.update(overrides)
    return env


def manage(
    database_url: str, *args: str, timeout_s: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python manage.py ARGS…`` in the test project."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=project_env(database_url, **env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


@pytest.fixture(scope="package")
def django_database_url(postgres_url: str) -> Iterator[str]:
    """An empty database for the package, dropped afterwards."""
    name = f"geotasks_django_{uuid.uuid4().hex[:12]}"
    conn = admin_connection(postgres_url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield with_database(postgres_url, name)
    finally:
        close_listeners(with_database(postgres_url, name))
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        conn.close()


@pytest.fixture(scope="package")
def migrated_project(django_database_url: str) -> str:
    """The package's database after ``manage.py migrate``; returns its URL."""
    done = manage(django_database_url, "migrate", "--no-input")
    assert done.returncode == 0, done.stderr
    return django_database_url


@pytest.fixture(scope="package")
def django_worker(
    migrated_project: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    """``manage.py geotasks worker``, booted (it has published the project's tasks)."""
    argv = [sys.executable, str(PROJECT / "manage.py"), "geotasks", "worker"]
    log_path = tmp_path_factory.mktemp("django-worker") / "worker.log"
    with started(
        [*argv, "-p", "1", "-t", "4", "--worker-shutdown-timeout", "2000"],
        project_env(migrated_project),
        log_path,
    ) as worker:
        worker.wait_for_actors(migrated_project, "parcels.tasks.add")
        yield worker


@pytest.fixture(scope="package")
def django_here(migrated_project: str) -> Iterator[str]:
    """Django set up in this process on the package's database; returns its URL.

    Afterwards the environment is as it was and the actors the project declared are forgotten.
    """
    from geotasks.catalogue import forget_cache
    from geotasks.registry import DECLARED

    declared_before = set(DECLARED)
    saved = {k: v for k, v in os.environ.items() if k.startswith("GEOTASKS_")}
    for name in saved:
        del os.environ[name]
    os.environ["TEST_DJANGO_DATABASE_URL"] = migrated_project
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    sys.path.insert(0, str(PROJECT))
    import django
    from django.conf import settings

    if settings.configured and settings.DATABASES["default"]["NAME"] != Path(migrated_project).name:
        pytest.skip("Django is already set up in this process on another database")
    django.setup()
    try:
        yield migrated_project
    finally:
        from django.db import connections

        connections.close_all()
        # The project's actors leave with it: later tests list the declared actors.
        from geotasks.contrib.django import task_actors

        for name in set(DECLARED) - declared_before:
            del DECLARED[name]
        task_actors._actors.clear()
        forget_cache()
        for name in [k for k in os.environ if k.startswith("GEOTASKS_")]:
            del os.environ[name]
        os.environ.update(saved)
        get_settings.cache_clear()
