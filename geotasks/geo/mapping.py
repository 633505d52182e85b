"""The operations that map each feature to a new one, run a batch of features at a time.

Buffer, simplify, clip and measure change each feature on its own. Per feature, the work in
Python (a frame looked up and applied, a shapely geometry built, checked and written) costs far
more than GEOS's: so each batch read by :func:`~geotasks.geo.streaming.read_batches` goes
through vectorised calls only. Its polygons are built and checked in two calls
(:func:`~geotasks.geo.streaming.lonlat_shapes`), projected to their own frames in metres in
one (:class:`~geotasks.geo.frames.LocalFrames`; simplify projects small polygons on their
tangent planes and puts their own lon/lat back), buffered or simplified in one (shapely 2's
array functions), brought back in one, and their GeoJSON written as one batch
(:func:`finished_texts`). The few features the vectorised path does not handle (crossing the
antimeridian, near a pole, 3D, GEOS failing on the batch) go through the operation's
one-feature path, the same as before. Either way a feature gets the same frame, centred on
itself.

The operations themselves (buffer, simplify, clip, measure) are in
:mod:`geotasks.geo.feature_operations`. An operation is a small frozen dataclass, so that it
pickles: a large shapefile is split between the job's process and helper processes
(:func:`~geotasks.geo.parallel.write_layer_split`), each running :func:`map_layer` on its range
of records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from geotasks.errors import InputError
from geotasks.geo.antimeridian import split
from geotasks.geo.batch import EXTERIOR, HOLE, GeometryBatch
from geotasks.geo.frames import (
    Shapes,
)
from geotasks.geo.geojson import FeatureCollectionWriter
from geotasks.geo.limits import GeoLimits
from geotasks.geo.reading import Layer
from geotasks.geo.streaming import (
    POLYGONAL,
    LonLatBatch,
    lonlat_shapes,
    make_polygonal_valid,
    read_batches,
)
from geotasks.geo.validity import InvalidGeometries, valid_on_grid

#: Features an operation maps at a time: what it makes of them (a buffer has several times the
#: vertices of its input) is held in memory until written.
SLICE_FEATURES = 256

#: Input positions an operation maps at a time (so a slice of large geometries stays small).
SLICE_POSITIONS = 8_192

#: What an operation makes of a batch: which features are kept (``None``: all), their new
#: geometries in lon/lat (continuous across ±180) and their properties as JSON.
Mapped = tuple[npt.NDArray[np.intp] | None, Shapes, Sequence[bytes]]

POLYGON_TYPE_ID = int(shapely.GeometryType.POLYGON)
MULTIPOLYGON_TYPE_ID = int(shapely.GeometryType.MULTIPOLYGON)


@dataclass(frozen=True)
class BatchOperation:
    """What an operation does to each feature (subclasses say what)."""

    #: Whether the features' properties are read as JSON (they pass through unchanged).
    @property
    def properties_as_json(self) -> bool:
        return True

    def for_layer(self, layer: Layer) -> BatchOperation:
        """The operation as it applies to ``layer`` (which fields it has, say)."""
        return self

    def map_batch(self, label: str, chunk: LonLatBatch, shapes: Shapes) -> Mapped:
        """Map a batch's features (``shapes``, one per feature, ``None`` for null)."""
        raise NotImplementedError

    def map_one(self, fid: Any, geometry: BaseGeometry) -> BaseGeometry | None:
        """Map one feature's (non-null) geometry; the path of features the batch path leaves."""
        raise NotImplementedError


def map_layer(
    layer: Layer,
    writer: FeatureCollectionWriter,
    *,
    operation: BatchOperation,
    limits: GeoLimits,
    invalid: InvalidGeometries,
    limit: int | None,
    start: int = 0,
    stop: int | None = None,
    between_batches: Callable[[], None] | None = None,
) -> None:
    """Run ``operation`` on the features of ``layer`` and write what it makes of them.

    The signature of :func:`~geotasks.geo.streaming.write_layer`, with the operation: either
    renders a range of records in :func:`~geotasks.geo.parallel.write_layer_split`.

    Parameters:
      layer: The opened layer.
      writer: The collection being written.
      operation: What to do with each feature.
      limits: Feature and vertex limits.
      invalid: What to do with invalid polygons (repaired unless strict); counts them.
      limit: Stop after this many features.
      start: Begin at record ``start`` of an unfiltered shapefile.
      stop: End before record ``stop`` of an unfiltered shapefile.
      between_batches: Called after each batch is read; what it raises stops the work.

    Raises:
      InputError: If the data is bad, an argument does not suit a feature, or GEOS fails on
        a feature (the message names it).
    """
    label = layer.label
    wrapped = not layer.source_crs.is_geographic
    operation = operation.for_layer(layer)
    batches = read_batches(
        layer,
        limits=limits,
        limit=limit,
        properties_as_json=operation.properties_as_json,
        start=start,
        stop=stop,
    )
    for batch in batches:
        if between_batches is not None:
            between_batches()
        all_shapes = lonlat_shapes(label, batch, invalid=invalid, wrapped=wrapped)
        for start_at, stop_at in _slices(all_shapes):
            chunk = replace(
                batch,
                ids=batch.ids[start_at:stop_at],
                properties=batch.properties[start_at:stop_at],
            )
            shapes = all_shapes[start_at:stop_at]
            try:
                kept, geometries, properties = operation.map_batch(label, chunk, shapes)
            except shapely.errors.GEOSException:
                # Find the feature GEOS fails on, to name it.
                kept, geometries, properties = _one_by_one(operation, label, chunk, shapes)
            ids = chunk.ids if kept is None else [chunk.ids[index] for index in kept.tolist()]
            writer.write_texts(ids, properties, finished_texts(writer, geometries, limits))


def _slices(shapes: Shapes) -> list[tuple[int, int]]:
    """Cut a batch into runs of at most :data:`SLICE_FEATURES` features and about
    :data:`SLICE_POSITIONS` positions (at least one feature each)."""
    ends = np.cumsum(shapely.get_num_coordinates(shapes))
    slices = []
    start = 0
    while start < len(shapes):
        below = int(np.searchsorted(ends, (ends[start - 1] if start else 0) + SLICE_POSITIONS))
        stop = min(start + SLICE_FEATURES, len(shapes), max(below, start + 1))
        slices.append((start, stop))
        start = stop
    return slices


def finished_texts(
    writer: FeatureCollectionWriter, geometries: Shapes, limits: GeoLimits
) -> list[bytes]:
    """The GeoJSON of an operation's results: split at ±180, on the output's grid, valid.

    What :func:`~geotasks.geo.validity.valid_on_grid` does to one geometry, vectorised: 2D
    polygons are rounded to the output's decimals in one call and checked in another; only
    those found invalid then (and the other types) are made valid, if they were not already
    (edges that touch in metres can cross once a projection's curvature is undone), and
    snapped by GEOS one by one.
    The polygons' text is written as one batch (:meth:`FeatureCollectionWriter.geometry_texts`).

    Parameters:
      writer: The collection being written (its precision applies).
      geometries: One lon/lat geometry (or ``None``) per feature.
      limits: The vertex limit applies to each geometry.

    Returns:
      One JSON text per geometry.

    Raises:
      InputError: If a geometry has more vertices than the limit.
    """
    count = len(geometries)
    texts: list[bytes] = [b"null"] * count
    present = ~(shapely.is_missing(geometries) | shapely.is_empty(geometries))
    too_big = np.flatnonzero(shapely.get_num_coordinates(geometries) > limits.max_vertices)
    if len(too_big):
        raise InputError(
            f"a result geometry has more than {limits.max_vertices} vertices; use a smaller "
            "area or simplify the data first"
        )
    bounds = shapely.bounds(geometries)
    with np.errstate(invalid="ignore"):
        beyond = present & ((bounds[:, 0] < -180.0) | (bounds[:, 2] > 180.0))
    for index in np.flatnonzero(beyond).tolist():
        geometries[index] = split(geometries[index])
    kinds = shapely.get_type_id(geometries)
    fast = (
        present
        & ((kinds == POLYGON_TYPE_ID) | (kinds == MULTIPOLYGON_TYPE_ID))
        & ~shapely.has_z(geometries)
    )
    picked = np.flatnonzero(fast)
    precision = writer.precision
    rounded = shapely.transform(geometries[picked], lambda xy: np.round(xy, precision))
    valid = shapely.is_valid(rounded)
    if valid.any():
        batch_texts = writer.geometry_texts(polygons_batch(rounded[valid]))
        for index, text in zip(picked[valid].tolist(), batch_texts, strict=True):
            texts[index] = text
    slow = present.copy()
    slow[picked[valid]] = False
    for index in np.flatnonzero(slow).tolist():
        geometry = geometries[index]
        if geometry.geom_type in POLYGONAL and not geometry.is_valid:
            geometry = make_polygonal_valid(geometry)
        texts[index] = writer.geometry_text(valid_on_grid(geometry, precision))
    return texts


def multipolygon_texts(
    writer: FeatureCollectionWriter, parts: Shapes, limits: GeoLimits
) -> Iterator[bytes] | None:
    """The GeoJSON of a MultiPolygon given by its parts, a few hundred at a time, on the grid.

    For a geometry of millions of vertices (what dissolve makes), whose text, written as
    :func:`finished_texts` does, would take several times its own size in memory, and whose
    MultiPolygon would be one more copy. The polygons are rounded and written
    :data:`SLICE_FEATURES` at a time; one that rounding spoils is snapped by GEOS on its own.

    Parameters:
      writer: The collection being written (its precision applies).
      parts: Valid 2D Polygons in lon/lat, within -180..180, no two of which meet.
      limits: The vertex limit applies to them all.

    Returns:
      The pieces of its JSON, or ``None`` if two parts lie so close that rounding could make
      them meet (then write their MultiPolygon with :func:`finished_texts`, which snaps it
      as a whole).

    Raises:
      InputError: If they have more vertices than the limit.
    """
    if int(shapely.get_num_coordinates(parts).sum()) > limits.max_vertices:
        raise InputError(
            f"a result geometry has more than {limits.max_vertices} vertices; use a smaller "
            "area or simplify the data first"
        )
    precision = writer.precision
    # Rounding moves a vertex by at most half a unit of the last decimal on each axis.
    reach = 1.5 * 10.0**-precision
    left, right = shapely.STRtree(parts).query(parts, predicate="dwithin", distance=reach)
    if (left != right).any():
        return None

    def pieces() -> Iterator[bytes]:
        head = len(b'{"type":"Polygon","coordinates":')
        yield b'{"type":"MultiPolygon","coordinates":['
        for start in range(0, len(parts), SLICE_FEATURES):
            original = parts[start : start + SLICE_FEATURES]
            on_grid = shapely.transform(original, lambda xy: np.round(xy, precision))
            spoilt = np.flatnonzero(~shapely.is_valid(on_grid))
            if len(spoilt):
                snapped = [valid_on_grid(part, precision) for part in original[spoilt]]
                on_grid = np.concatenate(
                    [np.delete(on_grid, spoilt), *(shapely.get_parts(s) for s in snapped if s)]
                )
                on_grid = on_grid[shapely.get_type_id(on_grid) == POLYGON_TYPE_ID]
            texts = writer.geometry_texts(polygons_batch(on_grid))
            yield (b"," if start else b"") + b",".join(text[head:-1] for text in texts)
        yield b"]}"

    return pieces()


def polygons_batch(shapes: Shapes) -> GeometryBatch:
    """2D Polygons and MultiPolygons as a :class:`GeometryBatch`, in a few vectorised calls.

    Parameters:
      shapes: Non-empty 2D Polygons and MultiPolygons.

    Returns:
      Their batch (rings as given: the writer orients them).
    """
    count = len(shapes)
    parts, part_owner = shapely.get_parts(shapes, return_index=True)
    ring_counts = 1 + shapely.get_num_interior_rings(parts)
    rings = shapely.get_rings(parts)
    lengths = shapely.get_num_coordinates(rings)
    coords = shapely.get_coordinates(rings)
    seq_offsets = _offsets(lengths)
    seq_kinds = np.full(len(rings), HOLE, dtype=np.int8)
    seq_kinds[_offsets(ring_counts)[:-1]] = EXTERIOR
    part_counts = np.bincount(part_owner, minlength=count)
    rings_per_feature = np.bincount(part_owner, weights=ring_counts, minlength=count)
    feature_offsets = _offsets(rings_per_feature.astype(np.intp))
    part_offsets = _offsets(part_counts).tolist()
    counts_list = ring_counts.tolist()
    kinds = shapely.get_type_id(shapes).tolist()
    types: list[str | None] = []
    layouts: list[Any] = []
    for index, kind in enumerate(kinds):
        first = part_offsets[index]
        if kind == POLYGON_TYPE_ID:
            types.append("Polygon")
            layouts.append(counts_list[first])
        else:
            types.append("MultiPolygon")
            layouts.append(counts_list[first : part_offsets[index + 1]])
    return GeometryBatch(
        coords=coords,
        seq_offsets=seq_offsets,
        seq_kinds=seq_kinds,
        feature_offsets=feature_offsets,
        types=types,
        layouts=layouts,
    )


def _offsets(lengths: Any) -> npt.NDArray[np.intp]:
    offsets = np.zeros(len(lengths) + 1, dtype=np.intp)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _one_by_one(
    operation: BatchOperation, label: str, chunk: LonLatBatch, shapes: Shapes
) -> Mapped:
    """Map a batch feature by feature (a batch GEOS failed on): the failing one is named."""
    kept: list[int] = []
    geometries: list[BaseGeometry | None] = []
    properties: list[bytes] = []
    for index in range(len(shapes)):
        one = replace(
            chunk, ids=chunk.ids[index : index + 1], properties=chunk.properties[index : index + 1]
        )
        try:
            picked, mapped, texts = operation.map_batch(label, one, shapes[index : index + 1])
        except shapely.errors.GEOSException as exc:
            raise InputError(
                f"{label}: feature {chunk.ids[index]} cannot be processed: {exc}"
            ) from exc
        if picked is None or len(picked):
            kept.append(index)
            geometries.append(mapped[0])
            properties.append(texts[0])
    result = np.empty(len(geometries), dtype=object)
    result[:] = geometries
    return np.array(kept, dtype=np.intp), result, properties
