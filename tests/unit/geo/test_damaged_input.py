"""Damaged input found by the reliability suite: each test pins one fix in ``geotasks.geo``."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import fiona
import pytest

from geotasks.errors import InputError
from geotasks.geo.limits import GeoLimits
from geotasks.geo.operations import shapefile_to_geojson
from geotasks.geo.options import ReadingOptions

from .helpers import SAMPLE_DATA, document


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
def test_a_corrupt_prj_is_bad_input(data_dir: Path, prj: bytes) -> None:
    # Given a sound shapefile whose .prj is damaged (found by the fuzz test)
    copy_lowres(data_dir)
    (data_dir / "naturalearth_lowres.prj").write_bytes(prj)

    # When converted, Then it is bad input that says the .prj is unreadable
    with pytest.raises(InputError, match=r"\.prj"):
        shapefile_to_geojson("naturalearth_lowres", data_dir=data_dir, limits=GeoLimits())


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
