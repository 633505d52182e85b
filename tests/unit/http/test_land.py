"""The job map's land outline is split at the antimeridian, as results are (issue 25, item 13)."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import numpy as np
import orjson
import shapely
from shapely.geometry import shape

from geotasks.http.land import split_land

LAND = files("geotasks.http") / "static" / "ne_110m_land.geojson"


def wrapping_segments(geometry: dict[str, Any]) -> int:
    """Segments that jump more than 180° in longitude, off the poles: drawn across the map."""
    count = 0
    for polygon in geometry["coordinates"]:
        for ring in polygon:
            coords = np.asarray(ring)
            jumps = np.abs(np.diff(coords[:, 0])) > 180
            on_pole = (np.abs(coords[1:, 1]) == 90) & (np.abs(coords[:-1, 1]) == 90)
            count += int((jumps & ~on_pole).sum())
    return count


def test_the_vendored_land_has_no_ring_across_the_map() -> None:
    # Given the land outline the job page draws
    document = orjson.loads(LAND.read_bytes())
    (feature,) = document["features"]
    geometry = feature["geometry"]
    # Then it is one valid MultiPolygon within -180..180, whose rings never wrap (Fiji,
    # Chukotka and Wrangel Island used to jump from 180° to -180°, drawing bands)
    assert geometry["type"] == "MultiPolygon"
    land = shape(geometry)
    assert land.is_valid
    west, south, east, north = land.bounds
    assert (west, east) == (-180.0, 180.0)
    assert -90.0 <= south < north <= 90.0
    assert wrapping_segments(geometry) == 0


def test_an_island_across_the_antimeridian_is_cut_in_two() -> None:
    # Given an island whose ring jumps from 179° to -179° (as Natural Earth's Fiji does)
    island = [[179.0, -17.0], [-179.0, -17.0], [-179.0, -16.0], [179.0, -16.0], [179.0, -17.0]]
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {},
                "geometry": {"type": "Polygon", "coordinates": [island]},
            }
        ],
    }
    # When it is split
    (feature,) = split_land(collection)["features"]
    # Then it is two parts, one each side of ±180°, of the island's whole area
    parts = shapely.get_parts(shape(feature["geometry"]))
    assert sorted(part.bounds for part in parts) == [
        (-180.0, -17.0, -179.0, -16.0),
        (179.0, -17.0, 180.0, -16.0),
    ]
    assert sum(part.area for part in parts) == 2.0
    assert wrapping_segments(feature["geometry"]) == 0
