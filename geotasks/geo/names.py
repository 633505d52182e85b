"""Dataset names: resolve a user's name to a file inside the data directory, and nowhere else.

A dataset is named, never given as a path. ``parcels`` finds ``parcels.shp``, then a folder
``parcels/`` holding shapefiles, then ``parcels.zip``; ``region/parcels`` looks in the
``region`` sub-folder. A name with a ``.shp`` or ``.zip`` suffix names that file exactly.
Whatever is found, and every sidecar of a shapefile, must resolve (symlinks followed) inside
the data directory.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from geotasks.errors import ConfigurationError, InputError

logger = logging.getLogger(__name__)

#: Longest dataset name accepted, in characters.
MAX_NAME_CHARS = 255

#: Characters allowed in one component of a name: no separators, controls or GDAL syntax.
_COMPONENT = re.compile(r"[^\x00-\x1f\x7f/\\{}]+")


class DatasetKind(Enum):
    """What a dataset name resolved to."""

    SHAPEFILE = "shapefile"
    ZIP = "zip"


@dataclass(frozen=True, slots=True)
class ResolvedDataset:
    """A dataset found in the data directory.

    Parameters:
      kind: A plain shapefile or a zip archive.
      path: The ``.shp`` or ``.zip`` file, absolute, symlinks resolved.
    """

    kind: DatasetKind
    path: Path


def resolve_dataset(name: str, data_dir: Path, *, layer: str | None = None) -> ResolvedDataset:
    """Find the dataset called ``name`` inside ``data_dir``.

    Parameters:
      name: The dataset name the user gave, such as ``parcels`` or ``region/parcels``.
      data_dir: The directory holding every dataset (``GEOTASKS_DATA_DIR``).
      layer: For a folder holding several shapefiles, the one to read (its file stem).

    Returns:
      The shapefile or zip archive to open.

    Raises:
      InputError: If the name is malformed, names nothing, or leads outside ``data_dir``.
      ConfigurationError: If ``data_dir`` is not a directory.
    """
    parts = _split_name(name)
    root = _resolve_root(data_dir)
    base = root.joinpath(*parts)
    suffix = base.suffix.lower()
    if suffix in (".shp", ".zip"):
        candidates = [base]
    else:
        candidates = [*_with_suffix(base, ".shp"), base, *_with_suffix(base, ".zip")]
    for candidate in candidates:
        if not candidate.exists():
            continue
        found = _inside(candidate, root, name)
        if found.is_dir():
            return ResolvedDataset(DatasetKind.SHAPEFILE, _shapefile_in_folder(found, root, layer))
        if not found.is_file():
            raise InputError(f"dataset {name!r} is not a regular file")
        if found.suffix.lower() == ".zip":
            return ResolvedDataset(DatasetKind.ZIP, found)
        if found.suffix.lower() != ".shp":
            raise InputError(f"dataset {name!r} is not a shapefile (.shp) or a zip archive")
        if layer is not None and layer != found.stem:
            raise InputError(f"dataset {name!r} has one layer, {found.stem!r}, not {layer!r}")
        check_sidecars(found, root, name)
        return ResolvedDataset(DatasetKind.SHAPEFILE, found)
    raise InputError(
        f"no dataset named {name!r}: looked for {parts[-1]}.shp, {parts[-1]}/ and "
        f"{parts[-1]}.zip in the data directory"
    )


def check_sidecars(shp_path: Path, root: Path, name: str) -> None:
    """Check that every file sharing the shapefile's stem stays inside ``root``.

    GDAL opens ``.shx``, ``.dbf``, ``.prj`` and ``.cpg`` by name next to the ``.shp``; a
    sidecar that is a symlink to a file elsewhere would be read too.

    Parameters:
      shp_path: The resolved ``.shp`` file.
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


def _with_suffix(base: Path, suffix: str) -> list[Path]:
    """``base`` plus ``suffix`` in any letter case (Windows tools write ``PARCELS.SHP``)."""
    exact = base.with_name(base.name + suffix)
    if exact.exists() or not base.parent.is_dir():
        return [exact]
    wanted = (base.name + suffix).lower()
    return sorted(p for p in base.parent.iterdir() if p.name.lower() == wanted) or [exact]


def _inside(path: Path, root: Path, name: str) -> Path:
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        logger.warning("dataset %r leads outside the data directory; refused", name)
        raise InputError(f"dataset {name!r} leads outside the data directory")
    return resolved


def _shapefile_in_folder(folder: Path, root: Path, layer: str | None) -> Path:
    shapefiles = sorted(
        p for p in folder.iterdir() if p.suffix.lower() == ".shp" and not p.name.startswith(".")
    )
    stems = [p.stem for p in shapefiles]
    if layer is not None:
        matches = [p for p in shapefiles if p.stem == layer]
        if not matches:
            raise InputError(
                f"folder {folder.name!r} has no layer {layer!r}; its layers: {', '.join(stems)}"
            )
        chosen = matches[0]
    elif len(shapefiles) == 1:
        chosen = shapefiles[0]
    elif not shapefiles:
        raise InputError(f"folder {folder.name!r} holds no shapefile (.shp)")
    else:
        raise InputError(
            f"folder {folder.name!r} holds several layers ({', '.join(stems)}); pass layer="
        )
    resolved = _inside(chosen, root, folder.name)
    if not resolved.is_file():
        raise InputError(f"layer {chosen.stem!r} is not a regular file")
    check_sidecars(resolved, root, folder.name)
    return resolved
