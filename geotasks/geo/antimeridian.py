"""Geometries that cross the antimeridian, made valid RFC 7946 (section 3.1.9).

After a transform to lon/lat, a geometry that crosses ±180° jumps by about 360° between two
vertices. :func:`unwrap` makes it continuous again (longitudes may then pass 180);
:func:`split` cuts a continuous geometry into parts that each lie within -180..180.
A ring that goes around a pole is closed along that pole, so the cap it bounds is kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry.base import BaseGeometry

#: A jump in longitude (degrees) between two vertices that can only mean a wrap at ±180°.
WRAP_JUMP_DEG = 180.0


def unwrap(geometry: BaseGeometry) -> BaseGeometry:
    """Remove the 360° jumps of a geometry that crosses the antimeridian.

    Parameters:
      geometry: A lon/lat geometry straight out of a transform (longitudes in -180..180).

    Returns:
      The same geometry with continuous longitudes (possibly beyond ±180).
    """
    kind = geometry.geom_type
    if kind == "Polygon":
        return _unwrap_polygon(geometry)
    if kind in ("LineString", "LinearRing"):
        return shapely.LineString(_unwrap_coords(np.asarray(geometry.coords)))
    if kind in ("MultiPolygon", "MultiLineString"):
        parts: Any = [unwrap(part) for part in shapely.get_parts(geometry)]
        return (
            shapely.MultiPolygon(parts)
            if kind == "MultiPolygon"
            else shapely.MultiLineString(parts)
        )
    return geometry


def split(geometry: BaseGeometry) -> BaseGeometry:
    """Cut a continuous lon/lat geometry at ±180° and shift each part into -180..180.

    Parameters:
      geometry: A geometry whose longitudes are continuous (see :func:`unwrap`).

    Returns:
      The geometry itself if it already lies within -180..180, else a Multi* geometry of
      the same dimension made of the shifted parts.
    """
    if geometry.is_empty:
        return geometry
    minx, _, maxx, _ = geometry.bounds
    if minx >= -180.0 and maxx <= 180.0:
        return geometry
    if geometry.geom_type in ("Point", "MultiPoint"):
        return _wrap_points(geometry)
    dimension = int(shapely.get_dimensions(geometry))
    if dimension == 2 and not geometry.is_valid:
        # Closing a ring along a pole can make it touch itself; overlay needs valid input.
        geometry = shapely.make_valid(geometry, method="structure", keep_collapsed=False)
    parts: list[BaseGeometry] = []
    first_turn, last_turn = (int(np.floor((x + 180.0) / 360.0)) for x in (minx, maxx))
    for turn in range(first_turn, last_turn + 1):
        offset = 360.0 * turn
        window = shapely.box(offset - 180.0, -90.0, offset + 180.0, 90.0)
        piece = shapely.intersection(geometry, window)
        for part in shapely.get_parts(piece):
            if not part.is_empty and shapely.get_dimensions(part) == dimension:
                parts.append(affinity.translate(part, xoff=-offset))
    return _collect(parts, dimension)


def _unwrap_polygon(polygon: Any) -> BaseGeometry:
    shell = _unwrap_coords(np.asarray(polygon.exterior.coords))
    centre = (shell[:, 0].min() + shell[:, 0].max()) / 2.0
    closure = shell[-1, 0] - shell[0, 0]
    if abs(closure) > WRAP_JUMP_DEG:
        shell = _around_pole(shell)
    holes = []
    for interior in polygon.interiors:
        ring = _unwrap_coords(np.asarray(interior.coords))
        ring[:, 0] -= 360.0 * np.round((ring[0, 0] - centre) / 360.0)
        holes.append(ring)
    return shapely.Polygon(shell, holes)


def _unwrap_coords(coords: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    coords = np.array(coords, dtype=np.float64)
    if len(coords) > 1:
        coords[:, 0] = np.unwrap(coords[:, 0], period=360.0)
    return coords


def _around_pole(shell: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Close a ring that circles a pole along that pole's latitude."""
    pole = 90.0 if shell[:, 1].mean() > 0 else -90.0
    first, last = shell[0], shell[-1]
    extra = np.array([[last[0], pole], [first[0], pole], [first[0], first[1]]])
    if shell.shape[1] == 3:
        extra = np.column_stack([extra, [last[2], first[2], first[2]]])
    return np.vstack([shell, extra])


def _wrap_points(geometry: BaseGeometry) -> BaseGeometry:
    def wrap(coords: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        coords = coords.copy()
        outside = (coords[:, 0] < -180.0) | (coords[:, 0] > 180.0)
        coords[outside, 0] = (coords[outside, 0] + 180.0) % 360.0 - 180.0
        return coords

    wrapped: BaseGeometry = shapely.transform(
        geometry, wrap, include_z=bool(shapely.has_z(geometry))
    )
    return wrapped


def _collect(parts: list[BaseGeometry], dimension: int) -> BaseGeometry:
    if dimension == 2:
        # A ring around a pole is cut at its first vertex as well as at ±180: the union
        # joins those parts back along that seam (it never crosses ±180).
        merged = shapely.union_all(parts)
        polygons = [part for part in shapely.get_parts(merged) if part.geom_type == "Polygon"]
        return shapely.MultiPolygon(polygons) if len(polygons) != 1 else polygons[0]
    if dimension == 1:
        lines = [line for part in parts for line in getattr(part, "geoms", [part])]
        return shapely.MultiLineString(lines) if len(lines) != 1 else lines[0]
    return shapely.GeometryCollection(parts)
