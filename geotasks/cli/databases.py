"""Which database a command uses: the configured one, the embedded one it may start (``demo``,
``worker``, ``scheduler`` only) or one already running; ``geotasks db``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..errors import ConfigurationError
from ..settings import POSTGRES_SCHEMES, Settings, env_name, get_settings

if TYPE_CHECKING:
    from ..postgres.pool import Database


def _raise_system_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """Yield the configured database URL, or start the embedded PostgreSQL for the block.

    The embedded server's URL is also put into ``os.environ`` so child processes inherit it.
    """
    if settings.database_url:
        yield settings.database_url
        return
    from ..embedded import EmbeddedPostgres

    # SIGTERM would otherwise end the process without running the clean-up that stops Postgres.
    previous = signal.signal(signal.SIGTERM, _raise_system_exit)
    server = EmbeddedPostgres(settings.embedded_dir)
    try:
        url = server.start()
        print(f"geotasks: embedded PostgreSQL running, data in {server.cluster_dir}", flush=True)
        os.environ[env_name("database_url")] = url
        get_settings.cache_clear()
        yield url
    finally:
        from ..postgres.listener import close_listeners

        # Otherwise the shared listener would keep reconnecting to the server being stopped.
        close_listeners()
        server.stop()
        os.environ.pop(env_name("database_url"), None)
        get_settings.cache_clear()
        signal.signal(signal.SIGTERM, previous)
        print("geotasks: embedded PostgreSQL stopped", flush=True)


@contextlib.contextmanager
def existing_database_url(settings: Settings) -> Iterator[str]:
    """Yield the configured database URL, or that of an embedded PostgreSQL already running.

    Never starts a server. The embedded server's URL is put into ``os.environ`` for the
    block, so the settings read inside it see it.

    Raises:
      ConfigurationError: when no URL is configured and no embedded server runs from
        ``GEOTASKS_EMBEDDED_DIR``.
    """
    if settings.database_url:
        yield settings.database_url
        return
    from ..embedded import running_url

    url = running_url(settings.embedded_dir)
    if url is None:
        raise ConfigurationError(
            f"{env_name('database_url')} is not set: set it to the database your workers use "
            f"(no embedded PostgreSQL is running from {settings.embedded_dir.resolve()}; only "
            "`geotasks demo`, `geotasks worker` and `geotasks scheduler` start one)"
        )
    print(
        f"geotasks: {env_name('database_url')} is not set; using the embedded PostgreSQL "
        f"running from {settings.embedded_dir.resolve()}",
        file=sys.stderr,
        flush=True,
    )
    os.environ[env_name("database_url")] = url
    get_settings.cache_clear()
    try:
        yield url
    finally:
        from ..postgres.listener import close_listeners

        close_listeners()
        os.environ.pop(env_name("database_url"), None)
        get_settings.cache_clear()


def _migrate_and_report(url: str) -> int:
    from ..postgres.migrate import migrate
    from ..postgres.pool import Database

    database = Database(url, max_connections=1)
    try:
        report = migrate(database)
    finally:
        database.close()
    if report.changed:
        print(
            f"geotasks: schema upgraded from version {report.version_before} to "
            f"{report.version_after} ({', '.join(report.applied)})"
        )
    else:
        print(f"geotasks: schema is up to date (version {report.version_after})")
    return 0


@contextlib.contextmanager
def broker_database(settings: Settings) -> Iterator[Database]:
    """Yield a pool on the Postgres broker's database (an embedded one running if none is
    configured).

    Raises:
      ConfigurationError: when the configured broker is not the Postgres broker.
    """
    from ..postgres.pool import Database

    broker_url = settings.broker_url
    if broker_url and urlsplit(broker_url).scheme not in POSTGRES_SCHEMES:
        raise ConfigurationError(
            f"GEOTASKS_BROKER_URL is a {urlsplit(broker_url).scheme}:// broker, which keeps its "
            "own dead letters (Redis: the <queue>.XQ keys; RabbitMQ: the <queue>.XQ queues); "
            "`geotasks dead-letters` reads those of the Postgres broker"
        )
    # The broker's own URL is enough: no database URL needed then.
    urls = contextlib.nullcontext(broker_url) if broker_url else existing_database_url(settings)
    with urls as url:
        database = Database(url, max_connections=1)
        try:
            yield database
        finally:
            database.close()


def cmd_db_init(args: argparse.Namespace) -> int:
    """Create or upgrade the schema; safe to run repeatedly and concurrently."""
    with existing_database_url(get_settings()) as url:
        return _migrate_and_report(url)


def cmd_db_version(args: argparse.Namespace) -> int:
    """Print the database's schema version and the one this release expects."""
    from ..postgres.migrate import latest_version, schema_version
    from ..postgres.pool import Database

    with existing_database_url(get_settings()) as url:
        database = Database(url, max_connections=1)
        try:
            current = schema_version(database)
        finally:
            database.close()
    print(f"database schema version {current}; this release expects {latest_version()}")
    return 0 if current == latest_version() else 1
