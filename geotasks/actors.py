"""The geoprocessing actors: thin wrappers that check arguments and call :mod:`geotasks.geo`.

Each actor is declared from its :class:`~geotasks.registry.ActorSpec`, so its name, queue and
options are exactly what :func:`geotasks.submit` and the HTTP API know. Each is also a plain
function: ``shapefile_to_geojson("parcels")`` runs synchronously and returns the same
:class:`~geotasks.geo.result.GeoJSONResult` that ``shapefile_to_geojson.send("parcels")`` stores.

A dataset argument may be ``job:<id>``: an earlier job's result, read as
:mod:`geotasks.datasets` says.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ParamSpec

import dramatiq

from .broker import setup_broker
from .geo import operations
from .geo.context import current_context
from .geo.options import ReadingOptions
from .geo.result import GeoJSONResult
from .registry import REGISTRY
from .settings import get_settings

logger = logging.getLogger(__name__)

P = ParamSpec("P")

setup_broker()


def _declare(function: Callable[P, GeoJSONResult]) -> dramatiq.Actor[P, GeoJSONResult]:
    spec = REGISTRY.spec(function.__name__)
    return spec.declare(function, time_limit=get_settings().geo_time_limit_s * 1000)


def _run(operation: Callable[..., GeoJSONResult], name: str, **arguments: Any) -> GeoJSONResult:
    context = current_context()
    with context.open_source(name) as source:
        return operation(
            source,
            data_dir=context.data_dir,
            limits=context.limits,
            tmp_dir=context.tmp_dir,
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
