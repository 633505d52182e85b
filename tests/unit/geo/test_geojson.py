"""RFC 7946 output: winding, rounding, nulls, Z, ids, bbox, antimeridian."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import fiona
import numpy as np
import orjson
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Transformer

from geotasks.errors import InputError
from geotasks.geo.batch import BatchBuilder, geojson_geometries, geometry_texts, orient_and_round
from geotasks.geo.geojson import FeatureCollectionWriter
from geotasks.geo.limits import GeoLimits
from geotasks.geo.operations import shapefile_to_geojson
from geotasks.geo.result import GeoJSONResult

from .conftest import MakeShapefile
from .helpers import SQUARE_CW, document, with_reading


def convert(data_dir: Path, name: str, **options: Any) -> dict[str, Any]:
    return document(
        shapefile_to_geojson(name, data_dir=data_dir, limits=GeoLimits(), **with_reading(options))
    )


def test_exteriors_turn_counter_clockwise_and_holes_clockwise(data_dir: Path, square: Path) -> None:
    # Given a polygon with a hole stored the shapefile way (exterior clockwise)
    # When converted
    rings = convert(data_dir, "square")["features"][0]["geometry"]["coordinates"]
    # Then the exterior turns counter-clockwise, the hole clockwise, both closed
    assert shapely.LinearRing(rings[0]).is_ccw
    assert not shapely.LinearRing(rings[1]).is_ccw
    assert all(ring[0] == ring[-1] for ring in rings)


def test_real_multipolygons_are_wound_right(data_dir: Path, sample: Any) -> None:
    # Given the Natural Earth countries, When converted
    sample("naturalearth_lowres")
    doc = convert(data_dir, "naturalearth_lowres")
    # Then every exterior of every country is counter-clockwise
    for feature in doc["features"]:
        geometry = shapely.geometry.shape(feature["geometry"])
        for polygon in shapely.get_parts(geometry):
            assert polygon.exterior.is_ccw, feature["properties"]["name"]
            assert all(not ring.is_ccw for ring in polygon.interiors)


def test_rounding_nulls_z_ids_and_no_crs(data_dir: Path, make_shapefile: MakeShapefile) -> None:
    # Given 3D points, one of them null, with long decimals
    make_shapefile(
        "wells", "3D Point",
        [
            {"geometry": {"type": "Point", "coordinates": (2.123456789, 48.987654321, 35.5)}},
            {"geometry": None},
        ],
    )  # fmt: skip
    # When converted with 3 decimals
    doc = convert(data_dir, "wells", precision=3)
    first, second = doc["features"]
    # Then coordinates are rounded, Z is kept, the null stays null and ids are kept
    assert first["geometry"]["coordinates"] == [2.123, 48.988, 35.5]
    assert second["geometry"] is None
    assert [first["id"], second["id"]] == [0, 1]
    assert set(doc) == {"type", "features"}


def test_dates_become_iso_strings_and_nan_becomes_null(
    data_dir: Path, make_shapefile: MakeShapefile
) -> None:
    # Given a DBF with a date and a NaN value
    make_shapefile(
        "obs", "Point",
        [{"geometry": {"type": "Point", "coordinates": (1, 2)},
          "properties": {"day": "2024-02-29", "value": math.nan}}],
        properties={"day": "date", "value": "float"},
    )  # fmt: skip
    # When converted, Then the date is ISO 8601 and NaN is null (valid JSON)
    assert convert(data_dir, "obs")["features"][0]["properties"] == {
        "day": "2024-02-29",
        "value": None,
    }


def test_writer_bbox_and_shapely_geometries() -> None:
    # Given a writer asked for a bbox
    result = GeoJSONResult()
    writer = FeatureCollectionWriter(result, precision=2, write_bbox=True)
    # When it writes a clockwise shapely polygon and a null, and is closed
    writer.write_feature("a", {"k": b"\x00\x01"}, shapely.Polygon(SQUARE_CW))
    writer.write_feature(None, {}, None)
    writer.close()
    doc = document(result)
    # Then the polygon is re-wound, bytes become base64, the id-less feature has no id
    first, second = doc["features"]
    assert shapely.LinearRing(first["geometry"]["coordinates"][0]).is_ccw
    assert first["properties"] == {"k": "AAE="}
    assert "id" not in second
    assert doc["bbox"] == [2.0, 48.0, 3.0, 49.0]


def test_writer_refuses_a_bad_precision() -> None:
    # Given 20 decimals (more than a float64 holds), When a writer is made, Then it refuses
    with pytest.raises(InputError, match="precision"):
        FeatureCollectionWriter(GeoJSONResult(), precision=20)


def test_mixed_2d_and_3d_geojson_source(tmp_path: Path, data_dir: Path) -> None:
    # Given a GeoJSON file (an earlier job's result) mixing 2D and 3D points
    path = tmp_path / "mixed.geojson"
    path.write_text(
        '{"type":"FeatureCollection","features":['
        '{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[1,2]}},'
        '{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[3,4,5]}}]}'
    )
    # When converted, Then each keeps its own dimension
    doc = document(shapefile_to_geojson(path, data_dir=data_dir, limits=GeoLimits()))
    assert [f["geometry"]["coordinates"] for f in doc["features"]] == [[1, 2], [3, 4, 5]]


def test_projected_data_crossing_the_antimeridian_is_split(
    data_dir: Path, make_shapefile: MakeShapefile
) -> None:
    # Given a polygon around 180° stored in a Pacific-centred Mercator (EPSG:3832)

    forward = Transformer.from_crs("OGC:CRS84", "EPSG:3832", always_xy=True)
    ring = [forward.transform(lon, lat) for lon, lat in
            [(179, -17), (179, -16), (-179, -16), (-179, -17), (179, -17)]]  # fmt: skip
    make_shapefile(
        "pacific", "Polygon", [{"geometry": {"type": "Polygon", "coordinates": [ring[::-1]]}}],
        crs="EPSG:3832",
    )  # fmt: skip
    # When converted to GeoJSON
    geometry = convert(data_dir, "pacific")["features"][0]["geometry"]
    # Then it is split at ±180 into two closed, valid parts within -180..180
    assert geometry["type"] == "MultiPolygon"
    shape = shapely.geometry.shape(geometry)
    assert shape.is_valid
    assert shape.bounds == pytest.approx((-180, -17, 180, -16))
    for polygon in geometry["coordinates"]:
        assert polygon[0][0] == polygon[0][-1]


coordinates = st.floats(min_value=-170, max_value=170, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    centre=st.tuples(coordinates, st.floats(min_value=-80, max_value=80)),
    radius=st.floats(min_value=1e-6, max_value=5),
    points=st.integers(min_value=3, max_value=40),
    clockwise=st.booleans(),
    precision=st.integers(min_value=0, max_value=15),
)
def test_orientation_and_rounding_match_shapely(
    centre: tuple[float, float], radius: float, points: int, clockwise: bool, precision: int
) -> None:
    # Given a polygon with a hole, of any size, anywhere, wound either way
    shell = shapely.Point(centre).buffer(radius, quad_segs=max(1, points // 4))
    hole = shapely.Point(centre).buffer(radius / 3, quad_segs=2)
    polygon = shapely.orient_polygons(
        shapely.Polygon(shell.exterior, [hole.exterior]), exterior_cw=clockwise
    )
    feature = shapely.geometry.mapping(polygon)
    builder = BatchBuilder("test")
    builder.dims = 2
    builder.add(fiona.Geometry.from_dict(feature))
    batch = builder.build()
    # When oriented and rounded the fast way
    orient_and_round(batch, precision)
    rings = geojson_geometries(batch)[0]["coordinates"]  # type: ignore[index]
    # Then the values are shapely's rounded coordinates, in RFC 7946 order
    expected = shapely.orient_polygons(polygon, exterior_cw=False)
    assert np.array_equal(rings[0], np.round(np.asarray(expected.exterior.coords), precision))
    assert np.array_equal(rings[1], np.round(np.asarray(expected.interiors[0].coords), precision))


_coordinate = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@st.composite
def _geometries(draw: st.DrawFn, dims: int) -> dict[str, Any] | None:
    def position() -> tuple[float, ...]:
        return tuple(draw(_coordinate) for _ in range(dims))

    def run(minimum: int) -> list[tuple[float, ...]]:
        return [position() for _ in range(draw(st.integers(minimum, 6)))]

    def ring() -> list[tuple[float, ...]]:
        positions = run(3)
        return [*positions, positions[0]]

    def polygon() -> list[list[tuple[float, ...]]]:
        return [ring() for _ in range(draw(st.integers(1, 3)))]

    kind = draw(
        st.sampled_from(
            [
                "Point",
                "MultiPoint",
                "LineString",
                "MultiLineString",
                "Polygon",
                "MultiPolygon",
                None,
            ]
        )
    )
    makers: dict[str, Any] = {
        "Point": position,
        "MultiPoint": lambda: run(1),
        "LineString": lambda: run(2),
        "MultiLineString": lambda: [run(2) for _ in range(draw(st.integers(1, 3)))],
        "Polygon": polygon,
        "MultiPolygon": lambda: [polygon() for _ in range(draw(st.integers(1, 3)))],
    }
    return None if kind is None else {"type": kind, "coordinates": makers[kind]()}


@settings(max_examples=150, deadline=None)
@given(data=st.data(), dims=st.sampled_from([2, 3]), precision=st.integers(0, 15))
def test_geometry_texts_are_the_json_of_each_geometry(
    data: st.DataObject, dims: int, precision: int
) -> None:
    # Given a batch mixing every geometry type, nulls and (in the 2D case) an empty point
    geometries = data.draw(st.lists(_geometries(dims), min_size=1, max_size=12))
    if dims == 2:
        geometries.append({"type": "Point", "coordinates": ()})
    builder = BatchBuilder("test")
    builder.dims = dims
    for geometry in geometries:
        builder.add(None if geometry is None else fiona.Geometry.from_dict(geometry))
    batch = builder.build()
    orient_and_round(batch, precision)
    # When each feature's text is cut out of the batch's text
    texts = geometry_texts(batch)
    # Then it is byte for byte orjson's text of the geometry built from numpy views
    expected = [
        orjson.dumps(geometry, option=orjson.OPT_SERIALIZE_NUMPY)
        for geometry in geojson_geometries(batch)
    ]
    assert texts == expected
    assert [None if text == b"null" else orjson.loads(text)["type"] for text in texts] == [
        None if geometry is None else geometry["type"] for geometry in geometries
    ]
