"""The geoprocessing operations: each reads one dataset and returns a GeoJSONResult.

Every operation takes a ``source`` (a dataset name, or a trusted ``Path`` from an earlier
job), its own parameters, an explicit ``data_dir`` and ``limits``, the reading options as one
:class:`~geotasks.geo.options.ReadingOptions` and a ``tmp_dir``. Results are always
RFC 7946: WGS84 lon/lat, split at the antimeridian. Distances are metres wherever the data
lies, measured in a projection centred on each feature (see :mod:`geotasks.geo.metres`).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geotasks.errors import InputError
from geotasks.geo.antimeridian import split
from geotasks.geo.bbox import bbox_polygon
from geotasks.geo.feature_operations import Buffer, Clip, Measure, Simplify
from geotasks.geo.geojson import FeatureCollectionWriter, encode_properties
from geotasks.geo.limits import GeoLimits
from geotasks.geo.mapping import (
    BatchOperation,
    finished_texts,
    map_layer,
    multipolygon_texts,
)
from geotasks.geo.options import ReadingOptions, check_flag, parse_bbox
from geotasks.geo.parallel import write_layer_split
from geotasks.geo.reading import Layer, Source, open_layer
from geotasks.geo.result import GeoJSONResult
from geotasks.geo.streaming import POLYGONAL, lonlat_shapes, read_batches
from geotasks.geo.union import PolygonStore, union_polygons
from geotasks.geo.validity import (
    InvalidGeometries,
    invalid_policy,
    operation_policy,
)

logger = logging.getLogger(__name__)

#: Largest buffer distance (metres): past a few thousand km a local projection distorts.
MAX_BUFFER_M = 1_000_000.0

#: Largest simplification tolerance (metres).
MAX_TOLERANCE_M = 1_000_000.0

#: Fewest features each process must get for an operation to be split between the job's
#: process and helper processes (an operation costs several times what plain conversion does
#: per feature, so a helper's start, about 0.45 s, pays for itself sooner).
MIN_FEATURES_PER_OPERATION_PROCESS = 20_000

#: Features the job's own process maps beyond its even share while a helper process starts
#: (about 0.45 s: some 5,000 to 10,000 features of an operation).
HELPER_HEAD_START_FEATURES = 6_000


def shapefile_to_geojson(
    source: Source,
    *,
    data_dir: Path,
    limits: GeoLimits,
    reading: ReadingOptions = ReadingOptions(),
    tmp_dir: Path | None = None,
) -> GeoJSONResult:
    """Read one dataset and return it as an RFC 7946 FeatureCollection.

    Parameters:
      source: A dataset name inside ``data_dir`` (``parcels`` finds ``parcels.shp``,
        ``parcels/`` or ``parcels.zip``), or a trusted local ``Path``.
      data_dir: The directory holding every dataset.
      limits: Feature, vertex and archive limits.
      reading: Which layer, features and fields to read, and the output precision. Invalid
        polygons are kept as they are and counted in a warning (the log, and the job's
        ``warnings``), unless ``reading.repair`` makes them valid or ``reading.strict`` fails.
      tmp_dir: Where temporary files go (the result past 4 MiB, a rebuilt ``.shx``).

    Returns:
      The GeoJSON document; the caller closes it.

    Raises:
      InputError: If the dataset or an argument is bad (the message says which and why).
    """
    invalid = InvalidGeometries(invalid_policy(reading))
    with _writing(source, data_dir, limits, reading, tmp_dir) as (opened, writer, result):
        write_layer_split(
            opened,
            writer,
            limits=limits,
            invalid=invalid,
            limit=reading.limit,
            tmp_dir=tmp_dir,
        )
        invalid.report(opened.label)
    return result


def buffer_features(
    source: Source,
    distance_m: float,
    *,
    data_dir: Path,
    limits: GeoLimits,
    reading: ReadingOptions = ReadingOptions(),
    tmp_dir: Path | None = None,
) -> GeoJSONResult:
    """Buffer every feature by ``distance_m`` metres, wherever it lies on Earth.

    A negative distance shrinks polygons (a setback, an erosion); a polygon it shrinks away
    becomes a feature with a null geometry, kept with its properties.

    Parameters:
      source: A dataset name inside ``data_dir``, or a trusted local ``Path``.
      distance_m: Buffer distance in metres (not 0, at most 1,000 km either way; negative
        only for polygons).
      data_dir: The directory holding every dataset.
      limits: Feature, vertex and archive limits.
      reading: Which layer, features and fields to read, and the output precision.
      tmp_dir: Where temporary files go.

    Returns:
      The buffered features (polygons) with their properties; null geometries stay null.

    Raises:
      InputError: If the dataset or an argument is bad, or a negative distance meets a point
        or a line.
    """
    distance = _check_distance(distance_m)
    return _map_features(
        source, Buffer(distance), data_dir=data_dir, limits=limits, reading=reading,
        tmp_dir=tmp_dir,
    )  # fmt: skip


def simplify_features(
    source: Source,
    tolerance_m: float,
    preserve_topology: bool = True,
    *,
    data_dir: Path,
    limits: GeoLimits,
    reading: ReadingOptions = ReadingOptions(),
    tmp_dir: Path | None = None,
) -> GeoJSONResult:
    """Simplify every geometry with a tolerance in metres (Douglas-Peucker).

    Parameters:
      source: A dataset name inside ``data_dir``, or a trusted local ``Path``.
      tolerance_m: Largest distance, in metres, a simplified line may stray from the original
        (greater than 0).
      preserve_topology: Keep polygons valid and rings from collapsing (slower).
      data_dir: The directory holding every dataset.
      limits: Feature, vertex and archive limits.
      reading: Which layer, features and fields to read, and the output precision.
      tmp_dir: Where temporary files go.

    Returns:
      The simplified features; a geometry simplified away becomes null.

    Raises:
      InputError: If the dataset or an argument is bad.
    """
    tolerance = _check_metres(tolerance_m, "tolerance_m", MAX_TOLERANCE_M)
    check_flag(preserve_topology, "preserve_topology")
    return _map_features(
        source, Simplify(tolerance, preserve_topology), data_dir=data_dir, limits=limits,
        reading=reading, tmp_dir=tmp_dir,
    )  # fmt: skip


def dissolve_features(
    source: Source,
    by: str | None = None,
    *,
    data_dir: Path,
    limits: GeoLimits,
    reading: ReadingOptions = ReadingOptions(),
    tmp_dir: Path | None = None,
) -> GeoJSONResult:
    """Merge the geometries of features sharing a value of ``by`` (or all of them).

    Parameters:
      source: A dataset name inside ``data_dir``, or a trusted local ``Path``.
      by: The property to group on; ``None`` merges everything into one feature.
      data_dir: The directory holding every dataset.
      limits: Feature, vertex and archive limits.
      reading: Which layer, features and fields to read, and the output precision.
      tmp_dir: Where temporary files go.

    Returns:
      One feature per group, in order of first appearance, with ``by`` as its only property
      (no properties when ``by`` is ``None``) and ids 0, 1, 2…

    Raises:
      InputError: If the dataset or an argument is bad, or ``by`` names no field.
    """
    if by is not None and not isinstance(by, str):
        raise InputError(f"by= must be a field name, not {type(by).__name__}")
    # Each group's polygons, in the store; its other geometries (points, lines), in memory.
    groups: dict[Any, list[BaseGeometry]] = {}
    with (
        _writing(source, data_dir, limits, reading, tmp_dir) as (opened, writer, result),
        PolygonStore(tmp_dir) as store,
    ):
        if by is not None and by not in opened.fields:
            raise InputError(
                f"{opened.label} has no field named {by!r}; its fields: {', '.join(opened.fields)}"
            )
        invalid = InvalidGeometries(operation_policy(reading))
        wrapped = not opened.source_crs.is_geographic
        for chunk in read_batches(opened, limits=limits, limit=reading.limit):
            shapes = lonlat_shapes(opened.label, chunk, invalid=invalid, wrapped=wrapped)
            bounds = shapely.bounds(shapes)
            with np.errstate(invalid="ignore"):
                beyond = (bounds[:, 0] < -180.0) | (bounds[:, 2] > 180.0)
            for index in np.flatnonzero(beyond).tolist():
                shapes[index] = split(shapes[index])
            keys = [
                _group_key(properties.get(by)) if by is not None else None
                for properties in chunk.properties
            ]
            members: dict[Any, list[int]] = {}
            for index, key in enumerate(keys):
                members.setdefault(key, []).append(index)
            for key, indexes in members.items():
                others = groups.setdefault(key, [])
                picked = shapes[indexes]
                kinds = shapely.get_type_id(picked)
                polygonal = (kinds == shapely.GeometryType.POLYGON) | (
                    kinds == shapely.GeometryType.MULTIPOLYGON
                )
                store.add(key, picked[polygonal & ~shapely.is_empty(picked)])
                others.extend(picked[~polygonal & (kinds >= 0)].tolist())
        invalid.report(opened.label)
        for fid, (key, others) in enumerate(groups.items()):
            polygons = store.polygons(key)
            merged: Any = (
                shapely.union_all([*polygons.tolist(), *others])
                if others
                else union_polygons(polygons)
            )
            del polygons
            properties = encode_properties({} if by is None else {by: key})
            streamed = None
            if isinstance(merged, np.ndarray) and len(merged) > 1:
                streamed = multipolygon_texts(writer, merged, limits)
                if streamed is None:
                    merged = shapely.multipolygons(merged)
            elif isinstance(merged, np.ndarray):
                merged = merged[0] if len(merged) else None
            if streamed is not None:
                writer.write_streamed(fid, properties, streamed)
            else:
                texts = finished_texts(writer, np.array([merged], dtype=object), limits)
                writer.write_texts([fid], [properties], texts)
            del merged, streamed
    return result


def clip_features(
    source: Source,
    *,
    data_dir: Path,
    limits: GeoLimits,
    geometry: Mapping[str, Any] | None = None,
    reading: ReadingOptions = ReadingOptions(),
    tmp_dir: Path | None = None,
) -> GeoJSONResult:
    """Cut every feature to a lon/lat box or to a GeoJSON polygon.

    Parameters:
      source: A dataset name inside ``data_dir``, or a trusted local ``Path``.
      data_dir: The directory holding every dataset.
      limits: Feature, vertex and archive limits.
      geometry: A GeoJSON Polygon or MultiPolygon in WGS84 lon/lat to clip to; give exactly
        one of it and ``reading.bbox`` (``[west, south, east, north]`` in WGS84 degrees,
        west > east crossing ±180°).
      reading: Which layer, features and fields to read, and the output precision (the clip
        area is also the reading ``bbox``).
      tmp_dir: Where temporary files go.

    Returns:
      The features that intersect the clip area, cut to it; the others are left out.

    Raises:
      InputError: If the dataset or an argument is bad.
    """
    if (reading.bbox is None) == (geometry is None):
        raise InputError("give exactly one of bbox= and geometry= to clip with")
    if reading.bbox is not None:
        box = parse_bbox(reading.bbox)
        area = bbox_polygon(box)
    else:
        area = _clip_geometry(geometry, limits)
        west, south, east, north = area.bounds
        box = (west, south, east, north)
    shapely.prepare(area)
    return _map_features(
        source, Clip(area), data_dir=data_dir, limits=limits, tmp_dir=tmp_dir,
        reading=replace(reading, bbox=list(box)),
    )  # fmt: skip


def measure_features(
    source: Source,
    *,
    data_dir: Path,
    limits: GeoLimits,
    reading: ReadingOptions = ReadingOptions(),
    tmp_dir: Path | None = None,
) -> GeoJSONResult:
    """Add geodesic measures (on the WGS84 ellipsoid) to every feature.

    Every feature gets ``area_m2`` and ``perimeter_m`` (polygons) and ``length_m`` (lines);
    the measures that do not apply to a geometry are ``null``. Existing properties of those
    names are replaced.

    Parameters:
      source: A dataset name inside ``data_dir``, or a trusted local ``Path``.
      data_dir: The directory holding every dataset.
      limits: Feature, vertex and archive limits.
      reading: Which layer, features and fields to read, and the output precision.
      tmp_dir: Where temporary files go.

    Returns:
      The features, geometries unchanged, with the measures added.

    Raises:
      InputError: If the dataset or an argument is bad.
    """

    return _map_features(
        source, Measure(), data_dir=data_dir, limits=limits, reading=reading, tmp_dir=tmp_dir
    )


@contextmanager
def _writing(
    source: Source,
    data_dir: Path,
    limits: GeoLimits,
    reading: ReadingOptions,
    tmp_dir: Path | None,
) -> Iterator[tuple[Layer, FeatureCollectionWriter, GeoJSONResult]]:
    """Open the source and a result; finish the document on success, free it on failure."""
    if tmp_dir is not None:
        # A fresh host, or a tmpfiles.d sweep, may have left no temporary directory yet.
        tmp_dir.mkdir(parents=True, exist_ok=True)
    result = GeoJSONResult(dir=tmp_dir)
    try:
        with open_layer(
            source, data_dir=data_dir, limits=limits, tmp_dir=tmp_dir, **reading.layer_options()
        ) as opened:
            writer = FeatureCollectionWriter(result, precision=reading.precision)
            yield opened, writer, result
            writer.close()
            logger.info(
                "%s: wrote %d features, %d bytes", opened.label, writer.count, result.size_bytes
            )
    except BaseException:
        result.close()
        raise


def _map_features(
    source: Source,
    operation: BatchOperation,
    *,
    data_dir: Path,
    limits: GeoLimits,
    reading: ReadingOptions,
    tmp_dir: Path | None,
) -> GeoJSONResult:
    """Run ``operation`` on each feature and write what it makes of them (see
    :mod:`geotasks.geo.mapping`); a large shapefile is split between processes."""
    with _writing(source, data_dir, limits, reading, tmp_dir) as (opened, writer, result):
        invalid = InvalidGeometries(operation_policy(reading))
        write_layer_split(
            opened,
            writer,
            limits=limits,
            invalid=invalid,
            limit=reading.limit,
            tmp_dir=tmp_dir,
            render=functools.partial(map_layer, operation=operation),
            min_features_per_process=MIN_FEATURES_PER_OPERATION_PROCESS,
            head_start=HELPER_HEAD_START_FEATURES,
        )
        invalid.report(opened.label)
    return result


def _check_vertices(geometry: BaseGeometry | None, limits: GeoLimits) -> None:
    if geometry is not None and shapely.get_num_coordinates(geometry) > limits.max_vertices:
        raise InputError(
            f"a result geometry has more than {limits.max_vertices} vertices; use a smaller "
            "area or simplify the data first"
        )


def _check_distance(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"distance_m must be a number of metres, not {type(value).__name__}")
    if not math.isfinite(value) or value == 0:
        raise InputError(
            f"distance_m must be a number of metres other than 0 (negative shrinks polygons), "
            f"not {value}"
        )
    if abs(value) > MAX_BUFFER_M:
        raise InputError(f"distance_m must be within ±{MAX_BUFFER_M:,.0f} m, not {value:,.0f}")
    return float(value)


def _check_metres(value: object, name: str, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{name} must be a number of metres, not {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be a positive number of metres, not {value}")
    if value > maximum:
        raise InputError(f"{name} must be at most {maximum:,.0f} m, not {value:,.0f}")
    return float(value)


def _group_key(value: Any) -> Any:
    # Floats that are whole numbers group with the equal integers (DBF numbers vary in type).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _clip_geometry(geometry: object, limits: GeoLimits) -> BaseGeometry:
    if not isinstance(geometry, Mapping) or geometry.get("type") not in POLYGONAL:
        raise InputError("geometry= must be a GeoJSON Polygon or MultiPolygon (lon/lat)")
    try:
        area = shapely.geometry.shape(dict(geometry))
    except (ValueError, TypeError, AttributeError, IndexError, shapely.errors.GEOSException) as exc:
        raise InputError(f"geometry= is not a well-formed GeoJSON polygon: {exc}") from exc
    coords = shapely.get_coordinates(area)
    if len(coords) > limits.max_clip_vertices:
        raise InputError(f"geometry= has more than {limits.max_clip_vertices} vertices")
    if area.is_empty or not np.isfinite(coords).all():
        raise InputError("geometry= is empty or has coordinates that are not numbers")
    if (np.abs(coords[:, 0]) > 180).any() or (np.abs(coords[:, 1]) > 90).any():
        raise InputError(
            "geometry= must be in WGS84 lon/lat: longitudes within ±180, latitudes ±90"
        )
    if not area.is_valid:
        raise InputError(f"geometry= is not a valid polygon: {shapely.is_valid_reason(area)}")
    return area
