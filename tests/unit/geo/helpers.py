"""Helpers shared by the geo tests."""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from geotasks.geo.options import ReadingOptions
from geotasks.geo.result import GeoJSONResult

SAMPLE_DATA = Path(__file__).resolve().parents[3] / "sample_data"

#: A one-degree square (lon/lat) near Paris, clockwise as shapefiles store exteriors.
SQUARE_CW = [(2.0, 48.0), (2.0, 49.0), (3.0, 49.0), (3.0, 48.0), (2.0, 48.0)]


def zip_files(target: Path, members: Mapping[str, bytes | Path]) -> Path:
    """Write a zip archive whose members are given as bytes or files to copy."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            data = content.read_bytes() if isinstance(content, Path) else content
            archive.writestr(name, data)
    return target


def shapefile_members(shp: Path, folder: str = "") -> dict[str, bytes | Path]:
    """The files of a shapefile, named for a zip (optionally inside ``folder``)."""
    return {
        f"{folder}{path.name}": path
        for path in shp.parent.iterdir()
        if path.stem == shp.stem and path.is_file()
    }


def with_reading(options: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of an operation: the reading options among ``options`` gathered into
    one ``reading=``, the others (its own parameters, ``tmp_dir``) left as they are."""
    names = {option.name for option in dataclasses.fields(ReadingOptions)}
    own = {key: value for key, value in options.items() if key not in names}
    return {**own, "reading": ReadingOptions(**{k: v for k, v in options.items() if k in names})}


def document(result: GeoJSONResult) -> dict[str, Any]:
    """Parse a result and close it."""
    with result:
        return result.to_dict()
