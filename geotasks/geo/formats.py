"""The vector formats a dataset name may find besides shapefiles, and how each is opened safely.

Each format is opened by its one GDAL driver, never by GDAL's guess, so a file cannot pass for
another format (a VRT saved as ``parcels.gpkg`` is refused, not followed). Formats whose files
can point at other files or at the network are held in: a text file naming a GDAL virtual path
(``/vsi…``) is refused, a VRT is refused outright, and GML is opened without fetching remote
schemas, and without writing a ``.gfs`` next to the data (GDAL's default,
``GML_SKIP_RESOLVE_ELEMS=ALL``, already leaves ``xlink:href`` links alone); a local schema it names
must be a plain relative path.

Importing this module enables fiona's KML driver for reading (it is compiled into the wheel's
GDAL but not listed in ``fiona.supported_drivers``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import fiona

from geotasks.errors import InputError

#: Bytes read at a time when scanning a text dataset for references to other files.
SCAN_CHUNK_BYTES = 1024 * 1024

#: Suffixes of datasets that are refused: GDAL virtual datasets read any file they name.
REFUSED_SUFFIXES = (".vrt", ".ovf")

fiona.supported_drivers.setdefault("KML", "r")


@dataclass(frozen=True)
class VectorFormat:
    """A vector format besides shapefiles, read by one GDAL driver.

    Parameters:
      name: The format's name, for messages.
      driver: The GDAL driver that opens it (see also :attr:`also`).
      suffixes: File (or, for a File Geodatabase, folder) name suffixes, lower case.
      sidecars: Suffixes of files GDAL reads beside the dataset (a CSV's ``.prj``).
      text: Whether the dataset is text that is scanned for ``/vsi…`` references.
      folder: Whether the dataset is a folder (a File Geodatabase).
      open_options: GDAL open options always given.
      also: Other drivers allowed to open it (GDAL reads a GeoJSON sequence of one feature
        as GeoJSON).
    """

    name: str
    driver: str
    suffixes: tuple[str, ...]
    sidecars: tuple[str, ...] = ()
    text: bool = False
    folder: bool = False
    open_options: dict[str, str] = field(default_factory=dict)
    also: tuple[str, ...] = ()


#: The formats, in the order a bare name looks for them (after ``.shp``).
FORMATS = (
    VectorFormat("GeoPackage", "GPKG", (".gpkg",)),
    VectorFormat("GeoJSON", "GeoJSON", (".geojson", ".json"), text=True),
    VectorFormat(
        "GeoJSONSeq", "GeoJSONSeq", (".geojsonl", ".geojsons"), text=True, also=("GeoJSON",)
    ),
    VectorFormat("FlatGeobuf", "FlatGeobuf", (".fgb",)),
    VectorFormat("KML", "KML", (".kml",), text=True),
    VectorFormat(
        "GML",
        "GML",
        (".gml",),
        sidecars=(".xsd", ".gfs"),
        text=True,
        # No schema download, and no .gfs written beside the data (the data directory is
        # read-only, and shared by every worker host).
        open_options={"DOWNLOAD_SCHEMA": "NO", "WRITE_GFS": "NO"},
    ),
    VectorFormat("File Geodatabase", "OpenFileGDB", (".gdb",), folder=True),
    VectorFormat(
        "CSV",
        "CSV",
        (".csv",),
        sidecars=(".csvt", ".prj"),
        text=True,
        # Geometries from a WKT column, or from lon/lat columns, by their usual names.
        open_options={
            "GEOM_POSSIBLE_NAMES": "WKT,geometry,geom,the_geom,wkt_geom",
            "X_POSSIBLE_NAMES": "lon,longitude,lng,long,x",
            "Y_POSSIBLE_NAMES": "lat,latitude,y",
            "KEEP_GEOM_COLUMNS": "NO",
        },
    ),
)

#: A KMZ is a zip holding a KML document.
KMZ_SUFFIX = ".kmz"

_BY_SUFFIX = {suffix: fmt for fmt in FORMATS for suffix in fmt.suffixes}

_VSI = re.compile(rb"/vsi[a-z0-9_]+", re.IGNORECASE)
_SCHEMA_LOCATION = re.compile(rb"schemaLocation\s*=\s*[\"']([^\"']*)[\"']", re.IGNORECASE)
_URL = re.compile(rb"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def format_of(name: str) -> VectorFormat | None:
    """The format a file or folder name's suffix says, or ``None`` (shapefiles included).

    Raises:
      InputError: If the suffix is that of a refused format (VRT).
    """
    suffix = _suffix(name)
    if suffix in REFUSED_SUFFIXES:
        raise InputError(
            f"{name!r} is a GDAL virtual dataset ({suffix}); those are refused, since they can "
            "read any file or URL"
        )
    return _BY_SUFFIX.get(suffix)


def dataset_suffixes() -> Iterable[str]:
    """Every suffix of a format in :data:`FORMATS`, in the order names look for them."""
    return _BY_SUFFIX.keys()


def check_references(stream: IO[bytes], fmt: VectorFormat, label: str) -> None:
    """Refuse a text dataset (or its sidecar) that points GDAL at another file or the network.

    Parameters:
      stream: The file, read to its end in chunks.
      fmt: Its format (only text formats are scanned).
      label: The dataset's name, for messages.

    Raises:
      InputError: If it names a GDAL virtual path, or (GML) a local schema that is not a plain
        relative path.
    """
    if not fmt.text:
        return
    tail = b""
    while chunk := stream.read(SCAN_CHUNK_BYTES):
        # Keep the end of the last chunk so a reference cut in two is still seen.
        window = tail + chunk
        if _VSI.search(window):
            raise InputError(
                f"{label} names a GDAL virtual path (/vsi…); references to other files are refused"
            )
        if fmt.driver == "GML":
            for match in _SCHEMA_LOCATION.finditer(window):
                _check_schema_locations(match.group(1), label)
        tail = window[-512:]


def check_local_references(path: Path, fmt: VectorFormat, label: str) -> None:
    """:func:`check_references` on a dataset file and its sidecars (a GML's schema).

    Raises:
      InputError: If one of them points GDAL at another file or the network.
    """
    if not fmt.text:
        return
    paths = [path, *(path.with_suffix(suffix) for suffix in fmt.sidecars)]
    for candidate in paths:
        if candidate.is_file():
            with candidate.open("rb") as stream:
                check_references(stream, fmt, label)


def _check_schema_locations(value: bytes, label: str) -> None:
    """URLs are allowed (GDAL is told not to fetch them); local paths must stay beside the data."""
    for location in value.split():
        if _URL.match(location):
            continue
        parts = location.replace(b"\\", b"/").split(b"/")
        if location.startswith((b"/", b"\\")) or b".." in parts or b":" in location:
            raise InputError(
                f"{label} names a schema outside its folder ({location.decode(errors='replace')!r})"
            )


def open_options(fmt: VectorFormat) -> dict[str, Any]:
    """The keywords of ``fiona.open`` that read ``fmt``: its drivers and open options."""
    return {"enabled_drivers": [fmt.driver, *fmt.also], **fmt.open_options}


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""
