"""The job map's background land outline, split at the antimeridian once, when it is vendored.

Natural Earth draws Fiji, Chukotka, Wrangel Island and Antarctica as rings that jump from 180°
to -180°; a web map joins such vertices straight across the world, a band at their latitude.
Results are cut at ±180° by :mod:`geotasks.geo.antimeridian`; the outline is cut by the same
code, when the static file is built, so the server does nothing at run time::

    python -m geotasks.http.land geotasks/http/static/ne_110m_land.geojson

It rewrites the file in place. Run it once on a newly vendored file, not again on its output:
a polygon closed along a pole (Antarctica) then reads as a ring that wraps.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import shapely
from shapely.geometry import shape

from ..geo.antimeridian import split, unwrap
from ..geo.geojson import geometry_mapping

#: Decimal places of the vendored outline's coordinates (0.001° is about 100 m).
LAND_PRECISION = 3


def split_land(collection: dict[str, Any]) -> dict[str, Any]:
    """Return a FeatureCollection of land polygons as one MultiPolygon cut at ±180°.

    Parameters:
      collection: A GeoJSON FeatureCollection of (Multi)Polygons in lon/lat whose rings may
        jump from 180° to -180°.

    Returns:
      dict: a FeatureCollection of one Feature, a MultiPolygon with every part in -180..180,
      rings oriented as RFC 7946 asks, coordinates rounded to :data:`LAND_PRECISION`.
    """
    polygons: list[shapely.Polygon] = []
    for feature in collection["features"]:
        for polygon in shapely.get_parts(shape(feature["geometry"])):
            polygons.extend(shapely.get_parts(split(unwrap(polygon))))
    land = shapely.orient_polygons(shapely.MultiPolygon(polygons), exterior_cw=False)
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {},
                "geometry": geometry_mapping(land, LAND_PRECISION),
            }
        ],
    }


def main(argv: list[str]) -> int:
    """Rewrite the GeoJSON file named by ``argv[0]`` with its land split at ±180°."""
    if len(argv) != 1:
        print("usage: python -m geotasks.http.land LAND.geojson", file=sys.stderr)
        return 2
    path = Path(argv[0])
    document = split_land(orjson.loads(path.read_bytes()))
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
