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
