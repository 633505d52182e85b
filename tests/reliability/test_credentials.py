"""Database credentials never reach a log: the worker's, the client's, or an error message."""

from __future__ import annotations

import logging
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from psycopg2 import sql

from geotasks.broker import build_broker
from geotasks.demo_actors import add_numbers
from geotasks.errors import GeotasksError
from geotasks.jobs import submit_with_options
from geotasks.settings import Settings
from tests.conftest import admin_connection, release_connections

from .conftest import (
    SAMPLE_DATA,
    WORKER_TIMEOUT_S,
    WorkerProcess,
    worker_environment,
)


@pytest.fixture
def password_url(database_url: str) -> Iterator[tuple[str, str]]:
    """The test database's URL as a role with a password (scram), and that password."""
    role = f"geotasks_pw_{secrets.token_hex(4)}"
    password = f"Pw-{secrets.token_urlsafe(18)}"
    conn = admin_connection(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SET password_encryption = 'scram-sha-256'")
            cur.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
            cur.execute(sql.SQL("GRANT ALL ON SCHEMA geotasks TO {}").format(sql.Identifier(role)))
            for kind in ("TABLES", "SEQUENCES"):
                cur.execute(
                    sql.SQL("GRANT ALL ON ALL {} IN SCHEMA geotasks TO {}").format(
                        sql.SQL(kind), sql.Identifier(role)
                    )
                )
        parts = urlsplit(database_url)
        netloc = f"{role}:{password}@{parts.hostname}:{parts.port or 5432}"
        yield urlunsplit(parts._replace(netloc=netloc)), password
    finally:
        release_connections(urlunsplit(parts._replace(netloc=netloc)))
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
            cur.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        conn.close()


def test_the_password_never_appears_in_any_log(
    password_url: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, password = password_url
    caplog.set_level(logging.DEBUG)
    # Given a verbose worker and a client, both connecting with a password in the URL
    env = worker_environment(
        GEOTASKS_DATABASE_URL=url,
        GEOTASKS_DATA_DIR=str(SAMPLE_DATA),
        GEOTASKS_MODULES="geotasks.demo_actors",
    )
    worker = WorkerProcess(env, tmp_path / "worker.log", arguments=("-p", "1", "-t", "1", "-v"))
    monkeypatch.setenv("GEOTASKS_DATABASE_URL", url)
    try:
        broker = build_broker(Settings(database_url=url))
        try:
            # When a job runs, and one fails
            ok = submit_with_options(add_numbers.actor_name, args=(1, 2), broker=broker)
            assert ok.get(timeout=WORKER_TIMEOUT_S) == 3
            bad = submit_with_options("shapefile_to_geojson", args=("no_such_data",), broker=broker)
            with pytest.raises(GeotasksError):
                bad.get(timeout=WORKER_TIMEOUT_S)
        finally:
            broker.close()
        # And a client points at a server that is not there, with the password
        dead = url.replace(f":{urlsplit(url).port or 5432}/", ":1/")
        client = subprocess.run(
            [
                sys.executable,
                "-c",
                "import geotasks; geotasks.submit('add_numbers', 1, 2)",
            ],
            env=worker_environment(GEOTASKS_DATABASE_URL=dead, GEOTASKS_CONNECT_TIMEOUT_S="1"),
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT_S,
        )
    finally:
        worker.stop()

    # Then no log, error or traceback holds the password
    assert client.returncode != 0
    assert "127.0.0.1" in client.stderr or "connect" in client.stderr.lower()
    assert password not in client.stderr + client.stdout
    assert "add_numbers" in worker.log()
    assert password not in worker.log()
    assert password not in caplog.text
