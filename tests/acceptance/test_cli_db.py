"""The ``geotasks`` command: schema management and the embedded default."""

from __future__ import annotations

from pathlib import Path

import psutil

from geotasks.embedded import EmbeddedPostgres, running_url
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


#: Commands that use a database but never start the embedded one.
CLIENT_COMMANDS = [
    ("db", "init"),
    ("db", "version"),
    ("submit", "add_numbers", "1", "2"),
    ("status", "some-id"),
    ("result", "some-id"),
    ("jobs",),
    ("dead-letters", "list"),
    ("serve", "--port", "0"),
]


def test_without_a_database_url_client_commands_fail_at_once_and_leave_nothing(
    run_geotasks: RunGeotasks, embedded_scratch: Path
) -> None:
    for command in CLIENT_COMMANDS:
        # When a command that only uses a database runs with no GEOTASKS_DATABASE_URL
        result = run_geotasks(*command, cwd=embedded_scratch)

        # Then it fails at once naming the setting, and starts no private PostgreSQL
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "GEOTASKS_DATABASE_URL is not set" in result.stderr, command
        assert "embedded PostgreSQL running" not in result.stdout, command
        assert not (embedded_scratch / ".geotasks").exists(), command


def test_without_a_database_url_they_use_the_embedded_postgres_running_there(
    run_geotasks: RunGeotasks, embedded_scratch: Path
) -> None:
    # Given an embedded PostgreSQL started from this directory (as `geotasks worker` does)
    server = EmbeddedPostgres(embedded_scratch / ".geotasks")
    server.start()
    try:
        # When client commands run there with no GEOTASKS_DATABASE_URL
        init = run_geotasks("db", "init", cwd=embedded_scratch)
        status = run_geotasks("status", "some-id", cwd=embedded_scratch)

        # Then they use it, and say so
        assert init.returncode == 0, init.stderr
        assert f"upgraded from version 0 to {latest_version()}" in init.stdout
        assert "using the embedded PostgreSQL running from" in init.stderr
        assert status.returncode == 1, status.stderr
        assert "UNKNOWN" in status.stdout
        # And left it running for the command that started it
        assert running_url(embedded_scratch / ".geotasks") is not None
    finally:
        server.stop()


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
