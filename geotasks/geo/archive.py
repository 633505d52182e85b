"""Zipped shapefiles: inspect an archive before GDAL reads it in place through ``/vsizip/``.

The central directory is checked first (member count, names, nesting, encryption, declared
sizes and ratios). Declared sizes can lie, and GDAL decompresses a member's deflate stream to
its end whatever the directory says, so the members of the chosen layer are then decompressed
once here, counting the bytes, and the archive is refused if any member is longer than it
declares or the total passes the cap. Only then does GDAL open it; nothing is written to disk.
"""

from __future__ import annotations

import logging
import posixpath
import shutil
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from geotasks.errors import InputError
from geotasks.geo.limits import GeoLimits

logger = logging.getLogger(__name__)

#: Sidecar extensions of a shapefile that GDAL may read, besides ``.shp`` itself.
SIDECAR_SUFFIXES = (".shx", ".dbf", ".prj", ".cpg")

#: Archive formats GDAL could open inside an archive; a member with one of these is refused.
_NESTED_ARCHIVE_SUFFIXES = (".zip", ".kmz", ".gz", ".tgz", ".tar", ".7z")

#: Members smaller than this (bytes) are never flagged for their compression ratio.
_RATIO_FLOOR_BYTES = 64 * 1024

#: Size of the compressed chunks fed to zlib while verifying a member (bytes).
_VERIFY_CHUNK_BYTES = 256 * 1024

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_LOCAL_HEADER_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True, slots=True)
class ZipLayer:
    """One shapefile inside a zip archive, checked and ready for GDAL.

    Parameters:
      zip_path: The archive on disk.
      shp_member: The ``.shp`` member's name inside the archive.
      sidecars: Lower-case sidecar suffix (``.dbf``…) to member name, for those present.
    """

    zip_path: Path
    shp_member: str
    sidecars: dict[str, str]

    @property
    def name(self) -> str:
        """The layer name: the ``.shp`` member's stem."""
        return posixpath.splitext(posixpath.basename(self.shp_member))[0]

    @property
    def vsi_path(self) -> str:
        """The GDAL path reading the ``.shp`` in place (braces allow ``.zip`` in folder names)."""
        return f"/vsizip/{{{self.zip_path}}}/{self.shp_member}"


def open_zip_layer(zip_path: Path, *, layer: str | None, limits: GeoLimits) -> ZipLayer:
    """Check a zip archive and pick the shapefile to read from it.

    Parameters:
      zip_path: The archive (already resolved inside the data directory).
      layer: The layer to read: a ``.shp`` member's stem, or its path inside the archive
        without the suffix. Needed when the archive holds several shapefiles.
      limits: Member count, byte and ratio caps.

    Returns:
      The chosen layer, whose members have been verified to decompress within the limits.

    Raises:
      InputError: If the archive is malformed, nested, encrypted, too large, lies about its
        sizes, or holds no (or several, without ``layer``) shapefiles.
    """
    if "}" in str(zip_path):
        raise InputError(f"archive path {zip_path.name!r} contains '}}', which GDAL cannot read")
    try:
        with zipfile.ZipFile(zip_path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{zip_path.name} is not a readable zip archive: {exc}") from exc
    _check_directory(zip_path.name, infos, limits)
    chosen = _choose_layer(zip_path.name, infos, layer)
    by_name = {info.filename: info for info in infos}
    sidecars = _sidecars_of(chosen.filename, by_name)
    members = [chosen, *(by_name[member] for member in sidecars.values())]
    _verify_sizes(zip_path, members, limits)
    return ZipLayer(zip_path=zip_path, shp_member=chosen.filename, sidecars=sidecars)


def extract_layer(zip_layer: ZipLayer, dest_dir: Path) -> Path:
    """Copy a checked layer's members into ``dest_dir`` (to rebuild a missing ``.shx`` there).

    Parameters:
      zip_layer: A layer returned by :func:`open_zip_layer`, whose sizes are verified.
      dest_dir: An empty private directory.

    Returns:
      The path of the extracted ``.shp``.
    """
    stem = zip_layer.name
    members = {".shp": zip_layer.shp_member, **zip_layer.sidecars}
    with zipfile.ZipFile(zip_layer.zip_path) as archive:
        for suffix, member in members.items():
            with archive.open(member) as source, (dest_dir / f"{stem}{suffix}").open("wb") as sink:
                shutil.copyfileobj(source, sink)
    return dest_dir / f"{stem}.shp"


def _check_directory(label: str, infos: list[zipfile.ZipInfo], limits: GeoLimits) -> None:
    if len(infos) > limits.max_zip_members:
        raise InputError(
            f"{label} has {len(infos)} members, more than the limit of {limits.max_zip_members}"
        )
    declared_bytes = 0
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":"):
            raise InputError(f"{label} has a member with an unsafe path: {name!r}")
        if name.lower().endswith(_NESTED_ARCHIVE_SUFFIXES):
            raise InputError(
                f"{label} contains another archive ({name!r}); nested archives are refused"
            )
        if info.flag_bits & 0x1:
            raise InputError(f"{label} is encrypted; encrypted archives are not supported")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise InputError(f"{label} uses a compression method GDAL cannot read ({name!r})")
        if info.file_size > _RATIO_FLOOR_BYTES and info.file_size > limits.max_zip_ratio * max(
            info.compress_size, 1
        ):
            raise InputError(f"{label} looks like a zip bomb: {name!r} is compressed too well")
        declared_bytes += info.file_size
    if declared_bytes > limits.max_zip_bytes:
        raise InputError(
            f"{label} would decompress to {declared_bytes} bytes, more than the limit of "
            f"{limits.max_zip_bytes}"
        )


def _choose_layer(label: str, infos: list[zipfile.ZipInfo], layer: str | None) -> zipfile.ZipInfo:
    shapefiles = [
        info
        for info in infos
        if info.filename.lower().endswith(".shp")
        and not info.is_dir()
        and not info.filename.startswith("__MACOSX/")
        and not posixpath.basename(info.filename).startswith("._")
    ]
    if not shapefiles:
        raise InputError(f"{label} holds no shapefile (.shp)")
    names = [info.filename[:-4] for info in shapefiles]
    if layer is None:
        if len(shapefiles) > 1:
            raise InputError(f"{label} holds several layers ({', '.join(names)}); pass layer=")
        return shapefiles[0]
    matches = [
        info
        for info, path in zip(shapefiles, names, strict=True)
        if layer in (path, posixpath.basename(path))
    ]
    if not matches:
        raise InputError(f"{label} has no layer {layer!r}; its layers: {', '.join(names)}")
    if len(matches) > 1:
        raise InputError(
            f"{label} has several layers named {layer!r}; pass the path inside the archive, "
            f"one of: {', '.join(info.filename[:-4] for info in matches)}"
        )
    return matches[0]


def _sidecars_of(shp_member: str, by_name: dict[str, zipfile.ZipInfo]) -> dict[str, str]:
    stem = shp_member[:-4].lower()
    found: dict[str, str] = {}
    for member in by_name:
        base, suffix = posixpath.splitext(member)
        suffix = suffix.lower()
        if base.lower() == stem and suffix in SIDECAR_SUFFIXES:
            if suffix in found:
                raise InputError(f"the archive has two {suffix} files for {shp_member!r}")
            found[suffix] = member
    return found


def _verify_sizes(zip_path: Path, members: list[zipfile.ZipInfo], limits: GeoLimits) -> None:
    """Decompress ``members`` once, refusing any that is longer than it declares."""
    budget = limits.max_zip_bytes
    with zip_path.open("rb") as raw:
        for info in members:
            produced = _member_length(raw, info, budget)
            if produced != info.file_size:
                logger.warning(
                    "zip %s: member %r declares %d bytes but holds %s; refused",
                    zip_path.name,
                    info.filename,
                    info.file_size,
                    produced if produced <= budget else f"more than {budget}",
                )
                raise InputError(
                    f"{zip_path.name} is corrupt or crafted: {info.filename!r} does not hold "
                    "the size it declares"
                )
            budget -= produced


def _member_length(raw: BinaryIO, info: zipfile.ZipInfo, budget: int) -> int:
    """Bytes ``info`` really decompresses to, or ``budget + 1`` once it passes ``budget``."""
    raw.seek(info.header_offset)
    header = raw.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_HEADER_MAGIC:
        raise InputError(f"the archive is corrupt: no local header for {info.filename!r}")
    name_length, extra_length = _LOCAL_HEADER.unpack(header)[-2:]
    raw.seek(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)
    left = info.compress_size
    if info.compress_type == zipfile.ZIP_STORED:
        return info.compress_size
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    produced = 0
    try:
        while left > 0 and not inflater.eof:
            chunk = raw.read(min(left, _VERIFY_CHUNK_BYTES))
            if not chunk:
                break
            left -= len(chunk)
            while chunk and not inflater.eof:
                produced += len(inflater.decompress(chunk, _VERIFY_CHUNK_BYTES))
                if produced > budget:
                    return budget + 1
                chunk = inflater.unconsumed_tail
        produced += len(inflater.flush())
    except zlib.error as exc:
        raise InputError(f"the archive is corrupt: {info.filename!r}: {exc}") from exc
    return produced
