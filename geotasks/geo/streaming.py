"""From a layer's features to checked lon/lat batches, and from there to GeoJSON.

Each batch is reprojected to WGS84 in one vectorised call, checked against the vertex limit
and for coordinates the transform could not handle, and searched for geometries that cross
the antimeridian. Polygons are checked for validity (GEOS) in vectorised calls too; the few
features that are invalid or cross ±180 take a slow path through shapely.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from geotasks.errors import InputError
from geotasks.geo.antimeridian import WRAP_JUMP_DEG, split, unwrap
from geotasks.geo.batch import BatchBuilder, GeometryBatch, polygon_validity, to_shapely
from geotasks.geo.geojson import FeatureCollectionWriter
from geotasks.geo.limits import GeoLimits
from geotasks.geo.reading import Layer

logger = logging.getLogger(__name__)

#: Features per batch: enough to amortise numpy's per-call cost, few enough to stay in cache.
BATCH_FEATURES = 1024

#: Vertices per batch, so that a batch of very large geometries stays small in memory too.
BATCH_POSITIONS = 256 * 1024

#: Geometry types checked for validity.
POLYGONAL = frozenset({"Polygon", "MultiPolygon"})


@dataclass
class LonLatBatch:
    """A run of features with their geometries in WGS84 lon/lat.

    Parameters:
      ids: Feature ids (integers for shapefiles).
      properties: One mapping per feature.
      geometries: The geometries, in lon/lat, as flat arrays.
      crossing: For each feature, whether it crosses the antimeridian (its longitudes jump by
        about 360°) or lies beyond ±180; these need :func:`unwrap` and :func:`split`.
    """

    ids: list[Any]
    properties: list[dict[str, Any]]
    geometries: GeometryBatch
    crossing: npt.NDArray[np.bool_]


def read_batches(layer: Layer, *, limits: GeoLimits, limit: int | None) -> Iterator[LonLatBatch]:
    """Stream a layer as lon/lat batches.

    Parameters:
      layer: The opened layer.
      limits: The vertex limit applies to each geometry.
      limit: Stop after this many features.

    Returns:
      An iterator of batches.

    Raises:
      InputError: If a geometry has too many vertices, an unsupported type, or coordinates
        that cannot be transformed to WGS84.
    """
    builder = BatchBuilder(layer.label)
    ids: list[Any] = []
    properties: list[dict[str, Any]] = []
    # A shapefile's geometries all have the dimension of its shape type: checking the first
    # of each batch is enough. Other sources may mix 2D and 3D, so every one is checked.
    check_every = not layer.uniform_dims
    select = layer.select_fields
    add = builder.add
    for feature in layer.features(limit):
        geometry = feature.geometry
        if check_every or not builder.dims:
            dims = builder.dims_of(geometry)
            if dims:
                if builder.dims and dims != builder.dims:
                    yield _finish(layer, limits, builder, ids, properties)
                    ids, properties = [], []
                builder.dims = dims
        add(geometry)
        fid = feature.id
        ids.append(int(fid) if fid.isdigit() else fid)
        values = feature.properties
        # fiona's Properties mapping copies slowly (its mapping protocol is Python code,
        # about 6 µs a feature); its backing dict is new for each feature and safe to keep.
        values = getattr(values, "_data", None) or dict(values)
        properties.append(values if select is None else {name: values[name] for name in select})
        if len(ids) >= BATCH_FEATURES or builder.position_count >= BATCH_POSITIONS:
            yield _finish(layer, limits, builder, ids, properties)
            ids, properties = [], []
    if ids:
        yield _finish(layer, limits, builder, ids, properties)


def write_layer(
    layer: Layer,
    writer: FeatureCollectionWriter,
    *,
    limits: GeoLimits,
    repair: bool,
    limit: int | None,
) -> None:
    """Write every feature of ``layer`` as GeoJSON (the whole of ``shapefile_to_geojson``).

    GEOS releases the GIL, so each batch's polygons are checked in a helper thread while the
    next batch is read: validity then costs little wall time.

    Parameters:
      layer: The opened layer.
      writer: The collection being written.
      limits: Feature and vertex limits.
      repair: Make invalid polygons valid (keeping polygonal parts) instead of failing.
      limit: Stop after this many features.

    Raises:
      InputError: If a polygon is invalid and ``repair`` is false, or the data is bad.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="geotasks-validity") as pool:
        pending: tuple[LonLatBatch, Future[dict[int, str]]] | None = None
        for chunk in read_batches(layer, limits=limits, limit=limit):
            polygons = [
                index
                for index, kind in enumerate(chunk.geometries.types)
                if kind in POLYGONAL and not chunk.crossing[index]
            ]
            checked = pool.submit(polygon_validity, chunk.geometries, polygons)
            if pending is not None:
                _write_checked(layer.label, writer, *pending, repair=repair)
            pending = chunk, checked
        if pending is not None:
            _write_checked(layer.label, writer, *pending, repair=repair)


def _write_checked(
    label: str,
    writer: FeatureCollectionWriter,
    chunk: LonLatBatch,
    checked: Future[dict[int, str]],
    *,
    repair: bool,
) -> None:
    batch = chunk.geometries
    replacements: dict[int, BaseGeometry | None] = {}
    for index in np.flatnonzero(chunk.crossing).tolist():
        shape = checked_shape(label, chunk, index, repair=repair, unwrapped=True)
        replacements[index] = None if shape is None else split(shape)
    for index, reason in checked.result().items():
        if not repair:
            raise _invalid(label, chunk.ids[index], reason)
        replacements[index] = make_polygonal_valid(to_shapely(batch, index, lenient=True))
    writer.write_batch(chunk.ids, chunk.properties, batch, replacements)


def checked_shape(
    label: str, chunk: LonLatBatch, index: int, *, repair: bool, unwrapped: bool
) -> BaseGeometry | None:
    """One feature as a valid shapely geometry, continuous across the antimeridian.

    Parameters:
      label: The dataset's name, for messages.
      chunk: The batch holding the feature.
      index: The feature's index in the batch.
      repair: Make an invalid polygon valid instead of failing.
      unwrapped: Remove 360° jumps (for features that cross the antimeridian).

    Returns:
      The geometry (``None`` for a null geometry, or a polygon that repair emptied).

    Raises:
      InputError: If a polygon is invalid and ``repair`` is false.
    """
    batch = chunk.geometries
    try:
        geometry: BaseGeometry | None = to_shapely(batch, index, lenient=repair)
    except (ValueError, shapely.errors.GEOSException) as exc:
        raise _invalid(label, chunk.ids[index], str(exc)) from exc
    if geometry is None:
        return None
    if unwrapped:
        geometry = unwrap(geometry)
    if batch.types[index] in POLYGONAL and not geometry.is_valid:
        if not repair:
            raise _invalid(label, chunk.ids[index], str(shapely.is_valid_reason(geometry)))
        return make_polygonal_valid(geometry)
    return geometry


def make_polygonal_valid(geometry: BaseGeometry | None) -> BaseGeometry | None:
    """Repair a polygon, keeping only its polygonal parts (``None`` if nothing is left).

    Parameters:
      geometry: An invalid Polygon or MultiPolygon.

    Returns:
      A valid Polygon or MultiPolygon, or ``None``.
    """
    if geometry is None:
        return None
    repaired = shapely.make_valid(geometry, method="structure", keep_collapsed=False)
    polygons = [part for part in shapely.get_parts(repaired) if part.geom_type == "Polygon"]
    if not polygons:
        return None
    return polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)


def _finish(
    layer: Layer,
    limits: GeoLimits,
    builder: BatchBuilder,
    ids: list[Any],
    properties: list[dict[str, Any]],
) -> LonLatBatch:
    batch = builder.build()
    too_big = np.flatnonzero(batch.vertex_counts() > limits.max_vertices)
    if len(too_big):
        raise InputError(
            f"{layer.label}: feature {ids[int(too_big[0])]} has more than {limits.max_vertices} "
            "vertices; simplify it first"
        )
    source = layer.source_crs
    coords = batch.coords
    # The CRS check reads the header's bounds, which need not agree with the records: an
    # infinite or NaN coordinate in a record would otherwise come out as GeoJSON ``null``.
    unreadable = ~np.isfinite(coords[:, :2]).all(axis=1)
    if unreadable.any():
        feature = _owner(batch, int(np.flatnonzero(unreadable)[0]))
        raise InputError(
            f"{layer.label}: feature {ids[feature]} has coordinates that are not finite "
            "numbers (infinite or NaN); the file is damaged"
        )
    if source.to_lonlat is not None and len(coords):
        lon, lat = source.to_lonlat.transform(coords[:, 0], coords[:, 1])
        coords[:, 0], coords[:, 1] = lon, lat
        broken = ~np.isfinite(coords[:, :2]).all(axis=1)
        if broken.any():
            feature = _owner(batch, int(np.flatnonzero(broken)[0]))
            raise InputError(
                f"{layer.label}: feature {ids[feature]} has coordinates that cannot be "
                f"transformed from {source.name} to WGS84; is the .prj right? Pass "
                "source_crs= to override it"
            )
    return LonLatBatch(
        ids=ids,
        properties=properties,
        geometries=batch,
        crossing=_crossing(batch, wrapped=not source.is_geographic),
    )


def _crossing(batch: GeometryBatch, *, wrapped: bool) -> npt.NDArray[np.bool_]:
    crossing = np.zeros(len(batch), dtype=bool)
    lon = batch.coords[:, 0]
    if not len(lon):
        return crossing
    if wrapped:
        # A jump between the last vertex of a sequence and the first of the next is no jump.
        jumps = np.abs(np.diff(lon)) > WRAP_JUMP_DEG
        jumps[batch.seq_offsets[1:-1][batch.seq_offsets[1:-1] > 0] - 1] = False
        points = np.flatnonzero(jumps)
    else:
        points = np.flatnonzero((lon < -180.0) | (lon > 180.0))
    if len(points):
        starts = batch.seq_offsets[batch.feature_offsets[:-1]]
        crossing[np.unique(np.searchsorted(starts, points, side="right") - 1)] = True
    return crossing


def _owner(batch: GeometryBatch, row: int) -> int:
    starts = batch.seq_offsets[batch.feature_offsets[:-1]]
    return int(np.searchsorted(starts, row, side="right") - 1)


def _invalid(label: str, fid: Any, reason: str) -> InputError:
    return InputError(
        f"{label}: feature {fid} has an invalid polygon ({reason}); fix the data or pass "
        "repair=True"
    )
