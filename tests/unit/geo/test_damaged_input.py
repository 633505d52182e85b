"""Damaged input found by the reliability suite: each test pins one fix in ``geotasks.geo``."""

from __future__ import annotations

import logging
import shutil
import struct
from pathlib import Path

import fiona
import pytest

from geotasks.errors import InputError
from geotasks.geo.limits import GeoLimits
from geotasks.geo.operations import shapefile_to_geojson
from geotasks.geo.options import ReadingOptions
from geotasks.job_warnings import recording

from .conftest import MakeShapefile
from .helpers import SAMPLE_DATA, document, shapefile_members, write_multipatch, zip_files


def test_infinite_coordinates_are_refused_not_written_as_null(data_dir: Path) -> None:
    # Given a lon/lat point whose record (and header bounds) hold ±infinity, as bytes: GDAL
    # will not write such a point, but a damaged or hostile file can hold one
    shp = data_dir / "infinite.shp"
    schema = {"geometry": "Point", "properties": {"name": "str"}}
    with fiona.open(shp, "w", driver="ESRI Shapefile", schema=schema, crs="EPSG:4326") as sink:
        sink.write(
            {"geometry": {"type": "Point", "coordinates": (1.0, 2.0)}, "properties": {"name": "a"}}
        )
    raw = bytearray(shp.read_bytes())
    raw[36:68] = struct.pack("<4d", float("-inf"), float("-inf"), float("inf"), float("inf"))
    raw[112:128] = struct.pack("<2d", float("inf"), float("-inf"))
    shp.write_bytes(bytes(raw))

    # When converted, Then it is bad input, not a FeatureCollection with null coordinates
    with pytest.raises(InputError, match="not finite"):
        shapefile_to_geojson("infinite", data_dir=data_dir, limits=GeoLimits())


def test_a_missing_tmp_dir_is_created_for_a_rebuilt_shx(data_dir: Path, tmp_path: Path) -> None:
    # Given a shapefile whose .shx is cut short, and a tmp dir that does not exist yet (a
    # fresh worker host): it used to fail with FileNotFoundError, which is not bad input
    for path in SAMPLE_DATA.glob("naturalearth_lowres.*"):
        shutil.copy(path, data_dir / path.name)
    shx = data_dir / "naturalearth_lowres.shx"
    shx.write_bytes(shx.read_bytes()[: shx.stat().st_size // 2])
    tmp_dir = tmp_path / "not" / "yet"

    # When converted
    result = shapefile_to_geojson(
        "naturalearth_lowres", data_dir=data_dir, limits=GeoLimits(), tmp_dir=tmp_dir
    )

    # Then the index is rebuilt in the new tmp dir and every feature is read
    assert len(document(result)["features"]) == 177
    assert tmp_dir.is_dir()


def copy_lowres(data_dir: Path) -> None:
    for path in SAMPLE_DATA.glob("naturalearth_lowres.*"):
        shutil.copy(path, data_dir / path.name)


@pytest.mark.parametrize(
    "prj",
    [
        # GDAL's WKT parser refuses it (fiona raised CPLE_AppDefinedError).
        b'GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137.0,298.257223563]],'
        b'PRIMEM["Greenwich",0.:],UNIT["Degree",0.0174532925199433]]',
        # Not UTF-8 (fiona raised UnboundLocalError).
        b'GEOGCS["GCS_\xc7GS_1984"]',
    ],
    ids=["unparsable", "not-utf8"],
)
def test_a_corrupt_prj_over_lon_lat_is_read_as_a_missing_one(
    data_dir: Path, prj: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a sound lon/lat shapefile whose .prj is damaged (found by the fuzz test)
    copy_lowres(data_dir)
    (data_dir / "naturalearth_lowres.prj").write_bytes(prj)

    # When converted, Then it is read as WGS84, as with no .prj, with the same warning
    with caplog.at_level(logging.WARNING), recording() as warnings:
        result = shapefile_to_geojson("naturalearth_lowres", data_dir=data_dir, limits=GeoLimits())
    assert len(document(result)["features"]) == 177
    assert "has a .prj that cannot be parsed and lon/lat-like bounds" in caplog.text
    assert "crs_assumed" in [w["kind"] for w in warnings]


def test_a_corrupt_prj_over_projected_coordinates_needs_source_crs(
    data_dir: Path, make_shapefile: MakeShapefile
) -> None:
    # Given metres (Lambert-93) under a .prj nobody can parse
    paris = {"type": "Point", "coordinates": (652_469.0, 6_862_035.0)}
    shp = make_shapefile("l93", "Point", [{"geometry": paris}], crs="EPSG:2154")
    shp.with_suffix(".prj").write_text("PROJCS[garbage")
    # When converted, Then the message asks for source_crs=, as for a missing .prj
    with pytest.raises(InputError, match=r"a \.prj that cannot be parsed .* pass source_crs="):
        shapefile_to_geojson("l93", data_dir=data_dir, limits=GeoLimits())
    # And with it the data converts
    result = shapefile_to_geojson(
        "l93",
        data_dir=data_dir,
        limits=GeoLimits(),
        reading=ReadingOptions(source_crs="EPSG:2154"),
    )
    lon, lat = document(result)["features"][0]["geometry"]["coordinates"]
    assert (round(lon, 2), round(lat, 2)) == (2.35, 48.86)


def test_a_shapefile_without_its_dbf_converts_without_attributes(
    data_dir: Path, square: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a .shp and .shx whose .dbf was lost, plain and zipped
    square.with_suffix(".dbf").unlink()
    zip_files(data_dir / "zipped.zip", shapefile_members(square))
    for name in ("square", "zipped"):
        # When converted
        with caplog.at_level(logging.WARNING):
            doc = document(shapefile_to_geojson(name, data_dir=data_dir, limits=GeoLimits()))
        # Then the features are there, with no properties, and a warning says why
        assert [f["properties"] for f in doc["features"]] == [{}]
        assert doc["features"][0]["geometry"]["type"] == "Polygon"
        assert "the .dbf file is missing" in caplog.text


def test_a_multipatch_shapefile_becomes_polygons_with_z(data_dir: Path) -> None:
    # Given a MultiPatch shapefile (shape type 31): a triangle strip, a fan and an outer ring
    write_multipatch(
        data_dir / "roofs",
        [
            [(0, [(2.0, 48.0, 1.0), (2.1, 48.0, 1.0), (2.0, 48.1, 2.0), (2.1, 48.1, 2.0)])],
            [(1, [(2.0, 48.0, 5.0), (2.1, 48.0, 5.0), (2.1, 48.1, 6.0), (2.0, 48.1, 6.0)])],
            [(2, [(2.0, 48.0, 0.0), (2.0, 48.1, 0.0), (2.1, 48.1, 0.0), (2.1, 48.0, 0.0),
                  (2.0, 48.0, 0.0)])],
        ],
    )  # fmt: skip

    # When converted
    with recording() as warnings:
        doc = document(shapefile_to_geojson("roofs", data_dir=data_dir, limits=GeoLimits()))

    # Then each patch is a MultiPolygon whose positions keep their heights
    geometries = [feature["geometry"] for feature in doc["features"]]
    assert [g["type"] for g in geometries] == ["MultiPolygon"] * 3
    strip = geometries[0]["coordinates"]
    assert len(strip) == 2 and {len(p[0]) for p in strip} == {4}
    assert {tuple(position) for position in strip[0][0]} == {
        (2.0, 48.0, 1.0), (2.1, 48.0, 1.0), (2.0, 48.1, 2.0)
    }  # fmt: skip
    assert {position[2] for position in geometries[1]["coordinates"][0][0]} == {5.0, 6.0}
    # And the triangles sharing edges (not a valid MultiPolygon) are kept and reported
    assert [(w["count"], w["first_ids"]) for w in warnings if w["kind"] != "crs_assumed"] == [
        (2, [0, 1])
    ]


def test_a_cpg_holding_a_nul_byte_is_ignored(data_dir: Path) -> None:
    # Given a shapefile whose .cpg holds a NUL byte inside its text (found by the fuzz test;
    # codecs.lookup raised ValueError)
    copy_lowres(data_dir)
    (data_dir / "naturalearth_lowres.cpg").write_bytes(b"\x01\x00SO-8859-1")

    # When converted, Then the .cpg is ignored like any unknown encoding and every feature read
    result = shapefile_to_geojson("naturalearth_lowres", data_dir=data_dir, limits=GeoLimits())
    assert len(document(result)["features"]) == 177


def test_an_encoding_argument_holding_a_nul_byte_is_bad_input(data_dir: Path) -> None:
    # Given a caller's encoding= with a NUL byte, When converted, Then it is bad input
    copy_lowres(data_dir)
    with pytest.raises(InputError, match="unknown encoding"):
        shapefile_to_geojson(
            "naturalearth_lowres",
            data_dir=data_dir,
            limits=GeoLimits(),
            reading=ReadingOptions(encoding="utf\x008"),
        )


def test_a_dbf_damaged_into_non_utf8_gdal_messages_is_bad_input(data_dir: Path) -> None:
    # Given a .dbf with one byte flipped, so that GDAL's warning about it quotes bytes that
    # are not UTF-8 (found by the fuzz test; fiona's error handler turned it into SystemError)
    copy_lowres(data_dir)
    dbf = data_dir / "naturalearth_lowres.dbf"
    raw = bytearray(dbf.read_bytes())
    raw[int(0.5164739268764676 * len(raw))] ^= 0x80
    dbf.write_bytes(bytes(raw))

    # When converted under fiona's GDAL error handler (installed by a fiona.Env, as a worker
    # has after rebuilding a .shx), Then it is bad input
    with fiona.Env(), pytest.raises(InputError, match="cannot read features"):
        shapefile_to_geojson("naturalearth_lowres", data_dir=data_dir, limits=GeoLimits())
