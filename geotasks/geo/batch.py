"""Batches of geometries as flat coordinate arrays: the hot path of GeoJSON writing.

fiona hands out every coordinate as a Python tuple. Rounding and re-orienting them one by one
in Python costs more than reading them; so the coordinates of a few thousand features are
copied into one float buffer (with offsets describing rings, lines and parts) and every
per-coordinate step (reprojection, winding, rounding) runs vectorised over the batch. orjson
then writes the whole batch's coordinates in one call, and each feature's geometry is cut out
of that text (:func:`geometry_texts`).

Copying each feature's floats out as soon as it is read lets fiona's tuples die young, which
keeps Python's cyclic garbage collector from rescanning them.
"""

from __future__ import annotations

import array
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, pairwise
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import shapely

from geotasks.errors import InputError

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.intp]

#: Sequence kinds: a ring that must turn counter-clockwise, one that must turn clockwise,
#: and a line or run of points whose direction is kept.
EXTERIOR, HOLE, OPEN = 1, -1, 0

_flatten = chain.from_iterable

#: ``_POLYGON_KINDS[n]``: the kinds of a polygon's ``n`` rings (an exterior, then holes),
#: prebuilt because most polygons have few rings.
_POLYGON_KINDS = [array.array("b", [EXTERIOR] + [HOLE] * (n - 1))[:n] for n in range(64)]


def _polygon_kinds(count: int) -> array.array[int]:
    if count < len(_POLYGON_KINDS):
        return _POLYGON_KINDS[count]
    return array.array("b", [EXTERIOR] + [HOLE] * (count - 1))


@dataclass
class GeometryBatch:
    """The geometries of a run of features, as flat arrays.

    Parameters:
      coords: All coordinates, shape ``(n, dims)``.
      seq_offsets: Start of each sequence (ring, line or point run) in ``coords``, plus the end.
      seq_kinds: :data:`EXTERIOR`, :data:`HOLE` or :data:`OPEN` for each sequence.
      feature_offsets: Start of each feature's sequences in ``seq_offsets``, plus the end.
      types: Each feature's GeoJSON geometry type, or ``None`` for a null geometry.
      layouts: For each MultiPolygon, its polygons' ring counts; for other types, the number
        of sequences (unused for points).
    """

    coords: Floats
    seq_offsets: Ints
    seq_kinds: npt.NDArray[np.int8]
    feature_offsets: Ints
    types: list[str | None]
    layouts: list[Any]

    def __len__(self) -> int:
        return len(self.types)

    def vertex_counts(self) -> Ints:
        """Number of vertices of each feature."""
        return np.diff(self.seq_offsets[self.feature_offsets]).astype(np.intp)


class BatchBuilder:
    """Collects fiona geometries into a :class:`GeometryBatch`.

    Parameters:
      label: The dataset's name, for messages.
    """

    def __init__(self, label: str) -> None:
        self._label = label
        self._reset()

    def _reset(self) -> None:
        # Each position's floats, copied out of fiona's tuples as the feature is read.
        self._values: array.array[float] = array.array("d")
        self._lengths: array.array[int] = array.array("q")
        self._kinds: array.array[int] = array.array("b")
        self._feature_offsets: array.array[int] = array.array("q", [0])
        self._types: list[str | None] = []
        self._layouts: list[Any] = []
        self.dims = 0

    def __len__(self) -> int:
        return len(self._types)

    @property
    def position_count(self) -> int:
        """Positions (vertices) collected so far."""
        return len(self._values) // (self.dims or 2)

    def dims_of(self, geometry: Any) -> int:
        """The coordinate dimension of a fiona geometry (0 if it is null or empty).

        Raises:
          InputError: If the geometry type is not a simple-features type.
        """
        if geometry is None:
            return 0
        kind = geometry.type
        probe = geometry.coordinates
        depth = _DEPTH.get(kind)
        if depth is None:
            raise InputError(f"{self._label}: geometry type {kind} is not supported")
        for _ in range(depth):
            if not probe:
                return 0
            probe = probe[0]
        return len(probe)

    def add(self, geometry: Any) -> None:
        """Append one fiona geometry (or ``None``); its dimension must be :attr:`dims` or 0.

        Raises:
          InputError: If the geometry type is not a simple-features type.
        """
        # The hot loop of GeoJSON writing: locals and one branch per type, Polygon first.
        lengths = self._lengths
        if geometry is None:
            self._types.append(None)
            self._layouts.append(0)
            self._feature_offsets.append(len(lengths))
            return
        kind = geometry.type
        coords = geometry.coordinates
        kinds = self._kinds
        values = self._values
        if kind == "Polygon":
            lengths.extend(map(len, coords))
            kinds.extend(_polygon_kinds(len(coords)))
            values.extend(_flatten(_flatten(coords)))
            layout: Any = len(coords)
        elif kind == "MultiPolygon":
            layout = [len(polygon) for polygon in coords]
            for polygon in coords:
                lengths.extend(map(len, polygon))
                kinds.extend(_polygon_kinds(len(polygon)))
            values.extend(_flatten(_flatten(_flatten(coords))))
        elif kind == "LineString" or kind == "MultiPoint":
            lengths.append(len(coords))
            kinds.append(OPEN)
            values.extend(_flatten(coords))
            layout = 1
        elif kind == "MultiLineString":
            lengths.extend(map(len, coords))
            kinds.extend(_opens(len(coords)))
            values.extend(_flatten(_flatten(coords)))
            layout = len(coords)
        elif kind == "Point":
            lengths.append(1 if coords else 0)
            kinds.append(OPEN)
            values.extend(coords)
            layout = 1
        else:
            raise InputError(f"{self._label}: geometry type {kind} is not supported")
        self._types.append(kind)
        self._layouts.append(layout)
        self._feature_offsets.append(len(lengths))

    def build(self) -> GeometryBatch:
        """Return the collected batch and start an empty one."""
        dims = self.dims or 2
        lengths = np.frombuffer(self._lengths, dtype=np.int64)
        seq_offsets = np.zeros(len(lengths) + 1, dtype=np.intp)
        np.cumsum(lengths, out=seq_offsets[1:])
        values = self._values
        if len(values) != dims * int(seq_offsets[-1]):
            raise InputError(f"{self._label}: geometries mix 2D and 3D coordinates")
        # A view of the buffer, not a copy; _reset below starts a new buffer.
        coords = np.frombuffer(values, dtype=np.float64).reshape(-1, dims)
        batch = GeometryBatch(
            coords=coords,
            seq_offsets=seq_offsets,
            seq_kinds=np.frombuffer(self._kinds, dtype=np.int8).copy(),
            feature_offsets=np.frombuffer(self._feature_offsets, dtype=np.int64).astype(np.intp),
            types=self._types,
            layouts=self._layouts,
        )
        self._reset()
        return batch


#: How deep to descend into each type's coordinates to reach one position.
_DEPTH = {
    "Point": 0,
    "MultiPoint": 1,
    "LineString": 1,
    "MultiLineString": 2,
    "Polygon": 2,
    "MultiPolygon": 3,
}

_OPENS = [array.array("b", [OPEN] * n) for n in range(64)]


def _opens(count: int) -> array.array[int]:
    return _OPENS[count] if count < len(_OPENS) else array.array("b", [OPEN] * count)


def orient_and_round(batch: GeometryBatch, precision: int) -> None:
    """Wind rings as RFC 7946 wants and round every coordinate, in place.

    Exterior rings become counter-clockwise and holes clockwise (shapefiles store the
    opposite). Every ring's signed area comes from one vectorised shoelace sum, measured from
    the ring's first vertex so that small rings far from the origin keep their sign; this is
    several times faster than building shapely polygons to call ``orient_polygons``.

    Parameters:
      batch: The batch, in lon/lat.
      precision: Decimal places to keep.
    """
    coords = batch.coords
    count = len(coords)
    offsets = batch.seq_offsets
    starts, ends = offsets[:-1], offsets[1:]
    lengths = ends - starts
    kinds = batch.seq_kinds
    rings = (kinds != OPEN) & (lengths >= 4)
    if count and rings.any():
        first = np.minimum(starts, count - 1)
        x = coords[:, 0] - np.repeat(coords[first, 0], lengths)
        y = coords[:, 1] - np.repeat(coords[first, 1], lengths)
        cross = np.zeros(count)
        cross[:-1] = x[:-1] * y[1:] - x[1:] * y[:-1]
        # The term pairing a sequence's last vertex with the next sequence's first is not
        # part of either, so each reduceat sum below covers exactly one sequence.
        cross[ends[lengths > 0] - 1] = 0.0
        twice_area = np.add.reduceat(cross, first)
        wrong = rings & (
            ((kinds == EXTERIOR) & (twice_area < 0)) | ((kinds == HOLE) & (twice_area > 0))
        )
        if wrong.any():
            _reverse(coords, starts[wrong], ends[wrong])
    np.round(coords, precision, out=coords)


def _reverse(coords: Floats, starts: Ints, ends: Ints) -> None:
    rows = _ranges(starts, ends - starts)
    coords[rows] = coords[np.repeat(starts + ends - 1, ends - starts) - rows]


def _ranges(starts: Ints, lengths: Ints) -> Ints:
    """The concatenation of ``range(start, start + length)`` for each pair, vectorised."""
    return np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))


def geojson_geometries(batch: GeometryBatch) -> list[dict[str, Any] | None]:
    """Rebuild each feature's GeoJSON geometry as nested lists of views into ``coords``.

    Parameters:
      batch: An oriented, rounded batch.

    Returns:
      One geometry mapping (or ``None``) per feature, serialisable by orjson with
      ``OPT_SERIALIZE_NUMPY``; the views share ``batch.coords``.
    """
    coords = batch.coords
    seq_starts = batch.seq_offsets.tolist()
    # A comprehension of slices is several times faster than np.split, which loops in Python.
    sequences = [coords[start:end] for start, end in pairwise(seq_starts)]
    feature_offsets = batch.feature_offsets.tolist()
    geometries: list[dict[str, Any] | None] = []
    append = geometries.append
    for index, (kind, layout) in enumerate(zip(batch.types, batch.layouts, strict=True)):
        first = feature_offsets[index]
        if kind is None:
            append(None)
        elif kind == "Polygon" or kind == "MultiLineString":
            append({"type": kind, "coordinates": sequences[first : first + layout]})
        elif kind == "MultiPolygon":
            polygons = []
            for ring_count in layout:
                polygons.append(sequences[first : first + ring_count])
                first += ring_count
            append({"type": kind, "coordinates": polygons})
        elif kind == "Point":
            start = seq_starts[first]
            point = coords[start] if seq_starts[first + 1] > start else []
            append({"type": kind, "coordinates": point})
        else:
            append({"type": kind, "coordinates": sequences[first]})
    return geometries


def geometry_texts(batch: GeometryBatch) -> list[bytes]:
    """Each feature's GeoJSON geometry as JSON text (``b"null"`` for a null geometry).

    orjson writes the whole batch's coordinates in one call; each vertex's text is then found
    by its opening bracket (numbers have none), and every sequence is one slice of that text.
    The output is byte for byte what orjson makes of :func:`geojson_geometries`, without
    building a numpy view for each ring.

    Parameters:
      batch: An oriented, rounded batch.

    Returns:
      One JSON document per feature.
    """
    coords = np.ascontiguousarray(batch.coords)
    text = orjson.dumps(coords, option=orjson.OPT_SERIALIZE_NUMPY)
    # text is "[[x,y],[x,y],...]": vertex i starts at its "[" and ends before the next ","
    starts = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == _OPENING)[1:]
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:] - 1
    ends[-1:] = len(text) - 1
    seq_offsets = batch.seq_offsets
    if len(starts):
        firsts, lasts = seq_offsets[:-1], seq_offsets[1:] - 1
        filled = lasts >= firsts
        # An empty sequence gets an empty slice (it is written as "[]").
        seq_starts = np.where(filled, starts[np.minimum(firsts, len(starts) - 1)], 0).tolist()
        seq_ends = np.where(filled, ends[np.maximum(lasts, 0)], 0).tolist()
        sequences = [text[start:end] for start, end in zip(seq_starts, seq_ends, strict=True)]
    else:
        sequences = [b""] * (len(seq_offsets) - 1)
    feature_offsets = batch.feature_offsets.tolist()
    texts: list[bytes] = []
    append = texts.append
    for index, (kind, layout) in enumerate(zip(batch.types, batch.layouts, strict=True)):
        first = feature_offsets[index]
        if kind is None:
            append(b"null")
        elif kind == "Polygon" or kind == "MultiLineString":
            if layout == 1:
                body = b"[[" + sequences[first] + b"]]"
            else:
                body = (
                    b"[[" + b"],[".join(sequences[first : first + layout]) + b"]]"
                    if layout
                    else b"[]"
                )
            append(_HEADS[kind] + body + b"}")
        elif kind == "MultiPolygon":
            polygons = []
            for ring_count in layout:
                polygons.append(
                    b"[[" + b"],[".join(sequences[first : first + ring_count]) + b"]]"
                    if ring_count
                    else b"[]"
                )
                first += ring_count
            append(_HEADS[kind] + b"[" + b",".join(polygons) + b"]}")
        elif kind == "Point":
            # A point's one sequence is its position, or empty for an empty point.
            point = sequences[first]
            append(_HEADS[kind] + (point or b"[]") + b"}")
        else:
            append(_HEADS[kind] + b"[" + sequences[first] + b"]}")
    return texts


_OPENING = ord("[")

#: The start of each geometry type's JSON, up to its coordinates.
_HEADS = {
    kind: b'{"type":"' + kind.encode() + b'","coordinates":'
    for kind in ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon")
}


def to_shapely(batch: GeometryBatch, index: int, *, lenient: bool = False) -> Any:
    """Build one feature's geometry as a shapely object (for the rare slow paths).

    Parameters:
      batch: The batch.
      index: The feature's index in it.
      lenient: Drop rings of fewer than 4 positions (and polygons whose exterior is one),
        which shapely cannot build, instead of failing.

    Returns:
      The geometry, or ``None`` for a null geometry.

    Raises:
      ValueError: If the geometry cannot be built (and ``lenient`` is false).
    """
    geometry = geojson_geometries(_single(batch, index))[0]
    if geometry is None:
        return None
    mapping = _as_lists(geometry)
    if lenient and mapping["type"] == "Polygon":
        mapping["coordinates"] = _sound_rings(mapping["coordinates"])
    elif lenient and mapping["type"] == "MultiPolygon":
        polygons = (_sound_rings(rings) for rings in mapping["coordinates"])
        mapping["coordinates"] = [rings for rings in polygons if rings]
    return shapely.geometry.shape(mapping)


def _sound_rings(rings: list[Any]) -> list[Any]:
    if not rings or len(rings[0]) < 4:
        return []
    return [ring for ring in rings if len(ring) >= 4]


def polygon_validity(batch: GeometryBatch, candidates: Sequence[int]) -> dict[int, str]:
    """Check the polygons among ``candidates``; return the invalid ones with GEOS's reason.

    Parameters:
      batch: The batch, in lon/lat.
      candidates: Indexes of Polygon/MultiPolygon features to check.

    Returns:
      Feature index to the reason it is invalid (empty when all are valid).
    """
    checked = nonempty(batch, candidates)
    shapes = polygon_shapes(batch, checked)
    if shapes is None:
        return validity_one_by_one(batch, checked)
    return invalid_reasons(shapes, checked)


def nonempty(batch: GeometryBatch, candidates: Sequence[int] | Ints) -> Ints:
    """The features among ``candidates`` that have at least one ring or line."""
    picked = np.asarray(candidates, dtype=np.intp)
    feature_offsets = batch.feature_offsets
    return picked[feature_offsets[picked + 1] > feature_offsets[picked]]


def invalid_reasons(shapes: Any, candidates: Sequence[int] | Ints) -> dict[int, str]:
    """Check shapely polygons built by :func:`polygon_shapes` (GEOS releases the GIL here).

    Parameters:
      shapes: One polygonal geometry per candidate.
      candidates: The feature index of each.

    Returns:
      Feature index to the reason it is invalid (empty when all are valid).
    """
    if not len(candidates):
        return {}
    valid = shapely.is_valid(shapes)
    return {
        int(candidates[int(i)]): str(shapely.is_valid_reason(shapes[i]))
        for i in np.flatnonzero(~valid)
    }


def validity_one_by_one(batch: GeometryBatch, candidates: Sequence[int] | Ints) -> dict[int, str]:
    """:func:`polygon_validity` for a batch with a degenerate ring (fewer than 4 positions).

    Parameters:
      batch: The batch, in lon/lat.
      candidates: Indexes of non-empty Polygon/MultiPolygon features to check.

    Returns:
      Feature index to the reason it is invalid.
    """
    invalid: dict[int, str] = {}
    for index in (int(candidate) for candidate in candidates):
        try:
            geometry = to_shapely(batch, index)
        except (ValueError, shapely.errors.GEOSException) as exc:
            invalid[index] = str(exc)
            continue
        if geometry is not None and not shapely.is_valid(geometry):
            invalid[index] = str(shapely.is_valid_reason(geometry))
    return invalid


def polygon_shapes(batch: GeometryBatch, candidates: Sequence[int] | Ints) -> Any:
    """Build shapely polygons for ``candidates`` in a few vectorised calls.

    Parameters:
      batch: The batch, in lon/lat.
      candidates: Indexes of non-empty Polygon/MultiPolygon features (see :func:`nonempty`).

    Returns:
      A numpy array of one Polygon (or MultiPolygon, where a feature has several) per
      candidate, or ``None`` if some ring is degenerate (fewer than 4 positions) or not
      closed, and the features must be built one by one.
    """
    seq_offsets, feature_offsets = batch.seq_offsets, batch.feature_offsets
    if not len(candidates):
        return np.empty(0, dtype=object)
    picked = np.asarray(candidates, dtype=np.intp)
    if len(picked) == len(batch):
        # Every feature (the usual case): no gathering needed.
        seqs = np.arange(len(seq_offsets) - 1)
        lengths = np.diff(seq_offsets)
        xy = batch.coords[:, :2]
        ring_offsets, feature_seq_offsets = seq_offsets, feature_offsets
    else:
        seq_counts = feature_offsets[picked + 1] - feature_offsets[picked]
        seqs = _ranges(feature_offsets[picked], seq_counts)
        starts = seq_offsets[seqs]
        lengths = seq_offsets[seqs + 1] - starts
        xy = batch.coords[_ranges(starts, lengths), :2]
        ring_offsets = _offsets(lengths)
        feature_seq_offsets = _offsets(seq_counts)
    if (lengths < 4).any():
        return None
    # An exterior ring starts each polygon (and each candidate); the rings after it are holes.
    exteriors = np.flatnonzero(batch.seq_kinds[seqs] == EXTERIOR)
    polygon_offsets = np.append(exteriors, len(seqs))
    try:
        if len(exteriors) == len(picked):
            # Each candidate is one polygon.
            return shapely.from_ragged_array(
                shapely.GeometryType.POLYGON, xy, (ring_offsets, polygon_offsets)
            )
        feature_polygon_offsets = np.searchsorted(exteriors, feature_seq_offsets)
        return shapely.from_ragged_array(
            shapely.GeometryType.MULTIPOLYGON,
            xy,
            (ring_offsets, polygon_offsets, feature_polygon_offsets),
        )
    except (ValueError, shapely.errors.GEOSException):
        return None


def _offsets(lengths: Ints) -> Ints:
    offsets = np.zeros(len(lengths) + 1, dtype=np.intp)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _single(batch: GeometryBatch, index: int) -> GeometryBatch:
    first, last = int(batch.feature_offsets[index]), int(batch.feature_offsets[index + 1])
    seq_offsets = batch.seq_offsets[first : last + 1]
    return GeometryBatch(
        coords=batch.coords[seq_offsets[0] : seq_offsets[-1]],
        seq_offsets=seq_offsets - seq_offsets[0],
        seq_kinds=batch.seq_kinds[first:last],
        feature_offsets=np.array([0, last - first], dtype=np.intp),
        types=[batch.types[index]],
        layouts=[batch.layouts[index]],
    )


def _as_lists(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {key: _as_lists(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_lists(item) for item in value]
    return value
