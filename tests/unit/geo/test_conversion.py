"""to_result: every shape an actor may return, and every refusal."""

from __future__ import annotations

import datetime
import decimal
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
import shapely.geometry

from geotasks.errors import GeotasksError, ResultNotStorable
from geotasks.geo import Feature
from geotasks.geo.conversion import to_result
from geotasks.geo.limits import GeoLimits
from geotasks.geo.result import GeoJSONResult

from .helpers import document

#: A one-degree square whose exterior turns clockwise (RFC 7946 wants counter-clockwise).
SQUARE_CW = shapely.Polygon([(2, 48), (2, 49), (3, 49), (3, 48), (2, 48)])


def collection(value: Any, **options: Any) -> dict[str, Any]:
    """Convert a geo value and parse the FeatureCollection."""
    result = to_result(value, **options)
    assert isinstance(result, GeoJSONResult)
    parsed = document(result)
    assert parsed["type"] == "FeatureCollection"
    return parsed


class GeoThing:
    """A third-party object exposing only ``__geo_interface__``."""

    def __init__(self, interface: dict[str, Any]) -> None:
        self.__geo_interface__ = interface


class FrameLike:
    """What GeoPandas' GeoDataFrame offers: a CRS and streamed features."""

    def __init__(self, crs: str | None, features: list[dict[str, Any]]) -> None:
        self.crs = crs
        self._features = features

    @property
    def __geo_interface__(self) -> dict[str, Any]:
        raise AssertionError("a GeoDataFrame-like is streamed through iterfeatures()")

    def iterfeatures(self) -> Iterator[dict[str, Any]]:
        yield from self._features


class GeoJSONDict(dict[str, Any]):
    """The ``geojson`` package's objects: dicts with ``__geo_interface__``."""

    @property
    def __geo_interface__(self) -> dict[str, Any]:
        return dict(self)


@pytest.mark.parametrize(
    "value",
    [
        None, True, 3, 2.5, "text", [], (), {},
        [1, "a", None, {"k": [1.5, False]}],
        (1, 2),
        [None, None],
        {"type": "Point", "coordinates": [1000, 2000]},
        np.float64(1.5),
        GeoJSONDict(type="Point", coordinates=[1, 2]),
    ],
)  # fmt: skip
def test_json_values_are_stored_as_they_are(value: Any) -> None:
    # Given a JSON value (a GeoJSON dict, even a dict with __geo_interface__, included)
    # When converted, Then it is to be stored as JSON as it is
    assert to_result(value) is None


def test_one_geometry_is_a_collection_of_one_feature_turned_and_rounded() -> None:
    # Given a clockwise polygon with coordinates of many decimals
    polygon = shapely.Polygon([(2.123456789, 48), (2, 49), (3, 49), (3, 48), (2.123456789, 48)])
    # When converted with precision 3
    doc = collection(polygon, precision=3)
    # Then one feature without id or properties, counter-clockwise, rounded
    (feature,) = doc["features"]
    assert feature == {"type": "Feature", "properties": {}, "geometry": feature["geometry"]}
    ring = feature["geometry"]["coordinates"][0]
    assert ring[0] == [2.123, 48.0]
    assert shapely.LinearRing(ring).is_ccw


@pytest.mark.parametrize("container", [list, tuple, iter, lambda items: (i for i in items)])
def test_an_iterable_of_geometries_is_a_collection(container: Any) -> None:
    # Given geometries (and None, a feature without geometry) in a list, tuple or generator
    items = [shapely.Point(1, 2), None, SQUARE_CW]
    # When converted
    doc = collection(container(items))
    # Then each is a feature, in order
    geometries = [f["geometry"] for f in doc["features"]]
    assert geometries[0] == {"type": "Point", "coordinates": [1.0, 2.0]}
    assert geometries[1] is None
    assert geometries[2]["type"] == "Polygon"


def test_features_keep_their_ids_and_properties() -> None:
    # Given Features as read_features yields them, one a bare Feature
    features = [Feature(7, shapely.Point(1, 2), {"name": "a"}), Feature("x", None, {})]
    # When converted, as a list and as one feature
    doc = collection(features)
    single = collection(features[0])
    # Then ids and properties are kept
    assert [(f["id"], f["properties"]) for f in doc["features"]] == [(7, {"name": "a"}), ("x", {})]
    assert single["features"][0]["id"] == 7


def test_geometry_properties_pairs_are_features() -> None:
    # Given (geometry, properties) pairs, and one bare pair
    pairs = [(shapely.Point(1, 2), {"area_m2": 1.5}), (None, {"note": "none"})]
    # When converted
    doc = collection(pairs)
    one = collection((shapely.Point(3, 4), {"a": 1}))
    # Then each pair is one feature with its properties
    assert [f["properties"] for f in doc["features"]] == [{"area_m2": 1.5}, {"note": "none"}]
    assert doc["features"][1]["geometry"] is None
    assert one["features"][0]["properties"] == {"a": 1}


def test_geo_interface_objects_are_features_or_geometries() -> None:
    # Given objects that only have __geo_interface__: a feature (fiona's) and a geometry
    feature = GeoThing(
        {"type": "Feature", "id": "f1", "properties": {"k": 1},
         "geometry": {"type": "Point", "coordinates": [5.0, 6.0]}}
    )  # fmt: skip
    geometry = GeoThing({"type": "LineString", "coordinates": [[0, 0], [1, 1]]})
    # When converted in a generator
    doc = collection(item for item in [feature, geometry])
    # Then the feature keeps its id and properties, the geometry is a feature of its own
    first, second = doc["features"]
    assert (first["id"], first["properties"], first["geometry"]["coordinates"]) == (
        "f1", {"k": 1}, [5.0, 6.0],
    )  # fmt: skip
    assert second["geometry"]["type"] == "LineString"


def test_a_collection_object_is_its_features() -> None:
    # Given a GeoSeries-like object whose __geo_interface__ is a FeatureCollection
    series = GeoThing(
        {"type": "FeatureCollection",
         "features": [{"type": "Feature", "id": "0", "properties": {},
                       "geometry": {"type": "Point", "coordinates": [1, 2]}}]}
    )  # fmt: skip
    # When converted, Then its features are the result's
    assert [f["id"] for f in collection(series)["features"]] == ["0"]


def test_a_geodataframe_is_streamed_and_must_be_in_lon_lat() -> None:
    # Given GeoDataFrame-likes in EPSG:4326 and in Web Mercator
    point = {"type": "Feature", "id": "0", "properties": {"pop": 3},
             "geometry": {"type": "Point", "coordinates": [1.0, 2.0]}}  # fmt: skip
    # When converted, Then the lon/lat one is streamed through iterfeatures()
    doc = collection(FrameLike("EPSG:4326", [point]))
    assert doc["features"][0]["properties"] == {"pop": 3}
    # And the other is refused with the fix
    with pytest.raises(ResultNotStorable, match=r"EPSG:3857.*to_crs\(4326\)"):
        to_result(FrameLike("EPSG:3857", [point]))


def test_a_geometry_across_the_antimeridian_is_split() -> None:
    # Given a continuous polygon from 179°E to 179°W (181°)
    box = shapely.box(179.0, -1.0, 181.0, 1.0)
    # When converted
    geometry = collection([box])["features"][0]["geometry"]
    # Then it is two polygons within ±180
    shape = shapely.geometry.shape(geometry)
    assert shape.geom_type == "MultiPolygon"
    assert shape.bounds == (-180.0, -1.0, 180.0, 1.0)


def test_z_is_kept() -> None:
    # Given a 3D line, When converted, Then its heights are kept
    line = shapely.LineString([(0, 0, 10.5), (1, 1, 20.25)])
    assert collection(line)["features"][0]["geometry"]["coordinates"] == [
        [0.0, 0.0, 10.5], [1.0, 1.0, 20.25],
    ]  # fmt: skip


def test_an_empty_generator_is_an_empty_collection() -> None:
    # Given a generator that yields nothing, When converted, Then an empty collection
    assert collection(x for x in ())["features"] == []


def test_a_geojson_result_is_passed_on_as_it_is() -> None:
    # Given the result of a built-in operation, When converted, Then it is the same object
    result = GeoJSONResult.from_bytes(b'{"type":"FeatureCollection","features":[]}')
    assert to_result(result) is result


def test_a_generator_is_converted_as_it_is_produced(tmp_path: Path) -> None:
    # Given a generator of 100,000 points (about 30 MB of Python objects if all were kept)
    def points() -> Iterator[shapely.Point]:
        for index in range(100_000):
            yield shapely.Point(index * 1e-3 % 180, 45.0)

    # When converted, the result spooled to tmp_path
    tracemalloc.start()
    try:
        result = to_result(points(), tmp_dir=tmp_path)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Then only a chunk of features and the result's 4 MiB spool (copied once when it goes
    # to disk) were in memory at once
    assert isinstance(result, GeoJSONResult)
    with result:
        assert len(result.to_dict()["features"]) == 100_000
    assert peak_bytes < 16 * 1024 * 1024


def test_the_limits_apply() -> None:
    # Given limits of 5 features and 10 vertices
    limits = GeoLimits(max_features=5, max_vertices=10)
    # When more features or vertices are returned, Then they are refused
    with pytest.raises(ResultNotStorable, match="more than 5 features"):
        to_result([shapely.Point(i, 0) for i in range(6)], limits=limits)
    with pytest.raises(ResultNotStorable, match=r"returned\[0\] has more than 10 vertices"):
        to_result([shapely.LineString([(i / 100, 0) for i in range(11)])], limits=limits)
    assert to_result([shapely.Point(i, 0) for i in range(5)], limits=limits) is not None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (datetime.datetime(2026, 1, 1), r"the returned value is a datetime\.datetime.*isoformat"),
        (datetime.date(2026, 1, 1), r"datetime\.date.*isoformat"),
        (decimal.Decimal("1.5"), r"decimal\.Decimal.*float\(value\)"),
        (b"bytes", "is a bytes.*decode it"),
        (np.int64(3), r"numpy\.int64.*\.item\(\)"),
        (np.array([1.0, 2.0]), r"numpy\.ndarray.*tolist\(\)"),
        (object(), "is an object, which cannot be stored.*return JSON values"),
        (float("nan"), "is nan, which JSON cannot hold"),
        ({"geom": shapely.Point(1, 2)}, r"returned\['geom'\] is a shapely.*Point.*pairs"),
        ([1, shapely.Point(1, 2)], r"returned\[1\] is a shapely.*Point"),
        ([shapely.Point(1, 2), 1], r"returned\[1\] is an int.*every item of a geo result"),
        ({"a": [1, {"b": datetime.time(1)}]}, r"returned\['a'\]\[1\]\['b'\] is a datetime\.time"),
        ({1: "one"}, r"has the key 1 \(int\).*strings"),
        ([shapely.Point(1, 2), {"k": 1}], r"returned\[1\] is a dict"),
        ([shapely.Point(1, 2), (shapely.Point(1, 2), {"k": object()})],
         r"properties of returned\[1\] cannot be written as JSON"),
        ([shapely.Point(261_600, 6_250_566)], r"returned\[0\] has coordinates that are not WGS84"),
        ([Feature([1], shapely.Point(1, 2), {})], r"the id of returned\[0\] is a list"),
        ([GeoThing({"type": "FeatureCollection", "features": []})], "whole FeatureCollection"),
        ([GeoThing({"type": "Polygon", "coordinates": "nonsense"})], "not a well-formed geometry"),
        ({1, 2}, r"item 0 \(from 0\) of the returned set is an int"),
    ],
)  # fmt: skip
def test_what_cannot_be_stored_is_refused_saying_what_and_where(value: Any, message: str) -> None:
    # Given a value JSON and GeoJSON cannot hold as it is
    # When converted, Then ResultNotStorable names its type, its place and what to return
    with pytest.raises(ResultNotStorable, match=message):
        to_result(value)


def test_a_generator_is_refused_at_its_first_bad_item() -> None:
    # Given a generator whose fourth item is a dict
    def items() -> Iterator[Any]:
        yield from [shapely.Point(0, 0)] * 3
        yield {"not": "a feature"}

    # When converted, Then the refusal says which item, counting from 0
    with pytest.raises(ResultNotStorable, match=r"item 3 \(from 0\) of the returned generator"):
        to_result(items())


def test_result_not_storable_is_a_geotasks_error() -> None:
    assert issubclass(ResultNotStorable, GeotasksError)
