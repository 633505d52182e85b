"""The per-host sweep removes only geotasks' own stale temporary files."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

import pytest
from dramatiq.brokers.stub import StubBroker

from geotasks.errors import ConfigurationError
from geotasks.middleware.tmpfiles import SweepTemporaryFiles
from geotasks.tmpfiles import FILE_PREFIX, SweepReport, sweep_temporary_files

DAY_S = 86_400


def age(path: Path, seconds: float) -> Path:
    """Set ``path``'s access and modification times ``seconds`` in the past."""
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)
    return path


def make_file(path: Path, size: int = 10, *, age_s: float = 0) -> Path:
    path.write_bytes(b"x" * size)
    return age(path, age_s)


def test_only_old_geotasks_files_in_the_tmp_dir_are_removed(tmp_path: Path) -> None:
    # Given the tmp dir with an old and a fresh geotasks file, an old file named otherwise, and
    # an old geotasks-named file in a subdirectory that is not geotasks'
    old = make_file(tmp_path / f"{FILE_PREFIX}old.geojson", 100, age_s=2 * DAY_S)
    fresh = make_file(tmp_path / f"{FILE_PREFIX}fresh.geojson", age_s=60)
    foreign = make_file(tmp_path / "notes.txt", age_s=2 * DAY_S)
    (tmp_path / "other").mkdir()
    nested = make_file(tmp_path / "other" / f"{FILE_PREFIX}nested", age_s=2 * DAY_S)

    # When files older than a day are swept
    report = sweep_temporary_files(tmp_path, DAY_S)

    # Then only the old geotasks file is gone, and the report says so
    assert report == SweepReport(removed=1, removed_bytes=100, kept=1)
    assert not old.exists()
    assert fresh.exists() and foreign.exists() and nested.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_another_users_files_are_never_removed(tmp_path: Path) -> None:
    # Given an old geotasks-named file that belongs to another user
    theirs = make_file(tmp_path / f"{FILE_PREFIX}theirs", age_s=2 * DAY_S)
    os.chown(theirs, 65534, 65534)

    # When swept, Then it is neither removed nor counted
    assert sweep_temporary_files(tmp_path, DAY_S) == SweepReport()
    assert theirs.exists()


def test_a_directory_goes_only_when_everything_in_it_is_old(tmp_path: Path) -> None:
    # Given two geotasks temporary directories, each with an old file; one also has a fresh one
    stale = Path(tempfile.mkdtemp(prefix=FILE_PREFIX, dir=tmp_path))
    busy = Path(tempfile.mkdtemp(prefix=FILE_PREFIX, dir=tmp_path))
    make_file(stale / "layer.shp", age_s=2 * DAY_S)
    make_file(busy / "layer.shp", age_s=2 * DAY_S)
    make_file(busy / "layer.dbf", age_s=10)
    age(stale, 2 * DAY_S)
    age(busy, 2 * DAY_S)

    # When swept
    report = sweep_temporary_files(tmp_path, DAY_S)

    # Then the all-old directory is removed whole, the one in use is kept whole
    assert (report.removed, report.kept) == (1, 1)
    assert not stale.exists()
    assert sorted(p.name for p in busy.iterdir()) == ["layer.dbf", "layer.shp"]


def test_a_symlink_is_removed_but_never_followed(tmp_path: Path) -> None:
    # Given an old geotasks-named symlink pointing at a precious old file elsewhere
    (tmp_path / "tmp").mkdir()
    precious = make_file(tmp_path / "precious.txt", age_s=2 * DAY_S)
    link = tmp_path / "tmp" / f"{FILE_PREFIX}link"
    link.symlink_to(precious)
    age(link, 2 * DAY_S)

    # When swept
    sweep_temporary_files(tmp_path / "tmp", DAY_S)

    # Then the link is gone and its target untouched
    assert not link.is_symlink()
    assert precious.exists()


def test_a_missing_tmp_dir_means_nothing_to_do(tmp_path: Path) -> None:
    assert sweep_temporary_files(tmp_path / "missing", DAY_S) == SweepReport()


def test_a_tmp_dir_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    # Given GEOTASKS_TMP_DIR is a symlink (planted by someone) to a directory with old
    # geotasks-named files
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = make_file(elsewhere / f"{FILE_PREFIX}victim", age_s=2 * DAY_S)
    (tmp_path / "geotasks").symlink_to(elsewhere)

    # Then the sweep refuses it
    with pytest.raises(ConfigurationError, match="not a symlink"):
        sweep_temporary_files(tmp_path / "geotasks", DAY_S)
    assert victim.exists()


def test_the_middleware_sweeps_when_a_worker_boots(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a stale geotasks file, and the middleware configured with a one-day age
    stale = make_file(tmp_path / f"{FILE_PREFIX}stale", 7, age_s=2 * DAY_S)
    middleware = SweepTemporaryFiles(tmp_path, DAY_S)
    broker = StubBroker(middleware=[middleware])

    # When a worker boots
    with caplog.at_level(logging.INFO, logger="geotasks.middleware.tmpfiles"):
        broker.emit_after("worker_boot", None)

    # Then the file is gone and the log says what was removed
    assert not stale.exists()
    assert "removed 1 (7 bytes) older than 86400 s, kept 0" in caplog.text


def test_a_failed_sweep_is_logged_and_does_not_stop_the_worker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a tmp dir that is a symlink
    (tmp_path / "target").mkdir()
    (tmp_path / "geotasks").symlink_to(tmp_path / "target")
    middleware = SweepTemporaryFiles(tmp_path / "geotasks", DAY_S)

    # When a worker boots, the hook returns normally and logs an error
    with caplog.at_level(logging.ERROR, logger="geotasks.middleware.tmpfiles"):
        middleware.after_worker_boot(StubBroker(middleware=[]), None)  # type: ignore[arg-type]
    assert "were not swept" in caplog.text
