"""The old Celery page, ported line by line to geotasks.

Celery 2::

    @task(rate_limit='4/m')
    def get_shps(name, **kwargs):
        logger = get_shps.get_logger(**kwargs)
        logger.info("Starting the task")
        polygons = some_long_process(name)
        return polygons

geotasks: the same function, with type hints (they check every call before it is sent, and
describe the actor to clients that cannot import this module), a rate limit that holds across
every worker and host, and a result stored as GeoJSON instead of a pickle.
"""

from __future__ import annotations

from pyproj import Geod
from shapely.geometry.base import BaseGeometry

import geotasks
from geotasks.geo import read_features

_GEOD = Geod(ellps="WGS84")


@geotasks.actor(rate_limit="4/m")
def get_shps(name: str, min_area_km2: float = 0.0) -> list[BaseGeometry]:
    """Polygons of a dataset, the small ones left out.

    Parameters:
      name: a dataset in GEOTASKS_DATA_DIR (or job:<id>)
      min_area_km2: polygons smaller than this, in square kilometres, are left out
    """
    get_shps.logger.info("Starting the task")
    return [
        f.geometry
        for f in read_features(name)
        if f.geometry is not None and area_km2(f.geometry) >= min_area_km2
    ]


def area_km2(geometry: BaseGeometry) -> float:
    """Geodesic area on the WGS84 ellipsoid, in square kilometres."""
    area_m2, _ = _GEOD.geometry_area_perimeter(geometry)
    return abs(area_m2) / 1e6
