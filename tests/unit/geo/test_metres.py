"""in_metres / LocalMetres: metres around a geometry anywhere on Earth, for users' actors."""

from __future__ import annotations

import math

import pytest
import shapely
from pyproj import Geod

from geotasks.geo import LocalMetres, in_metres

GEOD = Geod(ellps="WGS84")


def geodesic_area_m2(geometry: shapely.Geometry) -> float:
    return abs(GEOD.geometry_area_perimeter(geometry)[0])


@pytest.mark.parametrize(("lon", "lat"), [(0.0, 0.0), (25.0, 70.0), (-40.0, 85.0), (10.0, -89.0)])
def test_a_buffer_in_metres_has_the_true_area_at_any_latitude(lon: float, lat: float) -> None:
    # Given a point, as far north as 85°N and next to the South Pole
    point = shapely.Point(lon, lat)
    # When buffered by 1 km in its own metres and brought back to lon/lat
    metric, to_lonlat = in_metres(point)
    disc = to_lonlat(metric.buffer(1000, quad_segs=32))
    # Then its geodesic area is that of a 1 km circle (Web Mercator would be 130x off at 85°N)
    assert geodesic_area_m2(disc) == pytest.approx(math.pi * 1000**2, rel=0.005)


def test_a_length_in_metres_is_the_geodesic_length_at_high_latitude() -> None:
    # Given a 20 km stretch of the 80th parallel
    line = shapely.LineString([(10.0, 80.0), (11.0, 80.0)])
    # When measured in its metres
    metric, _ = in_metres(line)
    # Then it is the geodesic length, to 0.1 %
    assert metric.length == pytest.approx(GEOD.geometry_length(line), rel=0.001)


def test_a_geometry_split_at_the_antimeridian_is_centred_where_it_lies() -> None:
    # Given an island as read_features gives it: split at ±180 into two polygons
    west_half = shapely.box(179.9, -17.1, 180.0, -17.0)
    east_half = shapely.box(-180.0, -17.1, -179.9, -17.0)
    island = shapely.MultiPolygon([west_half, east_half])
    # And the same island away from the antimeridian
    same_at_zero = shapely.box(-0.1, -17.1, 0.1, -17.0)
    # When each is buffered by 5 km in its own metres
    frame = LocalMetres(island)
    buffered = frame.to_lonlat(frame.to_metres(island).buffer(5000))
    metric, to_lonlat = in_metres(same_at_zero)
    reference = to_lonlat(metric.buffer(5000))
    # Then the frame is centred on 180°, the halves join into one shape of the same area,
    # and it comes back split at ±180, every longitude within range
    assert abs(frame.centre_lon) == pytest.approx(180.0)
    assert geodesic_area_m2(buffered) == pytest.approx(geodesic_area_m2(reference), rel=0.002)
    assert buffered.geom_type == "MultiPolygon" and buffered.is_valid
    assert buffered.bounds[0] >= -180.0 and buffered.bounds[2] <= 180.0


def test_a_continuous_geometry_past_180_is_centred_on_it_too() -> None:
    # Given a line that runs on past 180° (179.5°E to 179.5°W), and two geometries 20° apart
    frame = LocalMetres(shapely.LineString([(179.5, 0.0), (180.5, 0.0)]))
    # Then the frame is centred on the antimeridian
    assert abs(frame.centre_lon) == pytest.approx(180.0)
    a, b = shapely.Point(170.0, 0.0), shapely.Point(-170.0, 0.0)
    pair = LocalMetres(shapely.MultiPoint([a, b]))
    # And a distance measured in one frame across ±180 is the geodesic one (20° of equator)
    distance_m = pair.to_metres(a).distance(pair.to_metres(b))
    assert distance_m == pytest.approx(GEOD.line_length([170.0, 190.0], [0.0, 0.0]), rel=0.01)


def test_an_empty_geometry_has_no_frame() -> None:
    with pytest.raises(ValueError, match="empty"):
        in_metres(shapely.Point())
