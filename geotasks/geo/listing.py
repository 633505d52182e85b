"""The dataset names a data directory offers, for pickers (the HTML execute form).

Each name is one :func:`geotasks.geo.names.resolve_dataset` finds: ``parcels`` for
``parcels.shp``, ``region/parcels`` in a sub-folder, ``countries.zip`` for an archive (its
suffix kept, so the name is exact whatever else shares its stem). Hidden entries and symbolic
links are left out (a link may lead outside the directory, which resolving refuses anyway), and
the walk is bounded: a data directory may be a large network mount.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

#: Most names listed; a picker of more helps nobody, and the name can still be typed.
MAX_LISTED_NAMES = 500
#: Most directory entries looked at, whatever was found.
MAX_VISITED_ENTRIES = 10_000
#: Deepest sub-folder looked into (``a/b/c/parcels`` is at depth 3).
MAX_DEPTH = 3


def list_dataset_names(data_dir: Path) -> list[str]:
    """Return the dataset names found in ``data_dir``, sorted; empty when it is unreadable.

    Parameters:
      data_dir: The directory holding every dataset (``GEOTASKS_DATA_DIR``).

    Returns:
      list[str]: at most :data:`MAX_LISTED_NAMES` names, with ``/`` between folders.
    """
    names: list[str] = []
    visited = 0
    folders: list[tuple[Path, tuple[str, ...]]] = [(data_dir, ())]
    while folders and visited < MAX_VISITED_ENTRIES and len(names) < MAX_LISTED_NAMES:
        folder, prefix = folders.pop(0)
        try:
            with os.scandir(folder) as found:
                entries = list(itertools.islice(found, MAX_VISITED_ENTRIES - visited))
        except OSError:
            continue
        visited += len(entries)
        for entry in sorted(entries, key=lambda entry: entry.name):
            if entry.name.startswith(".") or entry.is_symlink():
                continue
            stem, suffix = os.path.splitext(entry.name)
            if entry.is_dir(follow_symlinks=False):
                if len(prefix) < MAX_DEPTH:
                    folders.append((Path(entry.path), (*prefix, entry.name)))
            elif suffix.lower() == ".shp":
                names.append("/".join((*prefix, stem)))
            elif suffix.lower() == ".zip":
                names.append("/".join((*prefix, entry.name)))
    return sorted(names[:MAX_LISTED_NAMES])
