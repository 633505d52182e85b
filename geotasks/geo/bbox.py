"""Longitude/latitude bounding boxes given by callers, and their shape in a source CRS.

A bbox is ``(west, south, east, north)`` in WGS84 degrees, as in RFC 7946 section 5. A box
whose west edge is east of its east edge crosses the antimeridian (RFC 7946 5.2): it is two
boxes, ``west..180`` and ``-180..east``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from geotasks.errors import InputError
from geotasks.geo.crs import LONLAT, SourceCRS, area_of_use
from geotasks.geo.options import LonLatBox

#: Longest edge (degrees) of the box outline before it is transformed, so that its curved
#: image in a projected CRS is followed closely.
DENSIFY_DEG = 0.1


def bbox_polygon(box: LonLatBox) -> BaseGeometry:
    """The box as a lon/lat geometry: a Polygon, or two when it crosses the antimeridian.

    Parameters:
      box: A validated box.

    Returns:
      A Polygon or MultiPolygon.
    """
    west, south, east, north = box
    if west <= east:
        return shapely.box(west, south, east, north)
    return shapely.MultiPolygon(
        [shapely.box(west, south, 180.0, north), shapely.box(-180.0, south, east, north)]
    )


def source_mask(box: LonLatBox, source: SourceCRS) -> dict[str, Any] | None:
    """The box's outline in the source CRS, as a GeoJSON-like mask for GDAL's spatial filter.

    The outline is densified and transformed, so GDAL's exact intersection test in the
    source CRS matches the lon/lat box closely. Parts of the box outside the CRS's area of
    use are dropped first (a projection is not defined everywhere).

    Parameters:
      box: A validated box.
      source: The dataset's CRS.

    Returns:
      A geometry mapping, or ``None`` if the box misses the CRS's area of use entirely.
    """
    area = bbox_polygon(box)
    if source.to_lonlat is None:
        return shapely.geometry.mapping(area)
    use = area_of_use(source.crs)
    if use is not None and use.west <= use.east:
        area = area.intersection(shapely.box(use.west, use.south, use.east, use.north))
        if area.is_empty:
            return None
    outline = shapely.segmentize(area, DENSIFY_DEG)
    to_source = Transformer.from_crs(LONLAT, source.crs, always_xy=True)

    def forward(coords: np.ndarray[Any, np.dtype[np.float64]]) -> Any:
        x, y = to_source.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    projected = shapely.transform(outline, forward)
    if not np.isfinite(shapely.get_coordinates(projected)).all():
        raise InputError(
            f"bbox cannot be expressed in the dataset's CRS ({source.name}); use a smaller bbox"
        )
    return shapely.geometry.mapping(shapely.make_valid(projected))
