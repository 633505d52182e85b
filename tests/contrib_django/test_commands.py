"""``manage.py migrate`` and ``manage.py geotasks …`` in a real project, as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg2

from geotasks.postgres.migrate import latest_version
from tests.processes import ROOT, Process

from .conftest import manage, project_env


def schema_version(database_url: str) -> int:
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT max(version) FROM geotasks.schema_version")
        (version,) = cur.fetchone()
    conn.close()
    return int(version)


def test_migrate_builds_the_geotasks_schema_and_a_second_migrate_is_a_no_op(
    migrated_project: str,
) -> None:
    # Given: `manage.py migrate` ran once on an empty database (the fixture)
    # Then: geotasks' schema is there at this release's version
    assert schema_version(migrated_project) == latest_version()
    # When: migrate runs again
    again = manage(migrated_project, "migrate", "--no-input")
    # Then: nothing to do, nothing broken
    assert again.returncode == 0, again.stderr
    assert "No migrations to apply" in again.stdout
    version = manage(migrated_project, "geotasks", "db", "version")
    assert version.returncode == 0, version.stderr
    assert f"database schema version {latest_version()}" in version.stdout


def test_the_worker_runs_an_app_task_submitted_by_name(
    migrated_project: str, django_worker: Process, tmp_path: Path
) -> None:
    # Given: a worker started with `manage.py geotasks worker -p 1 -t 4`; `parcels.tasks` is
    # found because `parcels` is an installed app, and its actor uses Django's ORM connection
    output = tmp_path / "areas.json"
    # When: a job is sent by name from another manage.py process
    done = manage(
        migrated_project,
        "geotasks",
        "submit",
        "parcel_areas",
        "[1, 2.5]",
        "--wait",
        "--output",
        str(output),
        timeout_s=60,
    )
    # Then: it ran in the worker, with Django set up, and its result was saved
    assert done.returncode == 0, done.stderr + django_worker.log()
    assert json.loads(output.read_text()) == {"total_m2": 3.5}
    listing = manage(migrated_project, "geotasks", "jobs", "--actor", "parcel_areas")
    assert "SUCCESS" in listing.stdout


def test_a_project_on_another_database_engine_is_refused_clearly(migrated_project: str) -> None:
    done = manage(migrated_project, "check", TEST_DJANGO_ENGINE="django.db.backends.sqlite3")
    assert done.returncode != 0
    assert "geotasks needs PostgreSQL" in done.stderr
    assert "django.db.backends.sqlite3" in done.stderr


def test_the_example_project_migrates_and_serves_its_actor(empty_database_url: str) -> None:
    # Given: examples/django_project on an empty database
    example = ROOT / "examples" / "django_project"
    name = empty_database_url.rsplit("/", 1)[1]
    env = {**project_env(empty_database_url), "PGDATABASE": name, "PGUSER": "postgres"}
    env["DJANGO_SETTINGS_MODULE"] = "geosite.settings"
    env["PYTHONPATH"] = os.pathsep.join([str(example), str(ROOT)])

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=example,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    # When: it is migrated
    migrated = run("migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stderr
    # Then: its actor's function runs here and now, on the sample data
    shapes = run(
        "shell",
        "-c",
        "from maps.tasks import get_shps; print(len(get_shps('naturalearth_lowres', 1e6)))",
    )
    assert shapes.returncode == 0, shapes.stderr
    assert 0 < int(shapes.stdout.strip().splitlines()[-1]) < 177


def test_migrate_applies_a_newer_releases_schema_changes(empty_database_url: str) -> None:
    from geotasks.postgres.migrate import apply_migrations, list_migrations

    # Given: a project migrated by an older geotasks release (its schema one version behind)
    assert manage(empty_database_url, "migrate", "--no-input").returncode == 0
    with psycopg2.connect(empty_database_url) as conn, conn.cursor() as cur:
        cur.execute("DROP SCHEMA geotasks CASCADE")
        apply_migrations(cur, list_migrations()[:-1])
    conn.close()
    assert schema_version(empty_database_url) == latest_version() - 1
    # When: `manage.py migrate` runs with this release (Django has nothing left to apply)
    done = manage(empty_database_url, "migrate", "--no-input")
    # Then: geotasks' newer migration is applied all the same
    assert done.returncode == 0, done.stderr
    assert (
        f"geotasks schema upgraded from version {latest_version() - 1} to {latest_version()}"
        in done.stdout
    )
    assert schema_version(empty_database_url) == latest_version()
