"""Helpers shared by the geo tests."""

from __future__ import annotations

import dataclasses
import struct
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


#: One MultiPatch part: its type (0 triangle strip, 1 fan, 2 outer ring…) and (x, y, z).
Patch = tuple[int, list[tuple[float, float, float]]]


def write_multipatch(stem: Path, records: list[list[Patch]]) -> Path:
    """Write a MultiPatch shapefile (type 31, which GDAL cannot write) with an ``id`` field."""
    bodies = []
    for parts in records:
        points = [point for _kind, part in parts for point in part]
        starts = [sum(len(part) for _kind, part in parts[:i]) for i in range(len(parts))]
        xs, ys, zs = zip(*points, strict=True)
        body = struct.pack("<i4d2i", 31, min(xs), min(ys), max(xs), max(ys), len(parts), len(xs))
        body += struct.pack(f"<{len(parts)}i", *starts)
        body += struct.pack(f"<{len(parts)}i", *(kind for kind, _part in parts))
        body += b"".join(struct.pack("<2d", x, y) for x, y, _z in points)
        body += struct.pack(f"<{2 + len(zs)}d", min(zs), max(zs), *zs)
        bodies.append(body)
    shp, shx, offset_words = b"", b"", 50
    for number, body in enumerate(bodies, start=1):
        shp += struct.pack(">2i", number, len(body) // 2) + body
        shx += struct.pack(">2i", offset_words, len(body) // 2)
        offset_words += 4 + len(body) // 2

    def header(length: int) -> bytes:
        words = (100 + length) // 2
        return (
            struct.pack(">7i", 9994, 0, 0, 0, 0, 0, words)
            + struct.pack("<2i", 1000, 31)
            + struct.pack("<8d", -180, -90, 180, 90, 0, 0, 0, 0)
        )

    stem.with_suffix(".shp").write_bytes(header(len(shp)) + shp)
    stem.with_suffix(".shx").write_bytes(header(len(shx)) + shx)
    count = len(records)
    dbf = struct.pack("<4BIHH20x", 3, 126, 1, 1, count, 65, 5)
    dbf += b"id".ljust(11, b"\x00") + b"N" + bytes(4) + bytes([4, 0]) + bytes(14) + b"\r"
    dbf += b"".join(b" " + str(i).rjust(4).encode() for i in range(count)) + b"\x1a"
    stem.with_suffix(".dbf").write_bytes(dbf)
    return stem.with_suffix(".shp")
