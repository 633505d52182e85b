"""Buffer, simplify, clip and measure: the operations that map each feature to a new one.

Each is a small frozen dataclass (so that it pickles to helper processes) with two paths: a
whole batch through shapely 2's array functions (``map_batch``), and one feature at a time
(``map_one``) for what the batch path does not take. :func:`~geotasks.geo.mapping.map_layer`
runs them; :mod:`geotasks.geo.mapping` says how.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import shapely
from shapely.geometry.base import BaseGeometry

from geotasks.errors import InputError
from geotasks.geo.antimeridian import split
from geotasks.geo.frames import (
    GEOD,
    LocalFrames,
    Shapes,
    fits_local_frame,
    fits_tangent_plane,
    tangent_plane,
)
from geotasks.geo.geojson import encode_properties
from geotasks.geo.mapping import (
    MULTIPOLYGON_TYPE_ID,
    POLYGON_TYPE_ID,
    BatchOperation,
    Mapped,
)
from geotasks.geo.metres import LocalMetres
from geotasks.geo.reading import Layer
from geotasks.geo.streaming import (
    POLYGONAL,
    LonLatBatch,
    make_polygonal_valid,
)

#: Segments per quarter circle in buffers (16 keeps a circle's area within 0.2 %).
BUFFER_QUAD_SEGS = 16

#: Farthest a vertex may lie from its geometry's centre, in metres, for measures taken in the
#: geometry's AEQD frame: there areas are off by less than (s/R)²/6 (1e-7 at 5 km). Larger
#: geometries are measured on the ellipsoid by pyproj, exactly.
MEASURE_FRAME_MAX_M = 5_000.0


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
                (kinds >= 0) & (kinds != POLYGON_TYPE_ID) & (kinds != MULTIPOLYGON_TYPE_ID)
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
            polygonal = (kinds == POLYGON_TYPE_ID) | (kinds == MULTIPOLYGON_TYPE_ID)
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
        polygonal: npt.NDArray[np.bool_] = (kinds == POLYGON_TYPE_ID) | (
            kinds == MULTIPOLYGON_TYPE_ID
        )
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
        polygons = (shapely.get_type_id(shapes) == POLYGON_TYPE_ID) & (
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
            (kinds == POLYGON_TYPE_ID) | (kinds == MULTIPOLYGON_TYPE_ID),
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
