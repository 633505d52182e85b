"""Dataset names: resolve a user's name to a file inside the data directory, and nowhere else.

A dataset is named, never given as a path. ``parcels`` finds ``parcels.shp``, then a file of
another format (``parcels.gpkg``, ``.geojson``, ``.json``, ``.geojsonl``, ``.geojsons``,
``.fgb``, ``.kml``, ``.gml``, a File Geodatabase folder ``parcels.gdb``, ``.csv``: see
:mod:`geotasks.geo.formats`), then a folder ``parcels/`` holding datasets, then
``parcels.zip`` or ``parcels.kmz``; ``region/parcels`` looks in the ``region`` sub-folder. A
name with one of those suffixes names that file exactly. Whatever is found, and every file
beside it sharing its stem (a shapefile's sidecars, a GML's schema), must resolve (symlinks
followed) inside the data directory. Names that are URLs or GDAL virtual paths, and VRT
datasets, are refused.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from geotasks.errors import ConfigurationError, InputError
from geotasks.geo.formats import (
    KMZ_SUFFIX,
    REFUSED_SUFFIXES,
    VectorFormat,
    dataset_suffixes,
    format_of,
)

logger = logging.getLogger(__name__)

#: Longest dataset name accepted, in characters.
MAX_NAME_CHARS = 255

#: Characters allowed in one component of a name: no separators, controls or GDAL syntax.
_COMPONENT = re.compile(r"[^\x00-\x1f\x7f/\\{}]+")

#: Suffixes of archives read in place.
_ARCHIVE_SUFFIXES = (".zip", KMZ_SUFFIX)

#: Suffixes that make a name name one file exactly.
_NAMED_SUFFIXES = frozenset({".shp", *_ARCHIVE_SUFFIXES, *dataset_suffixes(), *REFUSED_SUFFIXES})


class DatasetKind(Enum):
    """What a dataset name resolved to."""

    SHAPEFILE = "shapefile"
    ZIP = "zip"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ResolvedDataset:
    """A dataset found in the data directory.

    Parameters:
      kind: A plain shapefile, a zip archive (or KMZ), or a dataset of another format.
      path: The ``.shp``, ``.zip`` or other file (a ``.gdb`` folder), absolute, symlinks
        resolved.
      format: The format of an :attr:`DatasetKind.OTHER` dataset.
      layer: The layer to pick inside the dataset or archive (``layer=``, unless it named a
        dataset in a folder).
    """

    kind: DatasetKind
    path: Path
    format: VectorFormat | None = None
    layer: str | None = None


def resolve_dataset(name: str, data_dir: Path, *, layer: str | None = None) -> ResolvedDataset:
    """Find the dataset called ``name`` inside ``data_dir``.

    Parameters:
      name: The dataset name the user gave, such as ``parcels`` or ``region/parcels``.
      data_dir: The directory holding every dataset (``GEOTASKS_DATA_DIR``).
      layer: For a folder holding several datasets, the one to read (its file stem);
        otherwise the layer to read inside the dataset.

    Returns:
      The dataset to open.

    Raises:
      InputError: If the name is malformed, names nothing, or leads outside ``data_dir``.
      ConfigurationError: If ``data_dir`` is not a directory.
    """
    parts = _split_name(name)
    root = _resolve_root(data_dir)
    base = root.joinpath(*parts)
    suffix = base.suffix.lower()
    if suffix in _NAMED_SUFFIXES:
        candidates = [base]
    else:
        candidates = [
            *_with_suffixes(base, (".shp", *dataset_suffixes())),
            base,
            *_with_suffixes(base, (*_ARCHIVE_SUFFIXES, *REFUSED_SUFFIXES)),
        ]
    for candidate in candidates:
        if candidate.exists():
            return _resolved(_inside(candidate, root, name), root, name, layer)
    raise InputError(
        f"no dataset named {name!r}: looked for {parts[-1]}.shp, {parts[-1]}.gpkg (and the "
        f"other formats), {parts[-1]}/ and {parts[-1]}.zip in the data directory"
    )


def _resolved(found: Path, root: Path, name: str, layer: str | None) -> ResolvedDataset:
    """What the file or folder ``found`` (inside ``root``) holds."""
    fmt = format_of(found.name)
    if found.is_dir() and (fmt is None or not fmt.folder):
        return _dataset_in_folder(found, root, layer)
    if fmt is not None and fmt.folder:
        if not found.is_dir():
            raise InputError(f"dataset {name!r} is not a {fmt.name} folder")
        for member in found.iterdir():
            _inside(member, root, name)
        return ResolvedDataset(DatasetKind.OTHER, found, fmt, layer)
    if not found.is_file():
        raise InputError(f"dataset {name!r} is not a regular file")
    check_sidecars(found, root, name)
    suffix = found.suffix.lower()
    if suffix in _ARCHIVE_SUFFIXES:
        return ResolvedDataset(DatasetKind.ZIP, found, layer=layer)
    if fmt is not None:
        return ResolvedDataset(DatasetKind.OTHER, found, fmt, layer)
    if suffix != ".shp":
        raise InputError(f"dataset {name!r} is not a dataset geotasks reads ({suffix})")
    if layer is not None and layer != found.stem:
        raise InputError(f"dataset {name!r} has one layer, {found.stem!r}, not {layer!r}")
    return ResolvedDataset(DatasetKind.SHAPEFILE, found)


def check_sidecars(shp_path: Path, root: Path, name: str) -> None:
    """Check that every file sharing the shapefile's stem stays inside ``root``.

    GDAL opens ``.shx``, ``.dbf``, ``.prj`` and ``.cpg`` by name next to the ``.shp`` (and a
    GML's ``.xsd`` and ``.gfs``, a CSV's ``.prj``…); a sidecar that is a symlink to a file
    elsewhere would be read too.

    Parameters:
      shp_path: The resolved dataset file.
      root: The resolved data directory.
      name: The dataset name, for messages.

    Raises:
      InputError: If a sidecar leads outside ``root``.
    """
    stem = shp_path.stem.lower()
    for sibling in shp_path.parent.iterdir():
        if sibling.stem.lower() == stem:
            _inside(sibling, root, name)


def _split_name(name: object) -> list[str]:
    if not isinstance(name, str):
        raise InputError(f"a dataset name must be a string, not {type(name).__name__}")
    if not name:
        raise InputError("the dataset name is empty")
    if len(name) > MAX_NAME_CHARS:
        raise InputError(f"the dataset name is longer than {MAX_NAME_CHARS} characters")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise InputError(f"dataset name {name!r} is an absolute path; give a name instead")
    lowered = name.lower()
    if "://" in name or "/vsi" in lowered or lowered.startswith("vsi"):
        raise InputError(
            f"dataset name {name!r} is a URL or a GDAL virtual path; give a dataset name instead"
        )
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise InputError(f"dataset name {name!r} has an empty, '.' or '..' component")
        if not _COMPONENT.fullmatch(part):
            raise InputError(
                f"dataset name {name!r} contains a character that is not allowed "
                "(control characters, backslash, braces)"
            )
    return parts


def _resolve_root(data_dir: Path) -> Path:
    try:
        root = Path(data_dir).resolve(strict=True)
    except OSError as exc:
        raise ConfigurationError(f"the data directory {data_dir} does not exist") from exc
    if not root.is_dir():
        raise ConfigurationError(f"the data directory {data_dir} is not a directory")
    return root


def _with_suffixes(base: Path, suffixes: Sequence[str]) -> list[Path]:
    """``base`` plus each suffix, in order, in any letter case (Windows tools write
    ``PARCELS.SHP``): the files that exist, the folder listed once for all the suffixes."""
    if not base.parent.is_dir():
        return []
    prefix = base.name.lower()
    by_suffix: dict[str, list[Path]] = {}
    for path in sorted(base.parent.iterdir()):
        lowered = path.name.lower()
        if lowered.startswith(prefix):
            by_suffix.setdefault(lowered[len(prefix) :], []).append(path)
    found = []
    for suffix in suffixes:
        exact = base.with_name(base.name + suffix)
        matches = by_suffix.get(suffix, [])
        found.extend([exact] if exact in matches else matches)
    return found


def _inside(path: Path, root: Path, name: str) -> Path:
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        logger.warning("dataset %r leads outside the data directory; refused", name)
        raise InputError(f"dataset {name!r} leads outside the data directory")
    return resolved


def _dataset_in_folder(folder: Path, root: Path, layer: str | None) -> ResolvedDataset:
    """The dataset of a folder that ``layer`` names by its stem, or the folder's only one."""
    datasets = sorted(
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and _is_dataset_suffix(p.name.lower())
    )
    stems = [p.stem for p in datasets]
    inner = None
    if layer is not None and layer in stems:
        chosen = datasets[stems.index(layer)]
    elif len(datasets) == 1 and (layer is None or datasets[0].suffix.lower() != ".shp"):
        # One dataset of a format with layers of its own: layer= picks one of those.
        chosen, inner = datasets[0], layer
    elif layer is not None:
        raise InputError(
            f"folder {folder.name!r} has no layer {layer!r}; its layers: {', '.join(stems)}"
        )
    elif not datasets:
        raise InputError(f"folder {folder.name!r} holds no dataset (.shp, .gpkg, .geojson…)")
    else:
        raise InputError(
            f"folder {folder.name!r} holds several layers ({', '.join(stems)}); pass layer="
        )
    return _resolved(_inside(chosen, root, folder.name), root, folder.name, inner)


def _is_dataset_suffix(name: str) -> bool:
    return name.endswith(".shp") or any(name.endswith(suffix) for suffix in dataset_suffixes())
