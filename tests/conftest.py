"""Fixtures shared by every test: servers, and a fresh database per test.

Each test that asks for ``database_url`` gets its own database, copied from a template that
``geotasks db init`` built once per schema (``CREATE DATABASE … TEMPLATE``), so tests never see
each other's rows and a schema change gets a new template automatically.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from psycopg2 import sql

from geotasks.job_warnings import set_recorder
from geotasks.middleware.running import set_running_job
from geotasks.postgres import pool as pool_module
from geotasks.postgres.listener import close_listeners
from geotasks.postgres.migrate import migrate
from geotasks.postgres.pool import Database
from geotasks.settings import get_settings
from tests import servers, templates

SQL_DIR = Path(__file__).resolve().parent.parent / "geotasks" / "postgres" / "sql"


def with_database(url: str, dbname: str) -> str:
    """Return ``url`` pointing at database ``dbname`` on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def admin_connection(url: str) -> psycopg2.extensions.connection:
    """An autocommit connection for CREATE/DROP DATABASE."""
    conn = psycopg2.connect(url, connect_timeout=5)
    conn.autocommit = True
    return conn


def _schema_fingerprint() -> str:
    digest = hashlib.sha256()
    for path in sorted(SQL_DIR.rglob("*.sql")):
        digest.update(path.relative_to(SQL_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def scratch_directory(prefix: str) -> Iterator[Path]:
    """A directory directly under /tmp, removed afterwards, for an embedded PostgreSQL.

    Not under pytest's ``/tmp/pytest-of-<user>``: the wheel makes every parent of its data dir
    world-readable (its server runs as another user), and a pytest session starting meanwhile
    resets that tree to 0700, which locks the running server out.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def embedded_scratch() -> Iterator[Path]:
    """A scratch directory an embedded PostgreSQL can live in (see :func:`scratch_directory`)."""
    with scratch_directory("geotasks-test-") as path:
        yield path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The server tests create their databases on.

    The machine's PostgreSQL when it answers; otherwise (locally, never in CI) an embedded
    PostgreSQL started for this test session.
    """
    if servers.reachable(servers.POSTGRES_URL) or servers.IN_CI:
        yield servers.require("PostgreSQL", servers.POSTGRES_URL)
        return
    from geotasks.embedded import EmbeddedPostgres

    with scratch_directory("geotasks-test-session-") as path:
        server = EmbeddedPostgres(path)
        try:
            yield server.start()
        finally:
            server.stop()


@pytest.fixture(scope="session")
def template_database(postgres_url: str) -> Iterator[str]:
    """Name of a database with the current schema, built once per schema version and dropped
    by the last test run that uses it (see :mod:`tests.templates`)."""
    name = f"geotasks_tpl_{_schema_fingerprint()}"
    # Kept open for the session: it holds this run's claim on the template.
    conn = admin_connection(postgres_url)
    try:
        with conn.cursor() as cur, templates.build_lock(cur):
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                building = f"{name}_building_{uuid.uuid4().hex[:8]}"
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(building)))
                database = Database(with_database(postgres_url, building), max_connections=1)
                try:
                    migrate(database)
                finally:
                    database.close()
                cur.execute(
                    sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        sql.Identifier(building), sql.Identifier(name)
                    )
                )
            templates.use(cur, name)
        yield name
    finally:
        with contextlib.suppress(psycopg2.Error), conn.cursor() as cur:
            templates.stop_using(cur, name)
            with templates.build_lock(cur):
                templates.drop_unused(cur, template_pattern=templates.like_literal(name))
                templates.drop_unused(cur, template_pattern=templates.BUILDING_PATTERN)
        conn.close()


def release_connections(url: str) -> None:
    """Close this process's pool and LISTEN connection on ``url`` (before its database goes:
    a listener left on a dropped database would try to reconnect for ever)."""
    close_listeners(url)
    database = pool_module._databases.pop((os.getpid(), url), None)
    if database is not None:
        database.close()


@contextlib.contextmanager
def fresh_database(postgres_url: str, template: str | None, prefix: str) -> Iterator[str]:
    """Yield the URL of a new database (a copy of ``template``, or empty); drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    conn = admin_connection(postgres_url)
    try:
        with conn.cursor() as cur:
            cur.execute(create)
        url = with_database(postgres_url, name)
        try:
            yield url
        finally:
            release_connections(url)
            with conn.cursor() as cur:
                cur.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
    finally:
        conn.close()


@pytest.fixture
def database_url(postgres_url: str, template_database: str) -> Iterator[str]:
    """URL of a fresh database with the current schema, dropped after the test."""
    with fresh_database(postgres_url, template_database, "geotasks_db") as url:
        yield url


@pytest.fixture(scope="module")
def module_database_url(postgres_url: str, template_database: str) -> Iterator[str]:
    """A fresh database with the current schema shared by the tests of one module (those that
    start one worker for the module, or only read), dropped after it."""
    with fresh_database(postgres_url, template_database, "geotasks_db_module") as url:
        yield url


@pytest.fixture
def empty_database_url(postgres_url: str) -> Iterator[str]:
    """URL of a fresh, empty database (no geotasks schema), dropped after the test."""
    with fresh_database(postgres_url, None, "geotasks_empty") as url:
        yield url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A connection pool on this test's fresh database."""
    db = Database(database_url, max_connections=4)
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def geotasks_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[str]:
    """Point ``GEOTASKS_DATABASE_URL`` at this test's database; returns the URL."""
    monkeypatch.setenv("GEOTASKS_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def no_job_left_running() -> Iterator[None]:
    """Forget the job a test announced on its own thread (by calling ``JobStatus`` hooks
    directly): a later test's geo code would report its progress and warnings to it, in a
    database dropped since."""
    yield
    set_running_job(None)
    set_recorder(None)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis server (skips locally, fails in CI, when absent)."""
    return servers.require("Redis", servers.REDIS_URL)


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """The RabbitMQ server (skips locally, fails in CI, when absent)."""
    return servers.require("RabbitMQ", servers.RABBITMQ_URL)
