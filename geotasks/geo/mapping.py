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

An operation is a small frozen dataclass, so that it pickles: a large shapefile is split
between the job's process and helper processes (:func:`~geotasks.geo.parallel.write_layer_split`),
each running :func:`map_layer` on its range of records.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import shapely
from shapely.geometry.base import BaseGeometry

from geotasks.errors import InputError
from geotasks.geo.antimeridian import split
from geotasks.geo.batch import EXTERIOR, HOLE, GeometryBatch
from geotasks.geo.frames import (
    GEOD,
    LocalFrames,
    Shapes,
    fits_local_frame,
    fits_tangent_plane,
    tangent_plane,
)
from geotasks.geo.geojson import FeatureCollectionWriter, encode_properties
from geotasks.geo.limits import GeoLimits
from geotasks.geo.metres import LocalMetres
from geotasks.geo.reading import Layer
from geotasks.geo.streaming import (
    POLYGONAL,
    LonLatBatch,
    lonlat_shapes,
    make_polygonal_valid,
    read_batches,
)
from geotasks.geo.validity import InvalidGeometries, valid_on_grid

#: Segments per quarter circle in buffers (16 keeps a circle's area within 0.2 %).
BUFFER_QUAD_SEGS = 16

#: Farthest a vertex may lie from its geometry's centre, in metres, for measures taken in the
#: geometry's AEQD frame: there areas are off by less than (s/R)²/6 (1e-7 at 5 km). Larger
#: geometries are measured on the ellipsoid by pyproj, exactly.
MEASURE_FRAME_MAX_M = 5_000.0

#: Features an operation maps at a time: what it makes of them (a buffer has several times the
#: vertices of its input) is held in memory until written.
SLICE_FEATURES = 256

#: Input positions an operation maps at a time (so a slice of large geometries stays small).
SLICE_POSITIONS = 8_192

#: What an operation makes of a batch: which features are kept (``None``: all), their new
#: geometries in lon/lat (continuous across ±180) and their properties as JSON.
Mapped = tuple[npt.NDArray[np.intp] | None, Shapes, Sequence[bytes]]

_POLYGON = int(shapely.GeometryType.POLYGON)
_MULTIPOLYGON = int(shapely.GeometryType.MULTIPOLYGON)


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
    fast = present & ((kinds == _POLYGON) | (kinds == _MULTIPOLYGON)) & ~shapely.has_z(geometries)
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
                on_grid = on_grid[shapely.get_type_id(on_grid) == _POLYGON]
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
        if kind == _POLYGON:
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


def _map_each(
    operation: BatchOperation, label: str, chunk: LonLatBatch, shapes: Shapes, indexes: Any
) -> None:
    """Replace ``shapes[i]`` by the operation's one-feature result, for each ``i`` given."""
    for index in np.asarray(indexes).tolist():
        geometry = shapes[index]
        if geometry is None:
            continue
        fid = chunk.ids[index]
        try:
            shapes[index] = operation.map_one(fid, geometry)
        except shapely.errors.GEOSException as exc:
            raise InputError(f"{label}: feature {fid} cannot be processed: {exc}") from exc


def _emptied(shapes: Shapes) -> Shapes:
    """``None`` in place of empty geometries."""
    shapes[shapely.is_empty(shapes)] = None
    return shapes


@dataclass(frozen=True)
class Buffer(BatchOperation):
    """Buffer by a distance in metres (negative: shrink polygons)."""

    distance_m: float

    def map_batch(self, label: str, chunk: LonLatBatch, shapes: Shapes) -> Mapped:
        if self.distance_m < 0:
            kinds = shapely.get_type_id(shapes)
            for index in np.flatnonzero(
                (kinds >= 0) & (kinds != _POLYGON) & (kinds != _MULTIPOLYGON)
            ):
                self._refuse(chunk.ids[int(index)], shapes[int(index)])
        fits = fits_local_frame(shapes, abs(self.distance_m))
        result = np.empty(len(shapes), dtype=object)
        picked = np.flatnonzero(fits)
        if len(picked):
            frames = LocalFrames(shapes[picked])
            # GEOS buffers an invalid polygon (one that projecting spoilt) into a valid one;
            # what comes back to lon/lat is made valid by finished_texts if it must be.
            metric = frames.to_metres(shapes[picked])
            buffered = shapely.buffer(metric, self.distance_m, quad_segs=BUFFER_QUAD_SEGS)
            result[picked] = _emptied(frames.to_lonlat(buffered))
        rest = ~fits & ~shapely.is_missing(shapes)
        result[rest] = shapes[rest]
        _map_each(self, label, chunk, result, np.flatnonzero(rest))
        return None, result, chunk.properties

    def map_one(self, fid: Any, geometry: BaseGeometry) -> BaseGeometry | None:
        if self.distance_m < 0 and geometry.geom_type not in POLYGONAL:
            self._refuse(fid, geometry)
        frame = LocalMetres(geometry)
        buffered = shapely.buffer(
            frame.to_metres(geometry), self.distance_m, quad_segs=BUFFER_QUAD_SEGS
        )
        if buffered.is_empty:
            return None
        return _lonlat_or_none(frame, buffered)

    @staticmethod
    def _refuse(fid: Any, geometry: BaseGeometry) -> None:
        raise InputError(
            f"feature {fid} is a {geometry.geom_type}: a negative distance_m shrinks "
            "polygons, and only polygons"
        )


@dataclass(frozen=True)
class Simplify(BatchOperation):
    """Simplify with a tolerance in metres (Douglas-Peucker)."""

    tolerance_m: float
    preserve_topology: bool

    def map_batch(self, label: str, chunk: LonLatBatch, shapes: Shapes) -> Mapped:
        fits = fits_local_frame(shapes)
        result = np.empty(len(shapes), dtype=object)
        small = fits & self._keeps_vertices(shapes) & fits_tangent_plane(shapes)
        if small.any():
            result[small] = _emptied(self._simplify_small(shapes[small]))
        picked = np.flatnonzero(fits & ~small)
        if len(picked):
            frames = LocalFrames(shapes[picked])
            # A polygon that projecting spoilt is made valid after simplifying, as every
            # polygon simplifying spoils; what comes back to lon/lat, by finished_texts.
            metric = frames.to_metres(shapes[picked])
            simpler = shapely.simplify(
                metric, self.tolerance_m, preserve_topology=self.preserve_topology
            )
            kinds = shapely.get_type_id(shapes[picked])
            polygonal = (kinds == _POLYGON) | (kinds == _MULTIPOLYGON)
            broken = np.flatnonzero(polygonal & ~shapely.is_valid(simpler))
            for index in broken.tolist():
                simpler[index] = make_polygonal_valid(simpler[index])
            simpler[shapely.is_missing(simpler)] = shapely.Polygon()
            result[picked] = _emptied(frames.to_lonlat(_emptied(simpler)))
        rest = ~fits & ~shapely.is_missing(shapes)
        result[rest] = shapes[rest]
        _map_each(self, label, chunk, result, np.flatnonzero(rest))
        return None, result, chunk.properties

    def _keeps_vertices(self, shapes: Shapes) -> npt.NDArray[np.bool_]:
        """Which geometries simplifying only drops vertices of (never adds one): polygons,
        with topology preserved (Douglas-Peucker may rebuild a ring that it spoils)."""
        kinds = shapely.get_type_id(shapes)
        polygonal: npt.NDArray[np.bool_] = (kinds == _POLYGON) | (kinds == _MULTIPOLYGON)
        return polygonal & self.preserve_topology

    def _simplify_small(self, shapes: Shapes) -> Shapes:
        """Simplify polygons a few km across on their tangent planes (see
        :func:`~geotasks.geo.frames.tangent_plane`), keeping their vertices' lon/lat exactly.

        Each vertex carries its index as its Z; the simplified polygons' vertices are a subset
        of the input's, so their Z says which lon/lat to put back: nothing is unprojected.
        """
        kind, lonlat, offsets = shapely.to_ragged_array(shapes)
        bounds = shapely.bounds(shapes)
        metric = tangent_plane(
            lonlat[:, 0],
            lonlat[:, 1],
            (bounds[:, 0] + bounds[:, 2]) / 2.0,
            (bounds[:, 1] + bounds[:, 3]) / 2.0,
            shapely.get_num_coordinates(shapes),
        )
        indexed = np.column_stack([metric, np.arange(len(lonlat), dtype=np.float64)])
        simpler = shapely.simplify(
            shapely.from_ragged_array(kind, indexed, offsets),
            self.tolerance_m,
            preserve_topology=True,
        )
        kind, kept, offsets = shapely.to_ragged_array(simpler, include_z=True)
        back = shapely.from_ragged_array(kind, lonlat[kept[:, 2].astype(np.intp)], offsets)
        # to_ragged_array makes every geometry a MultiPolygon when some are: a Polygon comes
        # back as one.
        polygons = (shapely.get_type_id(shapes) == _POLYGON) & (
            shapely.get_num_geometries(back) == 1
        )
        if kind == shapely.GeometryType.MULTIPOLYGON and polygons.any():
            back[polygons] = shapely.get_geometry(back[polygons], 0)
        result: Shapes = back
        return result

    def map_one(self, fid: Any, geometry: BaseGeometry) -> BaseGeometry | None:
        frame = LocalMetres(geometry)
        simpler: BaseGeometry | None = shapely.simplify(
            frame.to_metres(geometry), self.tolerance_m, preserve_topology=self.preserve_topology
        )
        if simpler is not None and geometry.geom_type in POLYGONAL and not simpler.is_valid:
            simpler = make_polygonal_valid(simpler)
        if simpler is None or simpler.is_empty:
            return None
        return _lonlat_or_none(frame, simpler)


@dataclass(frozen=True)
class Clip(BatchOperation):
    """Cut to an area in lon/lat; features outside it, or cut to a lower dimension, are left out."""

    area: BaseGeometry

    def map_batch(self, label: str, chunk: LonLatBatch, shapes: Shapes) -> Mapped:
        area = self.area
        shapely.prepare(area)
        bounds = shapely.bounds(shapes)
        with np.errstate(invalid="ignore"):
            inside = (bounds[:, 0] >= -180.0) & (bounds[:, 2] <= 180.0)
        result = np.empty(len(shapes), dtype=object)
        hits = np.flatnonzero(inside & shapely.intersects(area, shapes))
        cut = shapely.intersection(shapes[hits], area)
        dimensions = shapely.get_dimensions(shapes[hits])
        kinds = shapely.get_type_id(cut)
        same = np.where(
            dimensions == 2,
            (kinds == _POLYGON) | (kinds == _MULTIPOLYGON),
            np.where(
                dimensions == 1,
                (kinds == int(shapely.GeometryType.LINESTRING))
                | (kinds == int(shapely.GeometryType.MULTILINESTRING)),
                (kinds == int(shapely.GeometryType.POINT))
                | (kinds == int(shapely.GeometryType.MULTIPOINT)),
            ),
        ) & ~shapely.is_empty(cut)
        result[hits] = cut
        for position in np.flatnonzero(~same).tolist():
            result[hits[position]] = _same_dimension(cut[position], int(dimensions[position]))
        rest = np.flatnonzero(~inside & ~shapely.is_missing(shapes))
        result[rest] = shapes[rest]
        _map_each(self, label, chunk, result, rest)
        kept = np.flatnonzero(~shapely.is_missing(result))
        properties = chunk.properties
        return kept, result[kept], [properties[index] for index in kept.tolist()]

    def map_one(self, fid: Any, geometry: BaseGeometry) -> BaseGeometry | None:
        inside = split(geometry)
        if not shapely.intersects(self.area, inside):
            return None
        return _same_dimension(
            shapely.intersection(inside, self.area), int(shapely.get_dimensions(inside))
        )


#: The properties :class:`Measure` adds (replacing any of the same names).
MEASURES = ("area_m2", "perimeter_m", "length_m")


@dataclass(frozen=True)
class Measure(BatchOperation):
    """Add geodesic area and perimeter (polygons) or length (lines) to the properties.

    Parameters:
      replaces: Whether the features have properties named as a measure, which the measures
        replace (their properties are then read as dicts, not JSON).
    """

    replaces: bool = False

    @property
    def properties_as_json(self) -> bool:
        return not self.replaces

    def for_layer(self, layer: Layer) -> Measure:
        return Measure(replaces=any(name in layer.fields for name in MEASURES))

    def map_batch(self, label: str, chunk: LonLatBatch, shapes: Shapes) -> Mapped:
        count = len(shapes)
        dimensions = shapely.get_dimensions(shapes)
        area = np.full(count, math.nan)
        perimeter = np.full(count, math.nan)
        fits = fits_local_frame(shapes) & (dimensions >= 1)
        picked = np.flatnonzero(fits)
        exact = ~fits
        if len(picked):
            frames = LocalFrames(shapes[picked])
            metric = frames.to_metres(shapes[picked])
            area[picked] = shapely.area(metric)
            perimeter[picked] = shapely.length(metric)
            exact[picked[frames.reach_m > MEASURE_FRAME_MAX_M]] = True
        texts: list[bytes] = []
        values = zip(dimensions.tolist(), area.tolist(), perimeter.tolist(), strict=True)
        for index, (dimension, area_m2, perimeter_m) in enumerate(values):
            if shapes[index] is None:
                # A null geometry has nothing to measure: its properties stay as they are.
                texts.append(self._with(chunk.properties[index], {}))
                continue
            if exact[index]:
                measures = _geodesic_measures(shapes[index])
            else:
                measures = {
                    "area_m2": area_m2 if dimension == 2 else None,
                    "perimeter_m": perimeter_m if dimension == 2 else None,
                    "length_m": perimeter_m if dimension == 1 else None,
                }
            texts.append(self._with(chunk.properties[index], measures))
        return None, shapes, texts

    def map_one(self, fid: Any, geometry: BaseGeometry) -> BaseGeometry | None:
        return geometry

    def _with(self, properties: Any, measures: dict[str, float | None]) -> bytes:
        if self.replaces:
            return encode_properties({**properties, **measures})
        if not measures:
            return bytes(properties)
        added = orjson.dumps(measures)
        if properties == b"{}":
            return added
        text: bytes = properties[:-1] + b"," + added[1:]
        return text


def _geodesic_measures(geometry: BaseGeometry) -> dict[str, float | None]:
    """Area and perimeter (or length) on the ellipsoid, exactly (pyproj)."""
    lonlat = split(geometry)
    measures: dict[str, float | None] = {"area_m2": None, "perimeter_m": None, "length_m": None}
    dimension = int(shapely.get_dimensions(lonlat))
    if dimension == 2:
        area, perimeter = GEOD.geometry_area_perimeter(shapely.orient_polygons(lonlat))
        measures["area_m2"], measures["perimeter_m"] = abs(area), perimeter
    elif dimension == 1:
        measures["length_m"] = GEOD.geometry_length(lonlat)
    return measures


def _lonlat_or_none(frame: LocalMetres, geometry: BaseGeometry) -> BaseGeometry | None:
    lonlat = frame.to_lonlat(geometry)
    return None if lonlat.is_empty else lonlat


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
