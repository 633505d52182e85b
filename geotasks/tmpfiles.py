"""Where geotasks puts named temporary files on a worker host, and how stale ones are removed.

Temporary files live on the host whose worker created them, so they are cleaned per host, never
by a queued job (which would run on one random host): ``systemd-tmpfiles`` removes them by age,
and every worker sweeps them when it starts
(:class:`~geotasks.middleware.tmpfiles.SweepTemporaryFiles`).

The convention, which the sweep relies on to touch nothing else: geotasks puts its named
temporary files and folders directly in ``$GEOTASKS_TMP_DIR`` (``/tmp/geotasks`` by default, a
directory of its own), each named ``geotasks-…`` (the geo actors use it too; pass
``prefix=FILE_PREFIX`` to :mod:`tempfile`). The sweep removes only such entries that belong to
the worker's own user. Anonymous spool files (:class:`tempfile.SpooledTemporaryFile`) have no
name and vanish with their process; they need no clean-up.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigurationError

logger = logging.getLogger(__name__)

#: Every name geotasks creates in ``GEOTASKS_TMP_DIR`` starts with this.
FILE_PREFIX = "geotasks-"


@dataclass(frozen=True)
class SweepReport:
    """What :func:`sweep_temporary_files` did."""

    #: Files and directories removed (a directory counts once, whatever it held).
    removed: int = 0
    #: Bytes of the files removed.
    removed_bytes: int = 0
    #: geotasks' entries kept because they are younger than the age limit.
    kept: int = 0


def sweep_temporary_files(tmp_dir: Path, older_than_s: float) -> SweepReport:
    """Remove geotasks' temporary files on this host that are older than ``older_than_s``.

    Only entries of ``tmp_dir`` named ``geotasks-…`` and owned by this process's user are
    considered; a file counts as old when it was last modified more than ``older_than_s``
    seconds ago, a directory when nothing in it was. Symlinks are removed, never followed.
    Other workers of the host may sweep at the same time: an entry that vanished meanwhile is
    skipped.

    Parameters:
      tmp_dir: ``GEOTASKS_TMP_DIR``.
      older_than_s: Age beyond which an entry is stale: longer than any job runs.

    Returns:
      SweepReport: what was removed and kept.

    Raises:
      ConfigurationError: when ``tmp_dir`` is a symlink or not a directory.
    """
    try:
        _check_directory(tmp_dir)
    except FileNotFoundError:
        return SweepReport()
    uid = os.geteuid()
    cutoff = time.time() - older_than_s
    removed = removed_bytes = kept = 0
    with os.scandir(tmp_dir) as entries:
        for entry in entries:
            if not entry.name.startswith(FILE_PREFIX):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
                if info.st_uid != uid:
                    continue
                is_dir = stat.S_ISDIR(info.st_mode)
                newest = _newest_mtime(entry.path) if is_dir else info.st_mtime
                if newest >= cutoff:
                    kept += 1
                    continue
                if is_dir:
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                logger.warning("Cannot remove temporary file %s: %s", entry.path, exc)
                continue
            removed += 1
            removed_bytes += 0 if is_dir else info.st_size
    return SweepReport(removed, removed_bytes, kept)


def _check_directory(path: Path) -> None:
    # A symlink planted in place of the directory would point the sweep elsewhere.
    if not stat.S_ISDIR(path.lstat().st_mode):
        raise ConfigurationError(
            f"{path} must be a directory, not a symlink or a file: check GEOTASKS_TMP_DIR"
        )


def _newest_mtime(directory: str) -> float:
    newest = os.lstat(directory).st_mtime
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
    return newest
