"""Geoprocessing in metres anywhere on Earth, with RFC 7946 results."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import shapely
from pyproj import Geod

from geotasks.errors import InputError
from geotasks.geo.limits import GeoLimits
from geotasks.geo.operations import (
    buffer_features,
    clip_features,
    dissolve_features,
    measure_features,
    simplify_features,
)
from geotasks.geo.options import ReadingOptions
from geotasks.geo.result import GeoJSONResult
from geotasks.job_warnings import recording

from .conftest import MakeShapefile
from .helpers import SQUARE_CW, document, with_reading

GEOD = Geod(ellps="WGS84")
CIRCLE_M2 = math.pi * 1000.0**2
BOWTIE = [[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]


def run(operation: Any, data_dir: Path, *args: Any, **options: Any) -> dict[str, Any]:
    result: GeoJSONResult = operation(
        *args, data_dir=data_dir, limits=GeoLimits(), **with_reading(options)
    )
    return document(result)


def point_dataset(make_shapefile: MakeShapefile, name: str, lon: float, lat: float) -> None:
    make_shapefile(name, "Point", [{"geometry": {"type": "Point", "coordinates": (lon, lat)}}])


def assert_rfc7946_polygonal(geometry: dict[str, Any]) -> None:
    polygons = (
        geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
    )
    for rings in polygons:
        for ring in rings:
            assert ring[0] == ring[-1]
            assert all(-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0 for lon, lat in ring)
        assert shapely.LinearRing(rings[0]).is_ccw


@pytest.mark.parametrize(("lon", "lat"), [(0.0, 0.0), (25.0, 65.0), (179.9, 0.0)])
def test_acceptance_one_km_buffer_has_the_area_of_a_one_km_circle(
    data_dir: Path, make_shapefile: MakeShapefile, lon: float, lat: float
) -> None:
    # Given a point at the equator, at 65°N, or at 179.9°E
    point_dataset(make_shapefile, "p", lon, lat)
    # When buffered by 1 km
    geometry = run(buffer_features, data_dir, "p", 1000)["features"][0]["geometry"]
    # Then its geodesic area is within 0.5 % of π·1000² m², as valid RFC 7946
    area, _ = GEOD.geometry_area_perimeter(shapely.geometry.shape(geometry))
    assert abs(area) == pytest.approx(CIRCLE_M2, rel=0.005)
    assert_rfc7946_polygonal(geometry)


@pytest.mark.parametrize("lat", [0.0, 65.0, -65.0])
def test_a_buffer_across_the_antimeridian_is_split(
    data_dir: Path, make_shapefile: MakeShapefile, lat: float
) -> None:
    # Given a point 0.005° west of 180° (about 550 m at the equator): a 1 km buffer crosses it
    point_dataset(make_shapefile, "edge", 179.995, lat)
    # When buffered by 1 km
    geometry = run(buffer_features, data_dir, "edge", 1000)["features"][0]["geometry"]
    # Then it is a MultiPolygon split at ±180, with the right area, every lon in range
    assert geometry["type"] == "MultiPolygon"
    longitudes = [lon for polygon in geometry["coordinates"] for lon, _ in polygon[0]]
    assert min(longitudes) == -180.0 and max(longitudes) == 180.0
    area, _ = GEOD.geometry_area_perimeter(shapely.geometry.shape(geometry))
    assert abs(area) == pytest.approx(CIRCLE_M2, rel=0.005)
    assert_rfc7946_polygonal(geometry)


def test_a_buffer_around_the_pole_covers_the_cap(
    data_dir: Path, make_shapefile: MakeShapefile
) -> None:
    # Given the North Pole, When buffered by 100 km
    point_dataset(make_shapefile, "pole", 0.0, 90.0)
    geometry = run(buffer_features, data_dir, "pole", 100_000)["features"][0]["geometry"]
    # Then the result reaches the pole and has the cap's area
    shape = shapely.geometry.shape(geometry)
    assert shape.is_valid and shape.bounds[3] == 90.0
    area, _ = GEOD.geometry_area_perimeter(shape)
    assert abs(area) == pytest.approx(math.pi * 100_000.0**2, rel=0.005)


def test_a_buffer_of_projected_data_is_in_metres(
    data_dir: Path, make_shapefile: MakeShapefile
) -> None:
    # Given a point in Lambert-93
    paris = {"type": "Point", "coordinates": (652_469.0, 6_862_035.0)}
    make_shapefile("paris", "Point", [{"geometry": paris}], crs="EPSG:2154")
    # When buffered by 50 m, Then the circle is 50 m, not 50 degrees or Mercator metres
    geometry = run(buffer_features, data_dir, "paris", 50)["features"][0]["geometry"]
    area, _ = GEOD.geometry_area_perimeter(shapely.geometry.shape(geometry))
    assert abs(area) == pytest.approx(math.pi * 50.0**2, rel=0.005)


@pytest.mark.parametrize("distance", [0, math.inf, -math.inf, "10", True, 2e6, -2e6])
def test_bad_distances_are_refused(data_dir: Path, square: Path, distance: Any) -> None:
    # Given a zero, infinite, non-numeric or huge distance
    # When buffering, Then it is refused before any data is read
    with pytest.raises(InputError, match="distance_m"):
        run(buffer_features, data_dir, "square", distance)


def test_simplify_in_metres_keeps_properties(data_dir: Path, sample: Any) -> None:
    # Given the countries, When simplified with a 20 km tolerance
    sample("naturalearth_lowres")
    doc = run(simplify_features, data_dir, "naturalearth_lowres", 20_000, where="name='Norway'")
    # Then Norway keeps its name, gets fewer vertices and stays valid
    feature = doc["features"][0]
    shape = shapely.geometry.shape(feature["geometry"])
    assert feature["properties"]["name"] == "Norway"
    assert shape.is_valid
    assert shapely.get_num_coordinates(shape) < 80
    with pytest.raises(InputError, match="tolerance_m"):
        run(simplify_features, data_dir, "naturalearth_lowres", -1)


def test_dissolve_by_field_and_all(data_dir: Path, sample: Any) -> None:
    # Given the countries
    sample("naturalearth_lowres")
    # When dissolved by continent, and all together
    by_continent = run(dissolve_features, data_dir, "naturalearth_lowres", "continent")
    everything = run(dissolve_features, data_dir, "naturalearth_lowres")
    # Then there is one feature per continent, and one in all, both valid
    continents = {f["properties"]["continent"] for f in by_continent["features"]}
    assert {"Africa", "Europe", "Asia", "Oceania"} <= continents
    assert len(by_continent["features"]) == len(continents)
    assert len(everything["features"]) == 1
    assert shapely.geometry.shape(everything["features"][0]["geometry"]).is_valid
    with pytest.raises(InputError, match="no field named 'nope'"):
        run(dissolve_features, data_dir, "naturalearth_lowres", "nope")


def test_clip_with_a_bbox_or_a_geometry(data_dir: Path, sample: Any) -> None:
    # Given the countries
    sample("naturalearth_lowres")
    box = [5.0, 45.0, 7.0, 47.0]
    polygon = shapely.geometry.mapping(shapely.box(5.0, 45.0, 7.0, 47.0))
    # When clipped to a box around the French-Swiss border, as a bbox and as a geometry
    by_bbox = run(clip_features, data_dir, "naturalearth_lowres", bbox=box)
    by_geometry = run(clip_features, data_dir, "naturalearth_lowres", geometry=polygon)
    # Then the same countries come back, cut to the box
    names = sorted(f["properties"]["name"] for f in by_bbox["features"])
    assert names == sorted(f["properties"]["name"] for f in by_geometry["features"])
    assert {"France", "Switzerland"} <= set(names)
    for feature in by_bbox["features"]:
        minx, miny, maxx, maxy = shapely.geometry.shape(feature["geometry"]).bounds
        assert minx >= 5.0 and maxx <= 7.0 and miny >= 45.0 and maxy <= 47.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "exactly one"),
        ({"bbox": [0, 0, 1, 1], "geometry": {"type": "Polygon"}}, "exactly one"),
        ({"geometry": {"type": "Point", "coordinates": [0, 0]}}, "Polygon or MultiPolygon"),
        (
            {
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]],
                }
            },
            "not a valid polygon",
        ),
    ],
)
def test_clip_arguments_are_checked(
    data_dir: Path, square: Path, options: dict[str, Any], message: str
) -> None:
    # Given no clip area, two of them, a point, or a bow tie
    # When clipping, Then the argument is refused with a message naming the problem
    with pytest.raises(InputError, match=message):
        run(clip_features, data_dir, "square", **options)


def test_measure_adds_geodesic_area_perimeter_and_length(
    data_dir: Path, make_shapefile: MakeShapefile
) -> None:
    # Given a one-degree cell at the equator and a 1° line along it
    cell = [(0, 0), (0, 1), (1, 1), (1, 0), (0, 0)]
    make_shapefile("cell", "Polygon", [{"geometry": {"type": "Polygon", "coordinates": [cell]}}])
    line = {"type": "LineString", "coordinates": [(0, 0), (1, 0)]}
    make_shapefile("line", "LineString", [{"geometry": line}])
    # When measured
    cell_props = run(measure_features, data_dir, "cell")["features"][0]["properties"]
    line_props = run(measure_features, data_dir, "line")["features"][0]["properties"]
    # Then the values are the ellipsoid's geodesic ones (about 12,309 km² and 111.3 km)
    area, perimeter = GEOD.polygon_area_perimeter([0, 1, 1, 0], [0, 0, 1, 1])
    assert cell_props["area_m2"] == pytest.approx(abs(area), rel=1e-9)
    assert cell_props["area_m2"] == pytest.approx(12_308_778_361, rel=1e-6)
    assert cell_props["perimeter_m"] == pytest.approx(perimeter, rel=1e-9)
    assert cell_props["length_m"] is None
    assert line_props["length_m"] == pytest.approx(111_319.5, rel=1e-5)
    assert line_props["area_m2"] is None


def test_operations_chain_through_a_path(tmp_path: Path, data_dir: Path, sample: Any) -> None:
    # Given France clipped out, saved as an earlier job's result
    sample("naturalearth_lowres")
    clipped = tmp_path / "job-1.geojson"
    with clip_features(
        "naturalearth_lowres", data_dir=data_dir, limits=GeoLimits(),
        reading=ReadingOptions(bbox=[-5, 42, 8, 51], where="name='France'"),
    ) as result, clipped.open("wb") as sink:  # fmt: skip
        result.write_to(sink)
    # When that result is buffered by 1 km
    doc = run(buffer_features, data_dir, clipped, 1000)
    # Then France comes back, slightly larger, still valid
    shape = shapely.geometry.shape(doc["features"][0]["geometry"])
    assert doc["features"][0]["properties"]["name"] == "France"
    assert shape.is_valid


def test_an_island_split_at_the_antimeridian_is_buffered_where_it_lies(
    data_dir: Path, make_shapefile: MakeShapefile
) -> None:
    # Given an island stored split at ±180 (as Fiji is), and the same island at 0°
    halves = shapely.MultiPolygon(
        [shapely.box(179.9, -17.1, 180.0, -17.0), shapely.box(-180.0, -17.1, -179.9, -17.0)]
    )
    for name, geometry in [("split", halves), ("zero", shapely.box(-0.1, -17.1, 0.1, -17.0))]:
        feature = {"geometry": shapely.geometry.mapping(geometry)}
        make_shapefile(name, geometry.geom_type, [feature])
    # When both are buffered by 5 km
    areas = [
        abs(GEOD.geometry_area_perimeter(shapely.geometry.shape(
            run(buffer_features, data_dir, name, 5000)["features"][0]["geometry"]
        ))[0])
        for name in ("split", "zero")
    ]  # fmt: skip
    # Then the areas agree (metres measured around the island, not on the other side of Earth)
    assert areas[0] == pytest.approx(areas[1], rel=0.002)


def test_buffering_every_country_gives_valid_rfc7946(data_dir: Path, sample: Any) -> None:
    # Given the countries, Antarctica (edges along the pole) and Fiji (split at ±180) included
    sample("naturalearth_lowres")
    # When every one is buffered by 10 km
    doc = run(buffer_features, data_dir, "naturalearth_lowres", 10_000)
    # Then every result is a valid polygon within -180..180, a little larger than the country
    for feature in doc["features"]:
        shape = shapely.geometry.shape(feature["geometry"])
        assert shape.is_valid, feature["properties"]["name"]
        assert shape.bounds[0] >= -180.0 and shape.bounds[2] <= 180.0
        assert_rfc7946_polygonal(feature["geometry"])


def test_a_geos_failure_is_reported_as_bad_input(
    data_dir: Path, make_shapefile: MakeShapefile, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given GEOS failing on a feature's geometry
    point_dataset(make_shapefile, "p", 0.0, 0.0)

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise shapely.errors.GEOSException("TopologyException: side location conflict")

    monkeypatch.setattr(shapely, "buffer", fail)
    # When buffered, Then the error is an InputError naming the feature
    with pytest.raises(InputError, match="feature 0 cannot be processed"):
        run(buffer_features, data_dir, "p", 10)


OPERATIONS = [
    (buffer_features, (1000,), {}),
    (simplify_features, (100,), {}),
    (dissolve_features, (), {}),
    (clip_features, (), {"bbox": [-1, -1, 2, 2]}),
    (measure_features, (), {}),
]


@pytest.mark.parametrize(
    ("operation", "args", "kwargs"), OPERATIONS, ids=[op[0].__name__ for op in OPERATIONS]
)
def test_operations_repair_an_invalid_polygon_and_report_it_unless_strict(
    data_dir: Path, make_shapefile: MakeShapefile, operation: Any, args: Any, kwargs: Any
) -> None:
    # Given a bow tie
    bowtie = {"type": "Polygon", "coordinates": [BOWTIE]}
    make_shapefile("bowtie", "Polygon", [{"geometry": bowtie}])
    # When processed, Then the output is valid and the job's warning says it was repaired
    with recording() as warnings:
        doc = run(operation, data_dir, "bowtie", *args, **kwargs)
    assert shapely.geometry.shape(doc["features"][0]["geometry"]).is_valid
    assert [(w["count"], w["first_ids"], w["repaired"]) for w in warnings] == [(1, [0], True)]
    # And with strict=True it fails, naming the feature
    with pytest.raises(InputError, match="feature 0 has an invalid polygon"):
        run(operation, data_dir, "bowtie", *args, strict=True, **kwargs)


def test_a_negative_buffer_shrinks_polygons_and_keeps_those_it_empties(
    data_dir: Path, make_shapefile: MakeShapefile
) -> None:
    # Given a one-degree square near Paris (about 74 by 111 km) and a 2 km one
    small = [(2.0, 48.0), (2.0, 48.02), (2.02, 48.02), (2.02, 48.0), (2.0, 48.0)]
    make_shapefile(
        "lots", "Polygon",
        [{"geometry": {"type": "Polygon", "coordinates": [SQUARE_CW]}, "properties": {"name": "a"}},
         {"geometry": {"type": "Polygon", "coordinates": [small]}, "properties": {"name": "b"}}],
    )  # fmt: skip
    # When buffered by -5 km
    big, gone = run(buffer_features, data_dir, "lots", -5_000)["features"]
    # Then the large one lies 5 km inside its edges, valid, and the small one is a null
    # geometry kept with its properties
    shrunk = shapely.geometry.shape(big["geometry"])
    original = shapely.Polygon(SQUARE_CW)
    assert shrunk.is_valid and original.contains(shrunk)
    west_gap_m = GEOD.inv(2.0, 48.5, shrunk.bounds[0], 48.5)[2]
    assert west_gap_m == pytest.approx(5_000, rel=0.01)
    assert (gone["geometry"], gone["properties"]) == (None, {"name": "b"})


@pytest.mark.parametrize("kind", ["Point", "LineString"])
def test_a_negative_buffer_of_points_or_lines_is_bad_input(
    data_dir: Path, make_shapefile: MakeShapefile, kind: str
) -> None:
    coordinates = (2.0, 48.0) if kind == "Point" else [(2.0, 48.0), (2.1, 48.1)]
    make_shapefile("x", kind, [{"geometry": {"type": kind, "coordinates": coordinates}}])
    with pytest.raises(InputError, match=f"feature 0 is a {kind}: a negative distance_m"):
        run(buffer_features, data_dir, "x", -10)


#: Each operation, on data touching the poles and crossing ±180°.
POLAR_OPERATIONS = {
    "buffer 50 km": (buffer_features, (50_000,), {}),
    "buffer -20 km": (buffer_features, (-20_000,), {}),
    "simplify 20 km": (simplify_features, (20_000,), {}),
    "dissolve": (dissolve_features, (), {}),
    "clip across 180": (clip_features, (), {"bbox": [150, -90, -150, 90]}),
    "clip the south": (clip_features, (), {"bbox": [-180, -90, 180, -60]}),
    "clip a geometry": (
        clip_features, (),
        {"geometry": {"type": "Polygon", "coordinates": [[(150, -90), (180, -90), (180, 90),
                                                          (150, 90), (150, -90)]]}},
    ),
    "measure": (measure_features, (), {}),
}  # fmt: skip


@pytest.fixture
def polar(make_shapefile: MakeShapefile, sample: Any) -> list[str]:
    """The countries (Antarctica, Fiji, Russia), and an Arctic cap and lines across ±180."""
    sample("naturalearth_lowres")
    # The cap's rim along 85°N, a vertex every 10° (a rim of two corners is a line on Earth).
    rim = [(180.0 - 10.0 * i, 85.0) for i in range(37)]
    cap = [*rim, (-180.0, 90.0), (180.0, 90.0), rim[0]]
    make_shapefile("cap", "Polygon", [{"geometry": {"type": "Polygon", "coordinates": [cap]}}])
    lines = [[(170.0, 60.0), (-170.0, 65.0)], [(0.0, 89.9), (180.0, 89.9)]]
    make_shapefile(
        "dateline", "LineString",
        [{"geometry": {"type": "LineString", "coordinates": line}} for line in lines],
    )  # fmt: skip
    return ["naturalearth_lowres", "cap", "dateline"]


@pytest.mark.parametrize("case", list(POLAR_OPERATIONS))
def test_every_operation_writes_valid_geometries_at_the_poles_and_across_180(
    data_dir: Path, polar: list[str], case: str
) -> None:
    operation, args, kwargs = POLAR_OPERATIONS[case]
    for name in polar:
        if case == "buffer -20 km" and name == "dateline":
            continue
        # When the operation runs, Then every geometry it wrote is valid (OGC) RFC 7946
        for feature in run(operation, data_dir, name, *args, **kwargs)["features"]:
            if feature["geometry"] is None:
                continue
            shape = shapely.geometry.shape(feature["geometry"])
            assert shape.is_valid, (name, feature["properties"], shapely.is_valid_reason(shape))
            assert -180.0 <= shape.bounds[0] <= shape.bounds[2] <= 180.0
    # And the cap is still there, up to the pole (unless clipped away)
    if case != "clip the south":
        (cap,) = run(operation, data_dir, "cap", *args, **kwargs)["features"]
        assert shapely.geometry.shape(cap["geometry"]).bounds[3] == 90.0
