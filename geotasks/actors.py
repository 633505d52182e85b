"""The geoprocessing actors: thin wrappers that check arguments and call :mod:`geotasks.geo`.

Each actor is declared from its :class:`~geotasks.registry.ActorSpec`, so its name, queue and
options are exactly what :func:`geotasks.submit` and the HTTP API know. Each is also a plain
function: ``shapefile_to_geojson("parcels")`` runs synchronously and returns the same
:class:`~geotasks.geo.result.GeoJSONResult` that ``shapefile_to_geojson.send("parcels")`` stores.

A dataset argument may be ``job:<id>``: the earlier job's stored GeoJSON is streamed to a
temporary file on this host and read from there, so a client can chain clip → buffer without
downloading anything.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ParamSpec

import dramatiq

from .broker import setup_broker
from .errors import InputError, JobNotFound, TransientError
from .geo import operations
from .geo.limits import GeoLimits
from .geo.options import ReadingOptions
from .geo.result import GeoJSONResult
from .postgres.job_status import JobState
from .registry import REGISTRY
from .settings import Settings, get_settings
from .tmpfiles import FILE_PREFIX

logger = logging.getLogger(__name__)

P = ParamSpec("P")

#: Prefix of a dataset argument that names an earlier job's result.
JOB_PREFIX = "job:"

setup_broker()


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
        path = Path(folder) / "input.geojson"
        try:
            job.save(path)
        except JobNotFound:
            raise InputError(f"{name}: its result has expired") from None
        yield path


def _declare(function: Callable[P, GeoJSONResult]) -> dramatiq.Actor[P, GeoJSONResult]:
    spec = REGISTRY.spec(function.__name__)
    return spec.declare(function, time_limit=get_settings().geo_time_limit_s * 1000)


def _run(operation: Callable[..., GeoJSONResult], name: object, **arguments: Any) -> GeoJSONResult:
    settings = get_settings()
    with dataset_source(name, settings) as source:
        return operation(
            source,
            data_dir=settings.data_dir,
            limits=geo_limits(settings),
            tmp_dir=settings.tmp_dir,
            **arguments,
        )


@_declare
def shapefile_to_geojson(
    name: str,
    *,
    layer: str | None = None,
    source_crs: str | None = None,
    bbox: list[float] | None = None,
    fields: list[str] | None = None,
    where: str | None = None,
    precision: int = 7,
    encoding: str | None = None,
    repair: bool = False,
    limit: int | None = None,
) -> GeoJSONResult:
    """Read a dataset and return it as an RFC 7946 GeoJSON FeatureCollection."""
    return _run(operations.shapefile_to_geojson, name, **_reading(locals()))


@_declare
def buffer_features(
    name: str,
    distance_m: float,
    *,
    layer: str | None = None,
    source_crs: str | None = None,
    bbox: list[float] | None = None,
    fields: list[str] | None = None,
    where: str | None = None,
    precision: int = 7,
    encoding: str | None = None,
    repair: bool = False,
    limit: int | None = None,
) -> GeoJSONResult:
    """Buffer every feature by ``distance_m`` metres (geodesic, wherever it lies)."""
    return _run(operations.buffer_features, name, distance_m=distance_m, **_reading(locals()))


@_declare
def simplify_features(
    name: str,
    tolerance_m: float,
    preserve_topology: bool = True,
    *,
    layer: str | None = None,
    source_crs: str | None = None,
    bbox: list[float] | None = None,
    fields: list[str] | None = None,
    where: str | None = None,
    precision: int = 7,
    encoding: str | None = None,
    repair: bool = False,
    limit: int | None = None,
) -> GeoJSONResult:
    """Simplify every geometry with a tolerance of ``tolerance_m`` metres."""
    return _run(
        operations.simplify_features,
        name,
        tolerance_m=tolerance_m,
        preserve_topology=preserve_topology,
        **_reading(locals()),
    )


@_declare
def dissolve_features(
    name: str,
    by: str | None = None,
    *,
    layer: str | None = None,
    source_crs: str | None = None,
    bbox: list[float] | None = None,
    fields: list[str] | None = None,
    where: str | None = None,
    precision: int = 7,
    encoding: str | None = None,
    repair: bool = False,
    limit: int | None = None,
) -> GeoJSONResult:
    """Merge features, all of them or grouped by the values of ``by``."""
    return _run(operations.dissolve_features, name, by=by, **_reading(locals()))


@_declare
def clip_features(
    name: str,
    *,
    geometry: dict[str, Any] | None = None,
    layer: str | None = None,
    source_crs: str | None = None,
    bbox: list[float] | None = None,
    fields: list[str] | None = None,
    where: str | None = None,
    precision: int = 7,
    encoding: str | None = None,
    repair: bool = False,
    limit: int | None = None,
) -> GeoJSONResult:
    """Clip features to ``bbox`` (lon/lat) or to a GeoJSON ``geometry``."""
    return _run(operations.clip_features, name, geometry=geometry, **_reading(locals()))


@_declare
def measure_features(
    name: str,
    *,
    layer: str | None = None,
    source_crs: str | None = None,
    bbox: list[float] | None = None,
    fields: list[str] | None = None,
    where: str | None = None,
    precision: int = 7,
    encoding: str | None = None,
    repair: bool = False,
    limit: int | None = None,
) -> GeoJSONResult:
    """Add geodesic ``area_m2`` and ``length_m``/``perimeter_m`` to every feature."""
    return _run(operations.measure_features, name, **_reading(locals()))


#: The reading options every geo actor takes and passes on unchanged.
READING_OPTIONS = (
    "layer",
    "source_crs",
    "bbox",
    "fields",
    "where",
    "precision",
    "encoding",
    "repair",
    "limit",
)


def _reading(arguments: dict[str, Any]) -> dict[str, ReadingOptions]:
    return {"reading": ReadingOptions(**{option: arguments[option] for option in READING_OPTIONS})}
