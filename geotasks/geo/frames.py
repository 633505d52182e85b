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
:class:`~geotasks.geo.metres.LocalMetres`, one at a time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Geod

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
