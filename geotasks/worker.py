"""The module the worker commands load: ``dramatiq geotasks.worker``, ``periodiq geotasks.worker``.

It builds the broker from the ``GEOTASKS_*`` settings (failing with a clear message when no
database is configured) and sets it as Dramatiq's global broker, so that a plain
``@dramatiq.actor`` declared after it runs on geotasks' broker too; makes a worker refuse to boot
without its data directory; adds the per-host sweep of stale temporary files and the publication
of the actors to the catalogue at worker start, and a scheduler process beside the workers when
``GEOTASKS_WORKER_SCHEDULER`` is true; and imports the built-in actors, then the
application's modules named by ``GEOTASKS_MODULES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from .broker import database_for, setup_broker
from .errors import ConfigurationError
from .middleware.catalogue import PublishActors
from .middleware.data_dir import RequireDataDir
from .middleware.tmpfiles import SweepTemporaryFiles
from .scheduler import SchedulerProcess
from .settings import get_settings


def import_modules(names: Iterable[str]) -> None:
    """Import the application's actor modules, in order.

    Raises:
      ConfigurationError: naming the first module that fails to import and why, so that a
        worker never starts without some of its actors.
    """
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise ConfigurationError(
                f"GEOTASKS_MODULES: cannot import {name!r}: {type(exc).__name__}: {exc}"
            ) from exc


broker = setup_broker()
_settings = get_settings()
broker.add_middleware(RequireDataDir(_settings))
broker.add_middleware(SweepTemporaryFiles(_settings.tmp_dir, _settings.tmp_max_age_s))
broker.add_middleware(PublishActors(database_for(_settings)))
if _settings.worker_scheduler:
    broker.add_middleware(SchedulerProcess())

from . import actors, maintenance  # noqa: E402, F401  (declare the built-in actors)

import_modules(_settings.modules)
