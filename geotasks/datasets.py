"""Datasets as the configuration sees them: the geo layer's read context, built from settings.

:mod:`geotasks.geo` reads datasets by name without knowing settings or the job store; this
module tells it where the data lives, which limits apply and how ``job:<id>`` is read (a
temporary copy on this host of that job's stored result, GeoJSON or a file written with
``output_format``, so a client can chain clip → buffer without downloading anything).
``import geotasks`` registers :func:`read_context` as the geo
layer's context provider. Light: it loads no fiona, shapely or pyproj.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError, JobNotFound, TransientError
from .geo.context import ReadContext
from .geo.limits import GeoLimits
from .job_model import JobState
from .settings import Settings, get_settings
from .tmpfiles import FILE_PREFIX

#: Prefix of a dataset argument that names an earlier job's result.
JOB_PREFIX = "job:"

#: A dataset name relative to GEOTASKS_DATA_DIR (no absolute path, no ``..``, no hidden file),
#: or ``job:<id>``. The geo layer still resolves names safely; this lets a client (and the HTTP
#: API's validation) refuse an impossible name before anything is sent.
DATASET_NAME_PATTERN = (
    r"^(job:[0-9A-Fa-f-]{32,36}|[A-Za-z0-9_][A-Za-z0-9_. -]*(/[A-Za-z0-9_][A-Za-z0-9_. -]*)*)$"
)


def read_context() -> ReadContext:
    """The geo layer's read context for this process's settings (``GEOTASKS_DATA_DIR``…).

    Reading needs no database unless a dataset argument is ``job:<id>``.
    """
    settings = get_settings()
    return ReadContext(
        data_dir=settings.require_data_dir(),
        limits=geo_limits(settings),
        tmp_dir=settings.tmp_dir,
        open_source=functools.partial(dataset_source, settings=settings),
    )


def geo_limits(settings: Settings) -> GeoLimits:
    """Return the geo limits configured by the ``GEOTASKS_MAX_*`` settings."""
    return GeoLimits(
        max_features=settings.max_features,
        max_vertices=settings.max_vertices,
        max_zip_members=settings.max_zip_members,
        max_zip_bytes=settings.max_zip_bytes,
        max_read_processes=settings.geo_read_processes,
    )


@contextlib.contextmanager
def dataset_source(name: object, settings: Settings) -> Iterator[str | Path]:
    """Yield what a geo operation reads for the argument ``name``.

    A dataset name is passed on as it is (the geo layer resolves it safely inside the data
    directory); ``job:<id>`` is replaced by a temporary copy of that job's GeoJSON result,
    removed afterwards.

    Raises:
      InputError: when ``name`` is not a string, or names a job that failed, is unknown or
        expired.
      TransientError: when the named job has not finished yet (the actor is retried later).
    """
    if not isinstance(name, str):
        raise InputError(f"the dataset name must be a string, not {type(name).__name__}")
    if not name.startswith(JOB_PREFIX):
        yield name
        return
    from .jobs import Job

    job = Job(name.removeprefix(JOB_PREFIX))
    try:
        info = job.info()
    except JobNotFound:
        raise InputError(f"{name}: no such job, or its result has expired") from None
    if not info.status.finished:
        # Sent before its input finished (a client chaining without waiting): try again later,
        # with the retry back-off, instead of failing a job that will be able to run.
        raise TransientError(f"{name} has not finished yet (it is {info.status})")
    if info.status is not JobState.SUCCESS:
        raise InputError(f"{name} did not succeed (it is {info.status}): nothing to read")
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=FILE_PREFIX, dir=settings.tmp_dir) as folder:
        try:
            # Saved under its own name, whose suffix tells the reader its format (.geojson,
            # or .fgb, .gpkg, .zip for a result written with output_format).
            path = job.save(Path(folder))
        except JobNotFound:
            raise InputError(f"{name}: its result has expired") from None
        yield path
