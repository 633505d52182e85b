"""The long-running commands: ``geotasks worker``, ``scheduler``, ``demo`` and ``serve``, each a
child process that gets the signals the command receives.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

from ..errors import ConfigurationError
from ..settings import env_name, get_settings

if TYPE_CHECKING:
    pass

from .databases import _migrate_and_report, database_url, existing_database_url

#: The module the worker and scheduler commands load (``geotasks.contrib.django.worker`` in a
#: Django project).
WORKER_MODULE = "geotasks.worker"


#: Signals passed on to a child process instead of stopping the ``geotasks`` command.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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


def cmd_worker(args: argparse.Namespace) -> int:
    """Run ``dramatiq geotasks.worker`` (plus any arguments), on the embedded DB if needed;
    ``--scheduler`` runs a scheduler beside it (Celery's ``-B``)."""
    rest = [arg for arg in args.rest if arg != "--scheduler"]
    if len(rest) < len(args.rest):
        os.environ[env_name("worker_scheduler")] = "true"
    with database_url(get_settings()) as url:
        _migrate_and_report(url)
        return run_child([sys.executable, "-m", "dramatiq", args.worker_module, *rest])


def cmd_scheduler(args: argparse.Namespace) -> int:
    """Run a scheduler for every periodic actor of the loaded modules, on the embedded DB if
    needed."""
    with database_url(get_settings()) as url:
        _migrate_and_report(url)
        return run_child(scheduler_command(*args.rest, worker_module=args.worker_module))


def scheduler_command(*extra_args: str, worker_module: str = WORKER_MODULE) -> list[str]:
    """Return the command line of :mod:`geotasks.scheduler` on ``worker_module``
    (``geotasks.worker``), with this interpreter."""
    return [sys.executable, "-m", "geotasks.scheduler", worker_module, *extra_args]


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo end to end on the embedded default (or the configured database)."""
    from ..demo import run_demo

    with database_url(get_settings()) as url:
        _migrate_and_report(url)
        return run_demo(url, scheduler_command())


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP API (OGC API - Processes), on the embedded DB if needed."""
    from ..broker import setup_broker

    try:
        from ..http.serve import check_exposure, serve
    except ImportError as exc:
        raise ConfigurationError(
            f"the HTTP API needs its extra dependencies ({exc.name} is missing): "
            "pip install 'geotasks[http]'"
        ) from exc
    # Checked before anything starts: an unsafe address fails fast, embedded database or not.
    check_exposure(args.host, get_settings())
    with existing_database_url(get_settings()) as url:
        _migrate_and_report(url)
        setup_broker()
        serve(args.host, args.port, get_settings(), log_level="debug" if args.verbose else "info")
    return 0
