"""The module the worker commands load: ``dramatiq geotasks.worker``, ``periodiq geotasks.worker``.

It builds the broker from the ``GEOTASKS_*`` settings (failing with a clear message when no
database is configured), makes a worker refuse to boot without its data directory, adds the
per-host sweep of stale temporary files at worker start, and imports every module that declares
actors.
"""

from __future__ import annotations

from .broker import setup_broker
from .middleware.data_dir import RequireDataDir
from .middleware.tmpfiles import SweepTemporaryFiles
from .settings import get_settings

broker = setup_broker()
_settings = get_settings()
broker.add_middleware(RequireDataDir(_settings))
broker.add_middleware(SweepTemporaryFiles(_settings.tmp_dir, _settings.tmp_max_age_s))

from . import actors, demo_actors, maintenance  # noqa: E402, F401  (declare actors on the broker)
from .http import echo  # noqa: E402, F401  (OGC API's echo test process)
