"""Zipped shapefiles: checked before GDAL reads them in place."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest

from geotasks.errors import InputError
from geotasks.geo.archive import open_zip_layer
from geotasks.geo.limits import GeoLimits
from geotasks.geo.operations import shapefile_to_geojson
from geotasks.geo.options import ReadingOptions

from .conftest import MakeShapefile
from .helpers import SQUARE_CW, document, shapefile_members, zip_files

POLYGON = {"geometry": {"type": "Polygon", "coordinates": [SQUARE_CW]}}


@pytest.fixture
def parcels(tmp_path: Path, make_shapefile: MakeShapefile) -> Path:
    """A shapefile outside the data directory, to be zipped by the tests."""
    source = tmp_path / "source"
    source.mkdir()
    return make_shapefile("parcels", "Polygon", [POLYGON, POLYGON], folder=source)


def test_a_zip_with_the_shapefile_in_a_folder_is_read_in_place(
    data_dir: Path, parcels: Path, limits: GeoLimits
) -> None:
    # Given a zip holding the shapefile inside a folder
    zip_files(data_dir / "parcels.zip", shapefile_members(parcels, "2024/parcels/"))
    # When it is converted by name
    result = document(shapefile_to_geojson("parcels", data_dir=data_dir, limits=limits))
    # Then its features are read and nothing was extracted next to it
    assert len(result["features"]) == 2
    assert sorted(p.name for p in data_dir.iterdir()) == ["parcels.zip"]


def test_a_zip_with_several_layers_needs_layer(
    data_dir: Path, parcels: Path, make_shapefile: MakeShapefile, limits: GeoLimits
) -> None:
    # Given a zip holding two shapefiles
    other = make_shapefile("roads", "Polygon", [POLYGON], folder=parcels.parent)
    zip_files(data_dir / "city.zip", {**shapefile_members(parcels), **shapefile_members(other)})
    # When read without layer=, Then the error lists the layers
    with pytest.raises(InputError, match="several layers"):
        shapefile_to_geojson("city", data_dir=data_dir, limits=limits)
    # And with layer= the chosen one is read
    roads = document(
        shapefile_to_geojson(
            "city", data_dir=data_dir, limits=limits, reading=ReadingOptions(layer="roads")
        )
    )
    assert len(roads["features"]) == 1


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"inner.zip": b"PK"}, "nested archives"),
        ({"../evil.shp": b"x"}, "unsafe path"),
        ({"/etc/evil.shp": b"x"}, "unsafe path"),
        ({"readme.txt": b"hello"}, "holds no dataset"),
    ],
)
def test_unsafe_or_empty_archives_are_refused(
    tmp_path: Path, members: dict[str, bytes], message: str, limits: GeoLimits
) -> None:
    # Given an archive that nests a zip, escapes with ../, or holds no dataset
    archive = zip_files(tmp_path / "bad.zip", members)
    # When it is inspected, Then it is refused with a clear reason
    with pytest.raises(InputError, match=message):
        open_zip_layer(archive, layer=None, limits=limits)


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    # Given an archive with more members than allowed
    archive = zip_files(tmp_path / "many.zip", {f"f{i}.txt": b"" for i in range(11)})
    # When inspected with a limit of 10, Then it is refused
    with pytest.raises(InputError, match="11 members"):
        open_zip_layer(archive, layer=None, limits=GeoLimits(max_zip_members=10))


def test_a_zip_bomb_is_refused_by_declared_size_and_ratio(tmp_path: Path) -> None:
    # Given a shapefile member of 8 MB of zeros (compresses over 1000:1)
    archive = zip_files(tmp_path / "bomb.zip", {"bomb.shp": bytes(8 * 1024 * 1024)})
    # When inspected under a 1 MiB cap (ratio check off), Then the declared size is refused
    capped = GeoLimits(max_zip_bytes=1024 * 1024, max_zip_ratio=10**6)
    with pytest.raises(InputError, match="more than the limit"):
        open_zip_layer(archive, layer=None, limits=capped)
    # And under the default cap, its compression ratio gives it away
    with pytest.raises(InputError, match="zip bomb"):
        open_zip_layer(archive, layer=None, limits=GeoLimits())


def test_a_member_lying_about_its_size_is_refused(tmp_path: Path, parcels: Path) -> None:
    # Given a zip whose .shp declares 100 bytes in both headers but inflates to more
    archive = zip_files(tmp_path / "liar.zip", shapefile_members(parcels))
    _forge_declared_size(archive, "parcels.shp", 100)
    # When inspected, Then the lie is detected before GDAL reads anything
    with pytest.raises(InputError, match="does not hold the size it declares"):
        open_zip_layer(archive, layer=None, limits=GeoLimits())


def test_not_a_zip_is_refused(tmp_path: Path) -> None:
    # Given bytes that are not an archive, When inspected, Then the error says so
    archive = tmp_path / "fake.zip"
    archive.write_bytes(b"not a zip at all")
    with pytest.raises(InputError, match="not a readable zip"):
        open_zip_layer(archive, layer=None, limits=GeoLimits())


def test_zip_with_missing_shx_is_rebuilt_on_a_copy(
    data_dir: Path, parcels: Path, limits: GeoLimits
) -> None:
    # Given a zip whose shapefile has no .shx
    members = {k: v for k, v in shapefile_members(parcels).items() if not k.endswith(".shx")}
    archive = zip_files(data_dir / "noindex.zip", members)
    before = archive.read_bytes()
    # When it is converted
    result = document(shapefile_to_geojson("noindex", data_dir=data_dir, limits=limits))
    # Then the features are read and the archive is untouched
    assert len(result["features"]) == 2
    assert archive.read_bytes() == before


def _forge_declared_size(archive: Path, member: str, size: int) -> None:
    with zipfile.ZipFile(archive) as opened:
        info = opened.getinfo(member)
    data = bytearray(archive.read_bytes())
    struct.pack_into("<I", data, info.header_offset + 22, size)
    position = data.find(b"PK\x01\x02")
    while position != -1:
        name_length = struct.unpack_from("<H", data, position + 28)[0]
        if data[position + 46 : position + 46 + name_length] == member.encode():
            struct.pack_into("<I", data, position + 24, size)
        position = data.find(b"PK\x01\x02", position + 4)
    archive.write_bytes(bytes(data))
