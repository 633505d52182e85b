"""The frames in metres of a whole batch of geometries at once, each centred on its own geometry.

:class:`~geotasks.geo.metres.LocalMetres` projects one geometry on an azimuthal equidistant
(AEQD) projection centred on it. That projection maps a point to its geodesic distance ``s`` and
azimuth ``a`` from the centre, ``(x, y) = (s sin a, s cos a)``: PROJ's ellipsoidal ``aeqd`` is
exactly that, solved with Karney's geodesic algorithms. pyproj's :class:`~pyproj.Geod` solves
the geodesics of whole arrays in one call, each from its own start point, so a batch of
geometries is projected in one call with every geometry keeping its own centre: no frame is
shared between features, and the accuracy is the one :mod:`geotasks.geo.metres` documents for
each geometry on its own. (The same coordinates as PROJ's ``aeqd`` to a few nanometres, and
about twice as fast per point as a PROJ transformer, which also cannot vary its centre.)

:class:`LocalFrames` handles the geometries whose frame needs nothing more than that (see
:func:`fits_local_frame`): within ±180° of longitude, less than half the Earth across, clear of
the poles. The others (a geometry crossing the antimeridian, around a pole) take
:class:`~geotasks.geo.metres.LocalMetres`, one at a time. Geometries a few km across may instead
be projected on the plane tangent to the ellipsoid at their centre (:func:`tangent_plane`),
cheaper still and as true there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Geod, Transformer

#: A numpy array of shapely geometries (or ``None``).
Shapes = npt.NDArray[np.object_]

Floats = npt.NDArray[np.float64]

#: Latitude (degrees) a geometry, grown by what an operation adds, must stay within to be
#: handled here: a result enclosing a pole must be closed along it (see
#: :mod:`geotasks.geo.antimeridian`), which :class:`LocalFrames` does not do.
POLAR_LIMIT_DEG = 89.0

#: Fewest metres in a degree of latitude (at the equator), to bound how far north or south a
#: distance in metres reaches.
METRES_PER_DEGREE_MIN = 110_500.0

GEOD = Geod(ellps="WGS84")

#: Farthest a vertex may lie from its geometry's centre, in metres, for the geometry to be
#: projected on the plane tangent to the ellipsoid at its centre (:func:`tangent_plane`):
#: there distances and areas are off by less than (s/R)²/2 (5e-8 at 2 km).
TANGENT_MAX_M = 2_000.0

#: Most metres in a degree (of latitude, near the poles; of longitude at the equator).
METRES_PER_DEGREE_MAX = 111_700.0

#: Lon/lat degrees to Earth-centred cartesian metres (one transformer: no per-feature centre).
_CARTESIAN = Transformer.from_pipeline(
    "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad +step +proj=cart +ellps=WGS84"
)


def fits_tangent_plane(shapes: Shapes) -> npt.NDArray[np.bool_]:
    """Which geometries :func:`tangent_plane` projects within :data:`TANGENT_MAX_M`.

    Parameters:
      shapes: Lon/lat geometries for which :func:`fits_local_frame` is true.

    Returns:
      For each, whether every vertex lies within :data:`TANGENT_MAX_M` of its bounds' middle
      (bounded by half the bounds' diagonal, longitudes scaled at the latitude nearest the
      equator).
    """
    bounds = shapely.bounds(shapes)
    west, south, east, north = bounds.T
    nearest_equator = np.where(south * north <= 0, 0.0, np.minimum(abs(south), abs(north)))
    width = (east - west) * np.cos(np.radians(nearest_equator))
    with np.errstate(invalid="ignore"):
        reach = 0.5 * np.hypot(width, north - south) * METRES_PER_DEGREE_MAX
        return np.asarray(reach <= TANGENT_MAX_M, dtype=bool)


def tangent_plane(
    lon: Floats, lat: Floats, centre_lon: Floats, centre_lat: Floats, counts: Any
) -> Floats:
    """Points on the plane tangent to the ellipsoid at their geometry's centre (metres east
    and north of it).

    An orthographic projection: cheaper than an AEQD (one PROJ transform with no centre, then
    a rotation), and as true within a few km of the centre (distances off by (s/R)²/2).

    Parameters:
      lon: Every geometry's longitudes, one geometry after another, in degrees.
      lat: Their latitudes.
      centre_lon: Each geometry's centre longitude.
      centre_lat: Each geometry's centre latitude.
      counts: How many of the points each geometry has.

    Returns:
      An array ``(n, 2)`` of metres east and north of each point's centre.
    """
    x, y, z = _CARTESIAN.transform(lon, lat, np.zeros(len(lon)))
    x0, y0, z0 = _CARTESIAN.transform(centre_lon, centre_lat, np.zeros(len(centre_lon)))
    dx = x - np.repeat(x0, counts)
    dy = y - np.repeat(y0, counts)
    dz = z - np.repeat(z0, counts)
    sin_lon = np.repeat(np.sin(np.radians(centre_lon)), counts)
    cos_lon = np.repeat(np.cos(np.radians(centre_lon)), counts)
    sin_lat = np.repeat(np.sin(np.radians(centre_lat)), counts)
    cos_lat = np.repeat(np.cos(np.radians(centre_lat)), counts)
    east = cos_lon * dy - sin_lon * dx
    north = cos_lat * dz - sin_lat * (cos_lon * dx + sin_lon * dy)
    return np.column_stack([east, north])


def fits_local_frame(shapes: Shapes, reach_m: float = 0.0) -> npt.NDArray[np.bool_]:
    """Which geometries :class:`LocalFrames` handles, once grown by ``reach_m`` metres.

    Parameters:
      shapes: Lon/lat geometries (``None`` allowed: never handled).
      reach_m: How far an operation may move a point, in metres (a buffer's distance).

    Returns:
      For each geometry, whether it is 2D, lies within -180..180, spans less than 180° of
      longitude (so its centre is the middle of its bounds, as
      :class:`~geotasks.geo.metres.LocalMetres` has it) and stays clear of the poles.
    """
    bounds = shapely.bounds(shapes)
    west, south, east, north = bounds.T
    reach_deg = reach_m / METRES_PER_DEGREE_MIN
    with np.errstate(invalid="ignore"):
        fits = (
            (west >= -180.0)
            & (east <= 180.0)
            & (east - west < 180.0)
            & (north + reach_deg < POLAR_LIMIT_DEG)
            & (south - reach_deg > -POLAR_LIMIT_DEG)
        )
    fits &= ~shapely.has_z(shapes)
    return np.asarray(fits, dtype=bool)


class LocalFrames:
    """One AEQD frame per geometry, centred on the middle of its bounds.

    Parameters:
      shapes: Non-empty 2D lon/lat geometries for which :func:`fits_local_frame` is true.
    """

    def __init__(self, shapes: Shapes) -> None:
        bounds = shapely.bounds(shapes)
        self.centre_lon: Floats = (bounds[:, 0] + bounds[:, 2]) / 2.0
        self.centre_lat: Floats = (bounds[:, 1] + bounds[:, 3]) / 2.0
        #: Each geometry's farthest vertex from its centre, in metres (set by :meth:`to_metres`).
        self.reach_m: Floats = np.zeros(len(shapes))

    def to_metres(self, shapes: Shapes) -> Shapes:
        """The geometries in their frames' metres (x east, y north of each centre).

        Parameters:
          shapes: The geometries the frames were made for, in the same order.

        Returns:
          The projected geometries; :attr:`reach_m` is set.
        """
        counts = shapely.get_num_coordinates(shapes)
        lon0 = np.repeat(self.centre_lon, counts)
        lat0 = np.repeat(self.centre_lat, counts)
        reach = self.reach_m

        def project(lonlat: Floats) -> Floats:
            azimuth, _, distance = GEOD.inv(lon0, lat0, lonlat[:, 0], lonlat[:, 1])
            azimuth = np.radians(azimuth)
            starts = np.zeros(len(counts), dtype=np.intp)
            np.cumsum(counts[:-1], out=starts[1:])
            filled = counts > 0
            if len(distance):
                reach[filled] = np.maximum.reduceat(distance, starts[filled])
            return np.column_stack([distance * np.sin(azimuth), distance * np.cos(azimuth)])

        projected: Shapes = shapely.transform(shapes, project)
        return projected

    def to_lonlat(self, shapes: Shapes) -> Shapes:
        """Geometries in the frames' metres back in lon/lat, one per frame, in order.

        Longitudes are continuous around each centre: a geometry that grew across ±180° passes
        it (:func:`~geotasks.geo.antimeridian.split` then cuts it there).

        Parameters:
          shapes: One geometry (or ``None``) per frame, in its metres.

        Returns:
          The geometries in lon/lat.
        """
        counts = shapely.get_num_coordinates(shapes)
        lon0 = np.repeat(self.centre_lon, counts)
        lat0 = np.repeat(self.centre_lat, counts)

        def unproject(xy: Floats) -> Any:
            azimuth = np.degrees(np.arctan2(xy[:, 0], xy[:, 1]))
            lon, lat, _ = GEOD.fwd(lon0, lat0, azimuth, np.hypot(xy[:, 0], xy[:, 1]))
            lon = lon0 + (np.asarray(lon) - lon0 + 180.0) % 360.0 - 180.0
            return np.column_stack([lon, lat])

        unprojected: Shapes = shapely.transform(shapes, unproject)
        return unprojected
