"""Dissolving many polygons: held compactly, and unioned only where they meet.

GEOS's cascaded union (``shapely.union_all``) overlays every polygon with its neighbours in a
tree, polygons that touch nothing included: for parcels scattered over a country, most of its
work goes into pairs that do not meet. :func:`union_polygons` first finds which polygons meet
(one STRtree query), unions each cluster of polygons that meet, and keeps the others as they
are: the union of polygons that do not meet is the MultiPolygon of them. Dense data (every
polygon overlapping the next) is one cluster, unioned by GEOS as before.

A group's polygons are held until every feature is read (the next one may overlap any of them),
as flat coordinate arrays in a temporary file (:class:`PolygonStore`), so that only the group
being unioned is in memory.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Hashable
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt
import shapely

Shapes = npt.NDArray[np.object_]
Ints = npt.NDArray[np.intp]


class PolygonStore:
    """The polygons of every group, kept as flat arrays (``shapely.to_ragged_array``) in one
    temporary file until their group is unioned: only the group being unioned is in memory.

    Parameters:
      tmp_dir: Where the temporary file goes (``None``: the system's).
    """

    def __init__(self, tmp_dir: Path | None = None) -> None:
        self._tmp_dir = tmp_dir
        self._file: IO[bytes] | None = None
        self._chunks: dict[Hashable, list[int]] = {}

    def __enter__(self) -> PolygonStore:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def add(self, key: Hashable, shapes: Shapes) -> None:
        """Keep the polygons of ``shapes`` (Polygons and MultiPolygons, none empty) in ``key``'s
        group."""
        parts = shapely.get_parts(shapes)
        if not len(parts):
            return
        _, coords, (ring_offsets, polygon_offsets) = shapely.to_ragged_array(parts)
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="geotasks-", dir=self._tmp_dir)  # noqa: SIM115
        self._file.seek(0, io.SEEK_END)
        self._chunks.setdefault(key, []).append(self._file.tell())
        for array in (coords, ring_offsets, polygon_offsets):
            np.save(self._file, array, allow_pickle=False)

    def polygons(self, key: Hashable) -> Shapes:
        """Every polygon kept in ``key``'s group, as shapely Polygons."""
        built = []
        for offset in self._chunks.pop(key, []):
            assert self._file is not None
            self._file.seek(offset)
            coords, ring_offsets, polygon_offsets = (
                np.load(self._file, allow_pickle=False) for _ in range(3)
            )
            built.append(
                shapely.from_ragged_array(
                    shapely.GeometryType.POLYGON, coords, (ring_offsets, polygon_offsets)
                )
            )
        if not built:
            return np.empty(0, dtype=object)
        joined: Shapes = np.concatenate(built)
        return joined


def union_polygons(polygons: Shapes) -> Shapes:
    """The union of valid polygons, computed only within the clusters of those that meet.

    Parameters:
      polygons: Valid Polygons.

    Returns:
      The union's polygons, no two of which meet (the polygons that met nothing are the
      very objects given): a MultiPolygon's parts, held apart so that the caller need not
      copy them into one.
    """
    count = len(polygons)
    if not count:
        return np.empty(0, dtype=object)
    tree = shapely.STRtree(polygons)
    left, right = tree.query(polygons, predicate="intersects")
    del tree
    pairs = left < right
    labels = _components(count, left[pairs], right[pairs])
    order = np.argsort(labels, kind="stable")
    starts = np.flatnonzero(np.r_[True, labels[order][1:] != labels[order][:-1]])
    sizes = np.diff(np.r_[starts, count])
    parts = [polygons[order[starts[sizes == 1]]]]
    for start, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist(), strict=True):
        merged = shapely.union_all(polygons[order[start : start + size]])
        parts.append(shapely.get_parts(merged))
    kept: Shapes = np.concatenate(parts)
    return kept[~shapely.is_empty(kept)]


def _components(count: int, left: Ints, right: Ints) -> Ints:
    """Label the connected components of a graph given by its edges (the smallest member)."""
    labels = np.arange(count)
    while True:
        joined = labels.copy()
        np.minimum.at(joined, left, labels[right])
        np.minimum.at(joined, right, labels[left])
        # Pointer jumping: follow each label to its own label until nothing changes.
        joined = joined[joined]
        if np.array_equal(joined, labels):
            return labels
        labels = joined
