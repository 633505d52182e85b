"""Zipped datasets: inspect an archive before GDAL reads it in place through ``/vsizip/``.

An archive holds shapefiles or datasets of the other formats (:mod:`geotasks.geo.formats`: a
GeoPackage, a ``.gdb`` folder, a KML document, which is what a KMZ is…); ``layer=`` picks one
when it holds several.

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
from geotasks.geo.formats import VectorFormat, check_references, format_of
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


@dataclass(frozen=True, slots=True)
class ZipDataset:
    """A dataset of another format inside a zip archive, checked and ready for GDAL.

    Parameters:
      zip_path: The archive on disk.
      member: The dataset's member name (a ``.gdb`` folder's path, without a trailing ``/``).
      format: Its format.
      layer: The layer to read inside it (``layer=``, when it did not name the member).
    """

    zip_path: Path
    member: str
    format: VectorFormat
    layer: str | None

    @property
    def vsi_path(self) -> str:
        """The GDAL path reading the dataset in place."""
        return f"/vsizip/{{{self.zip_path}}}/{self.member}"

    def head(self, count: int) -> bytes:
        """The first ``count`` bytes of a single-file dataset (its size was verified)."""
        with zipfile.ZipFile(self.zip_path) as archive, archive.open(self.member) as stream:
            return stream.read(count)


def open_zip_layer(
    zip_path: Path, *, layer: str | None, limits: GeoLimits
) -> ZipLayer | ZipDataset:
    """Check a zip archive and pick the dataset to read from it.

    Parameters:
      zip_path: The archive (already resolved inside the data directory).
      layer: The layer to read: a dataset member's stem, or its path inside the archive
        without the suffix. Needed when the archive holds several datasets; when it holds one
        of a format with layers of its own (a GeoPackage), the layer inside it.
      limits: Member count, byte and ratio caps.

    Returns:
      The chosen shapefile or dataset, whose members have been verified to decompress within
      the limits (and, for text formats, to name no other file).

    Raises:
      InputError: If the archive is malformed, nested, encrypted, too large, lies about its
        sizes, or holds no (or several, without ``layer``) datasets.
    """
    if "}" in str(zip_path):
        raise InputError(f"archive path {zip_path.name!r} contains '}}', which GDAL cannot read")
    try:
        with zipfile.ZipFile(zip_path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{zip_path.name} is not a readable zip archive: {exc}") from exc
    _check_directory(zip_path.name, infos, limits)
    chosen, inner = _choose_layer(zip_path.name, infos, layer)
    by_name = {info.filename: info for info in infos}
    fmt = format_of(chosen)
    if fmt is None:
        sidecars = _sidecars_of(chosen, by_name, SIDECAR_SUFFIXES)
        members = [by_name[chosen], *(by_name[member] for member in sidecars.values())]
        _verify_sizes(zip_path, members, limits)
        return ZipLayer(zip_path=zip_path, shp_member=chosen, sidecars=sidecars)
    if fmt.folder:
        members = [info for info in infos if info.filename.startswith(f"{chosen}/")]
    else:
        sidecars = _sidecars_of(chosen, by_name, fmt.sidecars)
        members = [by_name[chosen], *(by_name[member] for member in sidecars.values())]
    _verify_sizes(zip_path, members, limits)
    with zipfile.ZipFile(zip_path) as archive:
        for info in members:
            with archive.open(info) as stream:
                check_references(stream, fmt, f"{zip_path.name}/{info.filename}")
    return ZipDataset(zip_path=zip_path, member=chosen, format=fmt, layer=inner)


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


def _choose_layer(
    label: str, infos: list[zipfile.ZipInfo], layer: str | None
) -> tuple[str, str | None]:
    """The dataset member to read, and the layer to pick inside it (if ``layer`` is for that)."""
    datasets = _datasets(infos)
    if not datasets:
        raise InputError(f"{label} holds no dataset (.shp, .gpkg, .geojson, .kml, .gdb…)")
    names = [posixpath.splitext(member)[0] for member in datasets]
    if layer is None:
        if len(datasets) > 1:
            raise InputError(f"{label} holds several layers ({', '.join(names)}); pass layer=")
        return datasets[0], None
    matches = [
        member
        for member, path in zip(datasets, names, strict=True)
        if layer in (path, posixpath.basename(path))
    ]
    if not matches and len(datasets) == 1 and format_of(datasets[0]) is not None:
        return datasets[0], layer
    if not matches:
        raise InputError(f"{label} has no layer {layer!r}; its layers: {', '.join(names)}")
    if len(matches) > 1:
        raise InputError(
            f"{label} has several layers named {layer!r}; pass the path inside the archive, "
            f"one of: {', '.join(posixpath.splitext(member)[0] for member in matches)}"
        )
    return matches[0], None


def _datasets(infos: list[zipfile.ZipInfo]) -> list[str]:
    """The dataset members: shapefiles, files of the other formats, and ``.gdb`` folders."""
    found: dict[str, None] = {}
    for info in infos:
        name = info.filename
        if name.startswith("__MACOSX/") or posixpath.basename(name).startswith("._"):
            continue
        parts = name.rstrip("/").split("/")
        gdb = next((i for i, part in enumerate(parts) if part.lower().endswith(".gdb")), None)
        if gdb is not None:
            found["/".join(parts[: gdb + 1])] = None
        elif not info.is_dir() and (name.lower().endswith(".shp") or format_of(name) is not None):
            found[name] = None
    return list(found)


def _sidecars_of(
    dataset_member: str, by_name: dict[str, zipfile.ZipInfo], suffixes: tuple[str, ...]
) -> dict[str, str]:
    stem = posixpath.splitext(dataset_member)[0].lower()
    found: dict[str, str] = {}
    for member in by_name:
        base, suffix = posixpath.splitext(member)
        suffix = suffix.lower()
        if base.lower() == stem and suffix in suffixes:
            if suffix in found:
                raise InputError(f"the archive has two {suffix} files for {dataset_member!r}")
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
