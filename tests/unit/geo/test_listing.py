"""The dataset names a data directory offers to pickers."""

from __future__ import annotations

from pathlib import Path

from geotasks.geo.listing import list_dataset_names
from geotasks.geo.names import resolve_dataset


def test_every_listed_name_resolves_and_nothing_else_is_listed(tmp_path: Path) -> None:
    # Given shapefiles, an archive, a sub-folder, a hidden file, a link out and other files
    data = tmp_path / "data"
    (data / "region").mkdir(parents=True)
    for path in (
        "parcels.shp",
        "parcels.shx",
        "parcels.dbf",
        "region/roads.shp",
        "region/roads.shx",
    ):
        (data / path).write_bytes(b"")
    (data / "countries.zip").write_bytes(b"")
    (data / ".hidden.shp").write_bytes(b"")
    (data / "notes.txt").write_text("")
    (tmp_path / "secret.shp").write_bytes(b"")
    (data / "link.shp").symlink_to(tmp_path / "secret.shp")
    # When the directory is listed
    names = list_dataset_names(data)
    # Then each dataset is named as resolving finds it, and only those
    assert names == ["countries.zip", "parcels", "region/roads"]
    assert resolve_dataset("parcels", data).path.name == "parcels.shp"
    assert resolve_dataset("countries.zip", data).path.name == "countries.zip"


def test_a_missing_directory_lists_nothing(tmp_path: Path) -> None:
    assert list_dataset_names(tmp_path / "missing") == []
