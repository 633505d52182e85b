"""From a layer's features to checked lon/lat batches, and from there to GeoJSON.

Each batch is reprojected to WGS84 in one vectorised call, checked against the vertex limit
and for coordinates the transform could not handle, and searched for geometries that cross
the antimeridian. Polygons are checked for validity (GEOS) in vectorised calls too; the few
features that are invalid or cross ±180 take a slow path through shapely.

Writing GeoJSON is pipelined: while GEOS checks one batch's polygons in a helper thread (it
releases the GIL), the main thread renders that batch's text and reads the next batch; a
batch's text is written once its check has come back clean.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from geotasks.errors import InputError
from geotasks.geo.antimeridian import WRAP_JUMP_DEG, split, unwrap
from geotasks.geo.batch import (
    BatchBuilder,
    GeometryBatch,
    invalid_reasons,
    nonempty,
    polygon_shapes,
    to_shapely,
    validity_one_by_one,
)
from geotasks.geo.geojson import FeatureCollectionWriter, encode_properties
from geotasks.geo.limits import GeoLimits
from geotasks.geo.reading import Layer
from geotasks.geo.validity import InvalidGeometries, valid_on_grid

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
      properties: One mapping per feature, or its JSON text (``bytes``) when the batches
        were read with ``properties_as_json=True``.
      geometries: The geometries, in lon/lat, as flat arrays.
      crossing: For each feature, whether it crosses the antimeridian (its longitudes jump by
        about 360°) or lies beyond ±180; these need :func:`unwrap` and :func:`split`.
    """

    ids: list[Any]
    properties: list[Any]
    geometries: GeometryBatch
    crossing: npt.NDArray[np.bool_]


def read_batches(
    layer: Layer,
    *,
    limits: GeoLimits,
    limit: int | None,
    properties_as_json: bool = False,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[LonLatBatch]:
    """Stream a layer as lon/lat batches.

    Parameters:
      layer: The opened layer.
      limits: The vertex limit applies to each geometry.
      limit: Stop after this many features.
      properties_as_json: Encode each feature's properties as JSON as soon as it is read
        (for GeoJSON output: no dict outlives its feature, which spares the garbage collector).
      start: Begin at record ``start`` of an unfiltered shapefile.
      stop: End before record ``stop`` of an unfiltered shapefile.

    Returns:
      An iterator of batches.

    Raises:
      InputError: If a geometry has too many vertices, an unsupported type, or coordinates
        that cannot be transformed to WGS84.
    """
    builder = BatchBuilder(layer.label)
    ids: list[Any] = []
    properties: list[Any] = []
    # A shapefile's geometries all have the dimension of its shape type: checking the first
    # of each batch is enough. Other sources may mix 2D and 3D, so every one is checked.
    check_every = not layer.uniform_dims
    select = layer.select_fields
    add = builder.add
    for feature in layer.features(limit, start=start, stop=stop):
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
        if select is not None:
            values = {name: values[name] for name in select}
        properties.append(encode_properties(values) if properties_as_json else values)
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
    invalid: InvalidGeometries,
    limit: int | None,
    start: int = 0,
    stop: int | None = None,
    between_batches: Callable[[], None] | None = None,
) -> None:
    """Write the features of ``layer`` as GeoJSON, in one process (see also
    :func:`geotasks.geo.parallel.write_layer_split`).

    Parameters:
      layer: The opened layer.
      writer: The collection being written.
      limits: Feature and vertex limits.
      invalid: What to do with invalid polygons; counts those found.
      limit: Stop after this many features.
      start: Begin at record ``start`` of an unfiltered shapefile.
      stop: End before record ``stop`` of an unfiltered shapefile.
      between_batches: Called after each batch is read; what it raises stops the writing.

    Raises:
      InputError: If a polygon is invalid and the policy is to fail, or the data is bad.
    """
    label = layer.label
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="geotasks-validity") as pool:
        pending: _Rendered | None = None
        batches = read_batches(
            layer, limits=limits, limit=limit, properties_as_json=True, start=start, stop=stop
        )
        for chunk in batches:
            if between_batches is not None:
                between_batches()
            # The polygons are checked as they will be written: rounded to the output's
            # decimals, which can make a valid ring touch itself. Rendering rounds them again,
            # which changes nothing. What reads the coordinates comes before rendering, which
            # re-orients them in place: the polygons to check, the split of features crossing
            # ±180, and (if invalid polygons are to be repaired) a copy.
            coords = chunk.geometries.coords
            np.round(coords, writer.precision, out=coords)
            checked = _check_polygons(pool, chunk)
            splits = {
                index: checked_shape(label, chunk, index, invalid=invalid, unwrapped=True)
                for index in np.flatnonzero(chunk.crossing).tolist()
            }
            original = None
            if invalid.repair:
                original = replace(chunk.geometries, coords=chunk.geometries.coords.copy())
            texts = writer.geometry_texts(chunk.geometries)
            for index, shape in splits.items():
                texts[index] = writer.geometry_text(None if shape is None else split(shape))
            if pending is not None:
                pending.write(label, writer, invalid)
            pending = _Rendered(chunk, original, texts, checked)
        if pending is not None:
            pending.write(label, writer, invalid)


@dataclass
class _Rendered:
    """A batch rendered as text, waiting for its polygons' validity check."""

    chunk: LonLatBatch
    original: GeometryBatch | None
    texts: list[bytes]
    checked: Future[dict[int, str]]

    def write(
        self, label: str, writer: FeatureCollectionWriter, invalid: InvalidGeometries
    ) -> None:
        chunk, texts = self.chunk, self.texts
        for index, reason in self.checked.result().items():
            invalid.found(label, chunk.ids[index], reason)
            if self.original is None:
                continue
            shape = to_shapely(self.original, index, lenient=True)
            # Snapped to the output's grid: rounding the repaired polygon must not break it.
            repaired = valid_on_grid(make_polygonal_valid(shape), writer.precision)
            texts[index] = writer.geometry_text(repaired)
        writer.write_texts(chunk.ids, chunk.properties, texts)


def _check_polygons(pool: ThreadPoolExecutor, chunk: LonLatBatch) -> Future[dict[int, str]]:
    """Start checking a batch's polygons (except those crossing ±180, checked on their own).

    The shapely geometries are built here; only GEOS's check, which releases the GIL, runs
    in ``pool``. A helper thread that had to take the GIL back for each numpy call would
    wait up to a switch interval (5 ms) every time, and fall far behind.
    """
    batch = chunk.geometries
    polygonal = np.fromiter((kind in POLYGONAL for kind in batch.types), bool, len(batch))
    candidates = nonempty(batch, np.flatnonzero(polygonal & ~chunk.crossing))
    shapes = polygon_shapes(batch, candidates)
    if shapes is None:
        done: Future[dict[int, str]] = Future()
        done.set_result(validity_one_by_one(batch, candidates))
        return done
    return pool.submit(invalid_reasons, shapes, candidates)


def lonlat_shapes(
    label: str, chunk: LonLatBatch, *, invalid: InvalidGeometries, wrapped: bool
) -> npt.NDArray[np.object_]:
    """Every feature of a batch as a shapely geometry, as :func:`checked_shape` gives it.

    The batch's 2D polygons are built in one vectorised call and checked in another; only the
    other features (invalid polygons, points, lines, 3D geometries, those crossing ±180) are
    built one by one, by :func:`checked_shape`.

    Parameters:
      label: The dataset's name, for messages.
      chunk: The batch.
      invalid: What to do with an invalid polygon; counts it.
      wrapped: Whether the source's longitudes wrap at ±180 (a projected source), so that a
        feature marked as crossing must be unwrapped.

    Returns:
      One geometry (or ``None``) per feature, in lon/lat, continuous across the antimeridian.

    Raises:
      InputError: If a polygon is invalid and the policy is to fail.
    """
    batch = chunk.geometries
    count = len(batch)
    shapes = np.empty(count, dtype=object)
    slow = np.ones(count, dtype=bool)
    if batch.coords.shape[1] == 2:
        polygonal = np.fromiter((kind in POLYGONAL for kind in batch.types), bool, count)
        candidates = nonempty(batch, np.flatnonzero(polygonal & ~chunk.crossing))
        built = polygon_shapes(batch, candidates)
        if built is not None and len(candidates):
            # A batch holding a MultiPolygon is built as MultiPolygons only: its Polygons are
            # their one part.
            polygons = np.fromiter(
                (batch.types[index] == "Polygon" for index in candidates.tolist()),
                bool,
                len(candidates),
            )
            multiple = shapely.get_type_id(built) == shapely.GeometryType.MULTIPOLYGON
            if (polygons & multiple).any():
                built[polygons & multiple] = shapely.get_geometry(built[polygons & multiple], 0)
            valid = shapely.is_valid(built)
            shapes[candidates[valid]] = built[valid]
            slow[candidates[valid]] = False
    for index in np.flatnonzero(slow).tolist():
        shapes[index] = checked_shape(
            label,
            chunk,
            index,
            invalid=invalid,
            unwrapped=wrapped and bool(chunk.crossing[index]),
        )
    return shapes


def checked_shape(
    label: str, chunk: LonLatBatch, index: int, *, invalid: InvalidGeometries, unwrapped: bool
) -> BaseGeometry | None:
    """One feature as a shapely geometry, continuous across the antimeridian.

    An invalid polygon is counted in ``invalid`` and, under its policy, kept or repaired. One
    that crosses ±180° is repaired whatever the policy: it is cut there, and GEOS cannot cut
    an invalid polygon.

    Parameters:
      label: The dataset's name, for messages.
      chunk: The batch holding the feature.
      index: The feature's index in the batch.
      invalid: What to do with an invalid polygon; counts it.
      unwrapped: Remove 360° jumps (for features that cross the antimeridian).

    Returns:
      The geometry (``None`` for a null geometry, or a polygon that repair emptied).

    Raises:
      InputError: If a polygon is invalid and the policy is to fail.
    """
    batch = chunk.geometries
    reason = None
    try:
        geometry: BaseGeometry | None = to_shapely(batch, index)
    except (ValueError, shapely.errors.GEOSException) as exc:
        # A ring of fewer than 4 positions: shapely builds the polygon without it.
        reason = str(exc)
        geometry = to_shapely(batch, index, lenient=True)
    if geometry is not None and unwrapped:
        geometry = unwrap(geometry)
    if geometry is not None and batch.types[index] in POLYGONAL and not geometry.is_valid:
        reason = reason or str(shapely.is_valid_reason(geometry))
        if invalid.repair or unwrapped:
            geometry = make_polygonal_valid(geometry)
    if reason is not None:
        invalid.found(label, chunk.ids[index], reason)
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
