"""Sweep this host's stale geotasks temporary files when a worker process starts."""

from __future__ import annotations

import logging
from pathlib import Path

from dramatiq.broker import Broker
from dramatiq.middleware import Middleware
from dramatiq.worker import Worker

from ..errors import GeotasksError
from ..tmpfiles import sweep_temporary_files

logger = logging.getLogger(__name__)


class SweepTemporaryFiles(Middleware):
    """Remove geotasks' temporary files older than ``older_than_s`` when a worker boots.

    A worker killed mid-job leaves its named temporary files behind; the next start on the same
    host removes them (``systemd-tmpfiles`` catches the rest by age). Files younger than the age
    limit are kept, as another worker instance of the host may be using them. A sweep that
    fails is logged and never stops the worker.

    Parameters:
      tmp_dir: ``GEOTASKS_TMP_DIR``.
      older_than_s: Age beyond which a file is stale: longer than any job runs.
    """

    def __init__(self, tmp_dir: Path, older_than_s: float) -> None:
        self.tmp_dir = tmp_dir
        self.older_than_s = older_than_s

    def after_worker_boot(self, broker: Broker, worker: Worker) -> None:
        """Sweep, and log what was removed."""
        try:
            report = sweep_temporary_files(self.tmp_dir, self.older_than_s)
        except (GeotasksError, OSError) as exc:
            logger.error("Temporary files in %s were not swept: %s", self.tmp_dir, exc)
            return
        logger.log(
            logging.INFO if report.removed else logging.DEBUG,
            "Swept temporary files in %s: removed %d (%d bytes) older than %d s, kept %d.",
            self.tmp_dir,
            report.removed,
            report.removed_bytes,
            self.older_than_s,
            report.kept,
        )
