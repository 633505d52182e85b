"""The geoprocessing operations: each reads one dataset and returns a GeoJSONResult.

Every operation takes a ``source`` (a dataset name, or a trusted ``Path`` from an earlier
job), its own parameters, an explicit ``data_dir`` and ``limits``, the reading options as one
:class:`~geotasks.geo.options.ReadingOptions` and a ``tmp_dir``. Results are always
RFC 7946: WGS84 lon/lat, split at the antimeridian. Distances are metres wherever the data
lies, measured in a projection centred on each feature (see :mod:`geotasks.geo.metres`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import Geod
from shapely.geometry.base import BaseGeometry

from geotasks.errors import InputError
from geotasks.geo.antimeridian import split
from geotasks.geo.bbox import bbox_polygon
from geotasks.geo.features import continuous_features
from geotasks.geo.geojson import FeatureCollectionWriter
from geotasks.geo.limits import GeoLimits
from geotasks.geo.metres import LocalMetres
from geotasks.geo.options import ReadingOptions, check_flag, parse_bbox
from geotasks.geo.parallel import write_layer_split
from geotasks.geo.reading import Layer, Source, open_layer
from geotasks.geo.result import GeoJSONResult
from geotasks.geo.streaming import (
    POLYGONAL,
    make_polygonal_valid,
)
from geotasks.geo.validity import (
    InvalidGeometries,
    invalid_policy,
    operation_policy,
    valid_on_grid,
)

logger = logging.getLogger(__name__)

#: Largest buffer distance (metres): past a few thousand km a local projection distorts.
MAX_BUFFER_M = 1_000_000.0

#: Largest simplification tolerance (metres).
MAX_TOLERANCE_M = 1_000_000.0

#: Segments per quarter circle in buffers (16 keeps a circle's area within 0.2 %).
BUFFER_QUAD_SEGS = 16

_GEOD = Geod(ellps="WGS84")

#: What an operation makes of one feature: its id, properties and new geometry.
Mapped = tuple[Any, dict[str, Any], BaseGeometry | None]


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

    def buffer(fid: Any, properties: dict[str, Any], geometry: BaseGeometry) -> Mapped:
        if distance < 0 and geometry.geom_type not in POLYGONAL:
            raise InputError(
                f"feature {fid} is a {geometry.geom_type}: a negative distance_m shrinks "
                "polygons, and only polygons"
            )
        frame = LocalMetres(geometry)
        buffered = shapely.buffer(frame.to_metres(geometry), distance, quad_segs=BUFFER_QUAD_SEGS)
        if buffered.is_empty:
            return fid, properties, None
        return fid, properties, _to_lonlat(frame, buffered, limits)

    return _map_features(
        source, buffer, data_dir=data_dir, limits=limits, reading=reading, tmp_dir=tmp_dir
    )


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

    def simplify(fid: Any, properties: dict[str, Any], geometry: BaseGeometry) -> Mapped:
        frame = LocalMetres(geometry)
        simpler: BaseGeometry | None = shapely.simplify(
            frame.to_metres(geometry), tolerance, preserve_topology=preserve_topology
        )
        if simpler is not None and geometry.geom_type in POLYGONAL and not simpler.is_valid:
            simpler = make_polygonal_valid(simpler)
        if simpler is None or simpler.is_empty:
            return fid, properties, None
        return fid, properties, _to_lonlat(frame, simpler, limits)

    return _map_features(
        source, simplify, data_dir=data_dir, limits=limits, reading=reading, tmp_dir=tmp_dir
    )


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
    groups: dict[Any, list[BaseGeometry]] = {}
    with _writing(source, data_dir, limits, reading, tmp_dir) as (opened, writer, result):
        if by is not None and by not in opened.fields:
            raise InputError(
                f"{opened.label} has no field named {by!r}; its fields: {', '.join(opened.fields)}"
            )
        invalid = InvalidGeometries(operation_policy(reading))
        for _fid, geometry, properties in continuous_features(opened, limits, reading, invalid):
            key = _group_key(properties.get(by)) if by is not None else None
            parts = groups.setdefault(key, [])
            if geometry is not None:
                parts.append(split(geometry))
        invalid.report(opened.label)
        for fid, (key, parts) in enumerate(groups.items()):
            merged = shapely.union_all(parts) if parts else None
            _check_vertices(merged, limits)
            writer.write_feature(
                fid, {} if by is None else {by: key}, valid_on_grid(merged, writer.precision)
            )
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

    def clip(fid: Any, properties: dict[str, Any], shape: BaseGeometry) -> Mapped | None:
        inside = split(shape)
        if not shapely.intersects(area, inside):
            return None
        cut = _same_dimension(
            shapely.intersection(inside, area), int(shapely.get_dimensions(inside))
        )
        return None if cut is None else (fid, properties, cut)

    return _map_features(
        source, clip, data_dir=data_dir, limits=limits, tmp_dir=tmp_dir, drop_null=True,
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

    def measure(fid: Any, properties: dict[str, Any], geometry: BaseGeometry) -> Mapped:
        lonlat = split(geometry)
        measures: dict[str, float | None] = {"area_m2": None, "perimeter_m": None, "length_m": None}
        dimension = int(shapely.get_dimensions(lonlat))
        if dimension == 2:
            area, perimeter = _GEOD.geometry_area_perimeter(shapely.orient_polygons(lonlat))
            measures["area_m2"], measures["perimeter_m"] = abs(area), perimeter
        elif dimension == 1:
            measures["length_m"] = _GEOD.geometry_length(lonlat)
        return fid, {**properties, **measures}, lonlat

    return _map_features(
        source, measure, data_dir=data_dir, limits=limits, reading=reading, tmp_dir=tmp_dir
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
    apply: Callable[[Any, dict[str, Any], BaseGeometry], Mapped | None],
    *,
    data_dir: Path,
    limits: GeoLimits,
    reading: ReadingOptions,
    tmp_dir: Path | None,
    drop_null: bool = False,
) -> GeoJSONResult:
    """Run ``apply`` on each feature (lon/lat, continuous across ±180) and write what it returns."""
    with _writing(source, data_dir, limits, reading, tmp_dir) as (opened, writer, result):
        invalid = InvalidGeometries(operation_policy(reading))
        for fid, geometry, properties in continuous_features(opened, limits, reading, invalid):
            if geometry is None:
                if not drop_null:
                    writer.write_feature(fid, properties, None)
                continue
            try:
                feature = apply(fid, dict(properties), geometry)
            except shapely.errors.GEOSException as exc:
                raise InputError(
                    f"{opened.label}: feature {fid} cannot be processed: {exc}"
                ) from exc
            if feature is not None:
                fid, properties, shape = feature
                writer.write_feature(fid, properties, valid_on_grid(shape, writer.precision))
        invalid.report(opened.label)
    return result


def _to_lonlat(
    frame: LocalMetres, geometry: BaseGeometry, limits: GeoLimits
) -> BaseGeometry | None:
    """Bring an operation's result back to RFC 7946 lon/lat (``None`` if nothing is left)."""
    lonlat = frame.to_lonlat(geometry)
    if lonlat.is_empty:
        return None
    _check_vertices(lonlat, limits)
    return lonlat


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


def _same_dimension(geometry: BaseGeometry, dimension: int) -> BaseGeometry | None:
    """The parts of an intersection with the input's dimension (a polygon cut to a line is gone)."""
    parts = [
        part
        for part in shapely.get_parts(geometry)
        if not part.is_empty and int(shapely.get_dimensions(part)) == dimension
    ]
    if not parts:
        return None
    if len(parts) == 1:
        only: BaseGeometry = parts[0]
        return only
    if dimension == 2:
        return shapely.MultiPolygon([p for part in parts for p in shapely.get_parts(part)])
    if dimension == 1:
        return shapely.MultiLineString([p for part in parts for p in shapely.get_parts(part)])
    return shapely.MultiPoint([p for part in parts for p in shapely.get_parts(part)])
