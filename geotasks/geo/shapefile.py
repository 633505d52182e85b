"""The files of one shapefile: find them, check their headers, rebuild a missing ``.shx``.

Headers are checked before GDAL opens anything: GDAL reads a truncated ``.shp`` or ``.dbf``
without complaint (the missing records come back empty), and a file that is not a shapefile
gets a clearer message here than GDAL's.
"""

from __future__ import annotations

import logging
import shutil
import struct
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import fiona

from geotasks.errors import InputError
from geotasks.geo.archive import ZipLayer, extract_layer

logger = logging.getLogger(__name__)

#: Bytes of ``.dbf`` records sampled to guess an undeclared encoding.
DBF_SAMPLE_BYTES = 256 * 1024

#: Longest ``.cpg`` file read, in bytes (it holds one short word).
MAX_CPG_BYTES = 256

#: Shapefile shape types GDAL reads as simple features (null, points, lines, polygons,
#: multipoints, each in 2D, Z and M variants), and MultiPatch (31): 3D surfaces of triangle
#: strips, fans and rings, which GDAL reads as MultiPolygon Z (one polygon a triangle or ring).
SUPPORTED_SHAPE_TYPES = frozenset({0, 1, 3, 5, 8, 11, 13, 15, 18, 21, 23, 25, 28, 31})

#: Length of the fixed header of a ``.shp`` or ``.shx`` file.
SHP_HEADER_BYTES = 100

_SHP_HEADER = struct.Struct(">7i")
_SHP_MAGIC = 9994
_DBF_HEADER = struct.Struct("<4xIHH")


@dataclass(frozen=True, slots=True)
class ShapefileInfo:
    """What was learned about a shapefile before opening it with GDAL.

    Parameters:
      gdal_path: The path to hand GDAL (a local path or a ``/vsizip/`` path).
      has_prj: Whether a ``.prj`` file exists.
      cpg_text: The ``.cpg`` content, if there is one.
      dbf_header: The ``.dbf`` header's first 32 bytes (empty without a ``.dbf``).
      dbf_sample: Up to :data:`DBF_SAMPLE_BYTES` of ``.dbf`` records.
    """

    gdal_path: str
    has_prj: bool
    cpg_text: str | None
    dbf_header: bytes
    dbf_sample: bytes


class _Files(Protocol):
    def size(self, suffix: str) -> int | None: ...

    def head(self, suffix: str, start: int, count: int) -> bytes: ...


def inspect_shapefile(shp_path: Path, label: str, scratch: Callable[[], Path]) -> ShapefileInfo:
    """Check a shapefile on disk; rebuild its ``.shx`` in ``tmp_dir`` if it is missing.

    Parameters:
      shp_path: The ``.shp`` file.
      label: The dataset's name, for messages.
      scratch: Makes a private temporary directory that outlives the reading (called only
        when a copy is needed).

    Returns:
      What to open and how.

    Raises:
      InputError: If a part is missing, truncated, or not a shapefile.
    """
    files = _LocalFiles(shp_path)
    info, needs_shx = _inspect(files, label, shp_path.as_posix())
    if not needs_shx:
        return info
    copy = scratch() / f"{shp_path.stem}.shp"
    for suffix, source in files.paths.items():
        if suffix != ".shx":
            shutil.copyfile(source, copy.with_suffix(suffix))
    _restore_shx(copy, label)
    return _replace_path(info, copy.as_posix())


def inspect_zip_shapefile(
    zip_layer: ZipLayer, label: str, scratch: Callable[[], Path]
) -> ShapefileInfo:
    """Check a shapefile inside a verified zip; rebuild a missing ``.shx`` on a copy.

    Parameters:
      zip_layer: The layer chosen in the archive.
      label: The dataset's name, for messages.
      scratch: Makes a private temporary directory that outlives the reading (called only
        when a copy is needed).

    Returns:
      What to open and how.

    Raises:
      InputError: If a part is missing, truncated, or not a shapefile.
    """
    info, needs_shx = _inspect(_ZipFiles(zip_layer), label, zip_layer.vsi_path)
    if not needs_shx:
        return info
    copy = extract_layer(zip_layer, scratch())
    _restore_shx(copy, label)
    return _replace_path(info, copy.as_posix())


def _inspect(files: _Files, label: str, gdal_path: str) -> tuple[ShapefileInfo, bool]:
    shp_size = files.size(".shp")
    if shp_size is None:
        raise InputError(f"{label}: the .shp file is missing")
    _check_shp_header(files.head(".shp", 0, SHP_HEADER_BYTES), shp_size, label)
    dbf_size = files.size(".dbf")
    dbf_header = dbf_sample = b""
    if dbf_size is None:
        # GDAL reads the geometries alone, as ogr2ogr and QGIS do.
        logger.warning("%s: the .dbf file is missing; features will have no attributes", label)
    else:
        dbf_header = files.head(".dbf", 0, 32)
        header_bytes = _check_dbf_header(dbf_header, dbf_size, label)
        dbf_sample = files.head(".dbf", header_bytes, DBF_SAMPLE_BYTES)
    shx_size = files.size(".shx")
    needs_shx = shx_size is None or not _shx_is_sound(files.head(".shx", 0, 28), shx_size)
    if needs_shx:
        logger.info("%s: the .shx index is missing or damaged; rebuilding it on a copy", label)
    cpg_size = files.size(".cpg")
    cpg_text = None
    if cpg_size is not None:
        cpg_text = files.head(".cpg", 0, MAX_CPG_BYTES).decode("utf-8-sig", errors="replace")
    info = ShapefileInfo(
        gdal_path=gdal_path,
        has_prj=files.size(".prj") is not None,
        cpg_text=cpg_text,
        dbf_header=dbf_header,
        dbf_sample=dbf_sample,
    )
    return info, needs_shx


def _check_shp_header(header: bytes, size: int, label: str) -> None:
    if len(header) < SHP_HEADER_BYTES:
        raise InputError(f"{label} is not a shapefile: the .shp file is too short")
    magic, *_, words = _SHP_HEADER.unpack_from(header)
    version, shape_type = struct.unpack_from("<2i", header, 28)
    if magic != _SHP_MAGIC or version != 1000:
        raise InputError(f"{label} is not a shapefile: the .shp file has no shapefile header")
    if words * 2 > size:
        raise InputError(
            f"{label}: the .shp file is truncated ({size} bytes of the {words * 2} declared)"
        )
    if shape_type not in SUPPORTED_SHAPE_TYPES:
        raise InputError(f"{label}: unknown shapefile geometry type {shape_type}")


def _check_dbf_header(header: bytes, size: int, label: str) -> int:
    if len(header) < 32:
        raise InputError(f"{label}: the .dbf file is too short to be a dBASE table")
    records, header_bytes, record_bytes = _DBF_HEADER.unpack_from(header)
    if header_bytes < 33 or record_bytes < 1:
        raise InputError(f"{label}: the .dbf file is not a dBASE table")
    expected = header_bytes + records * record_bytes
    if expected > size:
        raise InputError(
            f"{label}: the .dbf file is truncated ({size} bytes of the {expected} declared)"
        )
    return int(header_bytes)


def _shx_is_sound(header: bytes, size: int) -> bool:
    if len(header) < 28:
        return False
    magic, *_, words = struct.unpack_from(">7i", header)
    return bool(magic == _SHP_MAGIC and words * 2 <= size)


def _restore_shx(shp_copy: Path, label: str) -> None:
    """Have GDAL rebuild the ``.shx`` of a private copy.

    ``SHAPE_RESTORE_SHX`` must never be set process-wide: GDAL would then rewrite the ``.shx``
    of any shapefile it opens. fiona's ``Env`` sets options per thread except on the main
    thread, where they are global, so the rebuild runs in a thread of its own.
    """
    failures: list[BaseException] = []

    def rebuild() -> None:
        try:
            with fiona.Env(SHAPE_RESTORE_SHX="YES"), fiona.open(shp_copy):
                pass
        except Exception as exc:  # re-raised below, in the caller's thread
            failures.append(exc)

    worker = threading.Thread(target=rebuild, name="geotasks-restore-shx")
    worker.start()
    worker.join()
    if failures or not shp_copy.with_suffix(".shx").exists():
        raise InputError(f"{label}: the .shx index is missing and cannot be rebuilt") from (
            failures[0] if failures else None
        )


def _replace_path(info: ShapefileInfo, gdal_path: str) -> ShapefileInfo:
    return ShapefileInfo(
        gdal_path=gdal_path,
        has_prj=info.has_prj,
        cpg_text=info.cpg_text,
        dbf_header=info.dbf_header,
        dbf_sample=info.dbf_sample,
    )


class _LocalFiles:
    """The parts of a shapefile on disk, matched by suffix in any letter case."""

    def __init__(self, shp_path: Path) -> None:
        stem = shp_path.stem.lower()
        self.paths = {
            p.suffix.lower(): p
            for p in shp_path.parent.iterdir()
            if p.stem.lower() == stem and p.is_file()
        }
        self.paths[".shp"] = shp_path

    def size(self, suffix: str) -> int | None:
        path = self.paths.get(suffix)
        return None if path is None else path.stat().st_size

    def head(self, suffix: str, start: int, count: int) -> bytes:
        with self.paths[suffix].open("rb") as file:
            file.seek(start)
            return file.read(count)


class _ZipFiles:
    """The parts of a shapefile inside a zip archive whose sizes were verified."""

    def __init__(self, zip_layer: ZipLayer) -> None:
        self._zip_path = zip_layer.zip_path
        self._members = {".shp": zip_layer.shp_member, **zip_layer.sidecars}

    def size(self, suffix: str) -> int | None:
        member = self._members.get(suffix)
        if member is None:
            return None
        with zipfile.ZipFile(self._zip_path) as archive:
            return archive.getinfo(member).file_size

    def head(self, suffix: str, start: int, count: int) -> bytes:
        with zipfile.ZipFile(self._zip_path) as archive, archive.open(self._members[suffix]) as f:
            f.seek(start)
            return f.read(count)
