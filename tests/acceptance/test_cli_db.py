"""The ``geotasks`` command: schema management and the embedded default."""

from __future__ import annotations

from pathlib import Path

import psutil

from geotasks.postgres.migrate import latest_version
from tests.acceptance.conftest import RunGeotasks, clean_environment


def postgres_processes_using(path: Path) -> list[psutil.Process]:
    return [
        proc
        for proc in psutil.process_iter(["name", "cmdline"])
        if proc.info["name"] == "postgres" and str(path) in " ".join(proc.info["cmdline"] or [])
    ]


def test_db_init_creates_then_finds_the_schema_up_to_date(
    run_geotasks: RunGeotasks, empty_database_url: str
) -> None:
    env = clean_environment(GEOTASKS_DATABASE_URL=empty_database_url)

    first = run_geotasks("db", "init", env=env)
    second = run_geotasks("db", "init", env=env)
    version = run_geotasks("db", "version", env=env)

    assert first.returncode == 0, first.stderr
    assert f"upgraded from version 0 to {latest_version()}" in first.stdout
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout
    assert version.returncode == 0
    assert f"database schema version {latest_version()}" in version.stdout


def test_without_a_database_url_the_command_runs_and_stops_an_embedded_postgres(
    run_geotasks: RunGeotasks, embedded_scratch: Path
) -> None:
    # When `geotasks db init` runs with no GEOTASKS_DATABASE_URL
    result = run_geotasks("db", "init", cwd=embedded_scratch)

    # Then it started a private PostgreSQL under .geotasks/, said where, and stopped it again
    data_dir = embedded_scratch / ".geotasks" / "postgres"
    assert result.returncode == 0, result.stderr
    assert f"data in {data_dir}" in result.stdout
    assert "embedded PostgreSQL stopped" in result.stdout
    assert (data_dir / "PG_VERSION").read_text().strip() == "18"
    assert postgres_processes_using(data_dir) == []

    # And the data persists: a second run finds the schema in place
    again = run_geotasks("db", "version", cwd=embedded_scratch)
    assert f"database schema version {latest_version()}" in again.stdout, again.stderr


def test_a_malformed_setting_is_reported_without_a_traceback(run_geotasks: RunGeotasks) -> None:
    result = run_geotasks("db", "init", env=clean_environment(GEOTASKS_RESULT_TTL_S="1 day"))
    assert result.returncode == 2
    assert "GEOTASKS_RESULT_TTL_S='1 day' is not a whole number" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_reported_without_the_password(
    run_geotasks: RunGeotasks,
) -> None:
    env = clean_environment(GEOTASKS_DATABASE_URL="postgresql://app:s3cret@127.0.0.1:1/geo")
    result = run_geotasks("db", "init", env=env, timeout_s=60)
    assert result.returncode == 2
    assert "cannot connect to PostgreSQL at postgresql://app:***@127.0.0.1:1/geo" in result.stderr
    assert "s3cret" not in result.stdout + result.stderr
