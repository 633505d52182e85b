"""Work in metres around a lon/lat geometry, anywhere on Earth (the built-in actors' way).

Shapely measures in the units of the coordinates: in lon/lat, ``geometry.buffer(500)`` is
500 *degrees*, and Web Mercator's metres are wrong by a factor of 1/cos(latitude) (twice
too long at 60°N, 11 times at 85°N). :class:`LocalMetres` projects a geometry on an azimuthal
equidistant projection centred on it, where distances from the centre are true and nearby
ones close to true (about 0.1 % at 300 km, 1.6 % at 2,000 km) at any latitude, poles
included. A geometry split at the antimeridian (as :func:`~geotasks.geo.read_features` gives
Fiji or Russia) is centred where it lies, not on the other side of the Earth::

    from geotasks.geo import in_metres

    metric, to_lonlat = in_metres(feature.geometry)
    ring = to_lonlat(metric.buffer(500).difference(metric))   # a 500 m ring, in lon/lat
    length_m = metric.length

Several geometries share one frame with :class:`LocalMetres` (measure the distance between
two features, say): ``frame = LocalMetres(a); frame.to_metres(b)``.
"""

from __future__ import annotations

from collections.abc import Callable

import shapely
from shapely.geometry.base import BaseGeometry

from geotasks.geo.antimeridian import split, unwrap
from geotasks.geo.metric import LocalProjection
from geotasks.geo.streaming import POLYGONAL, make_polygonal_valid


class LocalMetres:
    """A frame in metres centred on a lon/lat geometry.

    Parameters:
      geometry: A non-empty geometry in WGS84 lon/lat degrees; its longitudes may lie within
        ±180 (RFC 7946, split at the antimeridian) or run continuously past it.

    Raises:
      ValueError: If ``geometry`` is empty.
    """

    def __init__(self, geometry: BaseGeometry) -> None:
        if geometry.is_empty:
            raise ValueError("an empty geometry has no place to centre a frame in metres on")
        _, south, _, north = geometry.bounds
        self.centre_lon = _centre_longitude(geometry)
        self.centre_lat = (south + north) / 2.0
        self._projection = LocalProjection(self.centre_lon, self.centre_lat)

    def to_metres(self, geometry: BaseGeometry) -> BaseGeometry:
        """A lon/lat geometry in this frame's metres (x east, y north of the centre).

        A polygon that projecting left invalid (an edge along a pole collapses to a point) is
        made valid again.
        """
        metric = self._projection.to_metres(geometry)
        if metric.geom_type in POLYGONAL and not metric.is_valid:
            return make_polygonal_valid(metric) or shapely.Polygon()
        return metric

    def to_lonlat(self, geometry: BaseGeometry) -> BaseGeometry:
        """A geometry in this frame's metres back in lon/lat, as RFC 7946 wants it.

        Longitudes lie within ±180 (a geometry crossing the antimeridian is split there) and
        a polygon is valid: edges that touch in metres can cross once the projection's
        curvature is undone, so it is made valid again (an empty polygon if nothing is left).
        """
        lonlat = split(unwrap(self._projection.to_lonlat(geometry)))
        if lonlat.geom_type in POLYGONAL and not lonlat.is_valid:
            return make_polygonal_valid(lonlat) or shapely.Polygon()
        return lonlat


def in_metres(
    geometry: BaseGeometry,
) -> tuple[BaseGeometry, Callable[[BaseGeometry], BaseGeometry]]:
    """A lon/lat geometry in metres around itself, and the way back to lon/lat.

    Parameters:
      geometry: A non-empty geometry in WGS84 lon/lat degrees.

    Returns:
      The geometry in metres, and a function bringing a geometry in those metres back to
      RFC 7946 lon/lat (see :meth:`LocalMetres.to_lonlat`).

    Raises:
      ValueError: If ``geometry`` is empty.
    """
    frame = LocalMetres(geometry)
    return frame.to_metres(geometry), frame.to_lonlat


def _centre_longitude(geometry: BaseGeometry) -> float:
    """The middle of the shortest arc of longitudes covering every part of the geometry.

    Each part (a polygon, a line) is continuous in longitude; only between parts can a
    geometry jump across ±180°. The largest gap between the parts' spans, going round the
    circle, is where the geometry is not: its centre is opposite, in the middle of the rest.
    """
    spans = []
    for part in shapely.get_parts(geometry):
        if part.is_empty:
            continue
        west, _, east, _ = (float(value) for value in part.bounds)
        if east - west >= 360.0:
            # Round the whole Earth (Antarctica): no side is better than another.
            return (west + east) / 2.0
        start = (west + 180.0) % 360.0 - 180.0
        spans.append((start, start + east - west))
    spans.sort()
    first_start, reach = spans[0]
    gap = (0.0, first_start, first_start)
    for start, end in spans[1:]:
        if start - reach > gap[0]:
            gap = (start - reach, reach, start)
        reach = max(reach, end)
    if first_start + 360.0 - reach > gap[0]:
        gap = (first_start + 360.0 - reach, reach, first_start + 360.0)
    _, gap_start, gap_end = gap
    # The geometry covers gap_end .. gap_start + 360.
    centre = (gap_end + gap_start + 360.0) / 2.0
    return (centre + 180.0) % 360.0 - 180.0
