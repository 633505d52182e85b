"""Refuse to boot a worker whose data directory is missing."""

from __future__ import annotations

from dramatiq.broker import Broker
from dramatiq.middleware import Middleware
from dramatiq.worker import Worker

from ..errors import ConfigurationError, DataDirUnusable
from ..settings import Settings


class RequireDataDir(Middleware):
    """Stop a worker at boot when ``GEOTASKS_DATA_DIR`` is unset or not a directory.

    Without it every geo job would fail on its first attempt, one by one, each saying where the
    directory was expected; failing at boot says it once, in the worker's journal, naming the
    setting. The check runs when a worker boots, not when ``geotasks.worker`` is imported, so
    the scheduler (which runs no job) starts without the datasets.

    Parameters:
      settings: The worker's configuration.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def before_worker_boot(self, broker: Broker, worker: Worker) -> None:
        """Raise :class:`DataDirUnusable` to stop the boot when the directory is unusable."""
        try:
            self.settings.require_data_dir()
        except ConfigurationError as exc:
            raise DataDirUnusable(str(exc)) from None
