"""The geoprocessing actors, declared with ``@geotasks.actor`` exactly as an application would.

Each is a thin wrapper: check arguments, call :mod:`geotasks.geo.operations`, return the
:class:`~geotasks.geo.result.GeoJSONResult`. Each is also a plain function:
``shapefile_to_geojson("parcels")`` runs here and now and returns the same GeoJSONResult that
``shapefile_to_geojson.submit("parcels")`` stores. Their parameters, JSON Schemas and
descriptions come from the signatures below (and :class:`~geotasks.geo.options.ReadingOptions`
for the nine reading options every one of them takes, keyword-only).

A dataset argument may be ``job:<id>``: the earlier job's stored GeoJSON is streamed to a
temporary file on this host and read from there, so a client can chain clip → buffer without
downloading anything.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar

from pydantic import Field, StringConstraints

from .datasets import DATASET_NAME_PATTERN
from .declaration import actor
from .geo import operations
from .geo.context import current_context
from .geo.options import ReadingOptions
from .geo.result import GeoJSONResult
from .settings import get_settings

__all__ = [
    "GEO_QUEUE",
    "DatasetName",
    "buffer_features",
    "clip_features",
    "dissolve_features",
    "measure_features",
    "shapefile_to_geojson",
    "simplify_features",
    "with_reading_options",
]

P = ParamSpec("P")
R = TypeVar("R")

#: The queue of the geoprocessing actors; a public name.
GEO_QUEUE = "geo"

#: A parameter naming a dataset in GEOTASKS_DATA_DIR, or ``job:<id>``: its JSON Schema refuses
#: an impossible name (absolute, ``..``, hidden) before anything is sent.
DatasetName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, pattern=DATASET_NAME_PATTERN),
    Field(description="dataset name in GEOTASKS_DATA_DIR, or job:<id> for another job's result"),
]

#: The reading options' names, in declaration order.
READING_OPTIONS = tuple(field.name for field in dataclasses.fields(ReadingOptions))


def with_reading_options(
    function: Callable[Concatenate[str, P], R],
) -> Callable[..., R]:
    """Give ``function`` the nine reading options as flat keyword-only parameters.

    ``function`` takes a ``reading: ReadingOptions`` keyword; the function returned takes
    ``layer=``, ``bbox=``, ``repair=``… instead (with their types, defaults and descriptions,
    so ``@geotasks.actor`` describes each), and packs them into one ``ReadingOptions``.
    """
    signature = inspect.signature(function)
    hints = typing.get_type_hints(ReadingOptions)
    flat = [
        inspect.Parameter(
            field.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=field.default,
            annotation=Annotated[
                hints[field.name],
                Field(
                    description=field.metadata["description"],
                    json_schema_extra=dict(field.metadata.get("schema", {})),
                ),
            ],
        )
        for field in dataclasses.fields(ReadingOptions)
    ]
    own = [p for p in signature.parameters.values() if p.name != "reading"]

    @functools.wraps(function)
    def with_options(*args: Any, **kwargs: Any) -> R:
        reading = {name: kwargs.pop(name) for name in READING_OPTIONS if name in kwargs}
        return function(*args, reading=ReadingOptions(**reading), **kwargs)  # type: ignore[arg-type]

    with_options.__signature__ = signature.replace(parameters=[*own, *flat])  # type: ignore[attr-defined]
    return with_options


def _run(
    operation: Callable[..., GeoJSONResult], name: str, reading: ReadingOptions, **arguments: Any
) -> GeoJSONResult:
    context = current_context()
    with context.open_source(name) as source:
        return operation(
            source,
            data_dir=context.data_dir,
            limits=context.limits,
            tmp_dir=context.tmp_dir,
            reading=reading,
            **arguments,
        )


_GEO_TIME_LIMIT_MS = get_settings().geo_time_limit_s * 1000


@actor(queue_name=GEO_QUEUE, time_limit=_GEO_TIME_LIMIT_MS)
@with_reading_options
def shapefile_to_geojson(name: DatasetName, *, reading: ReadingOptions) -> GeoJSONResult:
    """Read a dataset and return it as an RFC 7946 GeoJSON FeatureCollection."""
    return _run(operations.shapefile_to_geojson, name, reading)


@actor(queue_name=GEO_QUEUE, time_limit=_GEO_TIME_LIMIT_MS)
@with_reading_options
def buffer_features(
    name: DatasetName, distance_m: float, *, reading: ReadingOptions
) -> GeoJSONResult:
    """Buffer every feature by a distance in metres (geodesic, wherever it lies).

    Parameters:
      distance_m: buffer distance in metres
    """
    return _run(operations.buffer_features, name, reading, distance_m=distance_m)


@actor(queue_name=GEO_QUEUE, time_limit=_GEO_TIME_LIMIT_MS)
@with_reading_options
def simplify_features(
    name: DatasetName,
    tolerance_m: Annotated[float, Field(gt=0)],
    preserve_topology: bool = True,
    *,
    reading: ReadingOptions,
) -> GeoJSONResult:
    """Simplify every geometry with a tolerance in metres.

    Parameters:
      tolerance_m: simplification tolerance in metres
      preserve_topology: never create invalid geometries
    """
    return _run(
        operations.simplify_features,
        name,
        reading,
        tolerance_m=tolerance_m,
        preserve_topology=preserve_topology,
    )


@actor(queue_name=GEO_QUEUE, time_limit=_GEO_TIME_LIMIT_MS)
@with_reading_options
def dissolve_features(
    name: DatasetName, by: str | None = None, *, reading: ReadingOptions
) -> GeoJSONResult:
    """Merge features, all of them or grouped by attribute values.

    Parameters:
      by: attribute field to group by; everything into one feature when omitted
    """
    return _run(operations.dissolve_features, name, reading, by=by)


@actor(queue_name=GEO_QUEUE, time_limit=_GEO_TIME_LIMIT_MS)
@with_reading_options
def clip_features(
    name: DatasetName, *, geometry: dict[str, Any] | None = None, reading: ReadingOptions
) -> GeoJSONResult:
    """Clip features to a bounding box (bbox) or a GeoJSON geometry.

    Parameters:
      geometry: GeoJSON geometry to clip to, in lon/lat (or give bbox)
    """
    return _run(operations.clip_features, name, reading, geometry=geometry)


@actor(queue_name=GEO_QUEUE, time_limit=_GEO_TIME_LIMIT_MS)
@with_reading_options
def measure_features(name: DatasetName, *, reading: ReadingOptions) -> GeoJSONResult:
    """Add geodesic area (m²) and length or perimeter (m) to every feature's properties."""
    return _run(operations.measure_features, name, reading)


def builtin_specs() -> list[dict[str, Any]]:
    """The public actors above as the catalogue stores them, in the order of ``__all__``.

    ``builtin_actors.json`` ships exactly this (``make catalogue`` writes it, a test compares),
    so that a client without this module's code knows the built-in actors.
    """
    module = globals()
    return [
        module[name].spec.to_json() for name in __all__ if getattr(module[name], "public", False)
    ]
