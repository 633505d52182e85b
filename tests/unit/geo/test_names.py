"""Dataset names resolve inside the data directory and nowhere else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from geotasks.errors import ConfigurationError, InputError
from geotasks.geo.names import DatasetKind, resolve_dataset

from .conftest import MakeShapefile
from .helpers import SQUARE_CW

POLYGON = {"geometry": {"type": "Polygon", "coordinates": [SQUARE_CW]}}


@pytest.mark.parametrize(
    "name",
    ["", "../secret", "a/../../b", "/etc/passwd", "C:/x", "a\\b", "a\x00b", "a//b", "./a",
     "x" * 256, "{evil}"],
)  # fmt: skip
def test_malformed_names_are_refused(data_dir: Path, name: str) -> None:
    # Given a name that is a path, a traversal, or contains forbidden characters
    # When it is resolved, Then it is refused as bad input
    with pytest.raises(InputError):
        resolve_dataset(name, data_dir)


def test_a_name_must_be_a_string(data_dir: Path) -> None:
    # Given a Path passed where a name is expected
    # When resolved, Then it is refused: a name is never a path
    with pytest.raises(InputError, match="must be a string"):
        resolve_dataset(Path("/etc/passwd"), data_dir)  # type: ignore[arg-type]


def test_finds_shp_then_folder_then_zip(data_dir: Path, make_shapefile: MakeShapefile) -> None:
    # Given parcels.shp, a folder roads/ with one shapefile, and lakes.zip
    make_shapefile("parcels", "Polygon", [POLYGON])
    (data_dir / "roads").mkdir()
    make_shapefile("roads_2024", "Polygon", [POLYGON], folder=data_dir / "roads")
    (data_dir / "lakes.zip").write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    # When each is resolved by name
    parcels = resolve_dataset("parcels", data_dir)
    roads = resolve_dataset("roads", data_dir)
    lakes = resolve_dataset("lakes", data_dir)
    # Then each resolves to the right file
    assert (parcels.kind, parcels.path.name) == (DatasetKind.SHAPEFILE, "parcels.shp")
    assert (roads.kind, roads.path.name) == (DatasetKind.SHAPEFILE, "roads_2024.shp")
    assert (lakes.kind, lakes.path.name) == (DatasetKind.ZIP, "lakes.zip")


def test_sub_folders_and_upper_case_suffixes(data_dir: Path, make_shapefile: MakeShapefile) -> None:
    # Given region/PARCELS.SHP as written by an old Windows tool
    (data_dir / "region").mkdir()
    shp = make_shapefile("PARCELS", "Polygon", [POLYGON], folder=data_dir / "region")
    shp.rename(shp.with_name("PARCELS.SHP"))
    # When resolved as region/PARCELS
    found = resolve_dataset("region/PARCELS", data_dir)
    # Then the upper-case file is found
    assert found.path.name == "PARCELS.SHP"


def test_a_folder_with_several_layers_needs_layer(
    data_dir: Path, make_shapefile: MakeShapefile
) -> None:
    # Given a folder holding two shapefiles
    folder = data_dir / "city"
    folder.mkdir()
    make_shapefile("roads", "Polygon", [POLYGON], folder=folder)
    make_shapefile("parks", "Polygon", [POLYGON], folder=folder)
    # When resolved without layer=, Then the error lists the layers
    with pytest.raises(InputError, match="parks, roads"):
        resolve_dataset("city", data_dir)
    # And with layer= the chosen one is found, an unknown one refused
    assert resolve_dataset("city", data_dir, layer="parks").path.name == "parks.shp"
    with pytest.raises(InputError, match="no layer 'lakes'"):
        resolve_dataset("city", data_dir, layer="lakes")


def test_unknown_name_says_what_was_looked_for(data_dir: Path) -> None:
    # Given an empty data directory, When a name is resolved, Then the message is helpful
    looked_for = r"parcels\.shp, parcels\.gpkg .*, parcels/ and parcels\.zip"
    with pytest.raises(InputError, match=looked_for):
        resolve_dataset("parcels", data_dir)


def test_symlink_leading_out_of_the_data_dir_is_refused(
    tmp_path: Path, data_dir: Path, make_shapefile: MakeShapefile
) -> None:
    # Given a shapefile outside the data directory and a symlink to it inside
    outside = tmp_path / "outside"
    outside.mkdir()
    shp = make_shapefile("secret", "Polygon", [POLYGON], folder=outside)
    os.symlink(shp, data_dir / "secret.shp")
    # When resolved, Then it is refused
    with pytest.raises(InputError, match="outside the data directory"):
        resolve_dataset("secret", data_dir)


def test_sidecar_symlink_leading_out_is_refused(
    tmp_path: Path, data_dir: Path, make_shapefile: MakeShapefile
) -> None:
    # Given a shapefile whose .prj is a symlink to a file outside the data directory
    make_shapefile("parcels", "Polygon", [POLYGON])
    (tmp_path / "passwd").write_text("root:x:0:0")
    (data_dir / "parcels.prj").unlink()
    os.symlink(tmp_path / "passwd", data_dir / "parcels.prj")
    # When resolved, Then it is refused
    with pytest.raises(InputError, match="outside the data directory"):
        resolve_dataset("parcels", data_dir)


def test_symlink_inside_the_data_dir_is_followed(
    data_dir: Path, make_shapefile: MakeShapefile
) -> None:
    # Given a symlinked folder that stays inside the data directory
    (data_dir / "real").mkdir()
    make_shapefile("parcels", "Polygon", [POLYGON], folder=data_dir / "real")
    os.symlink(data_dir / "real", data_dir / "alias")
    # When resolved through the link, Then the real file is found
    assert resolve_dataset("alias/parcels", data_dir).path == data_dir / "real" / "parcels.shp"


def test_missing_data_dir_is_a_configuration_error(tmp_path: Path) -> None:
    # Given a data directory that does not exist, When a name is resolved
    # Then the error blames the configuration, not the user
    with pytest.raises(ConfigurationError):
        resolve_dataset("parcels", tmp_path / "nope")
