"""RFC 7946 GeoJSON, streamed one feature (or one batch) at a time into a GeoJSONResult.

Output rules: WGS84 lon/lat with no ``crs`` member; exterior rings counter-clockwise and holes
clockwise; coordinates rounded to ``precision`` decimals; ``"geometry": null`` kept; Z kept
(fiona already drops M); feature ids kept; an optional ``bbox`` member for the collection.
NaN and infinite property values become ``null`` (orjson's rule; JSON has no NaN).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, BinaryIO, Protocol

import numpy as np
import orjson
import shapely
from shapely.geometry.base import BaseGeometry

from geotasks.errors import InputError
from geotasks.geo.batch import GeometryBatch, geometry_texts, orient_and_round
from geotasks.geo.options import check_precision
from geotasks.geo.result import GeoJSONResult

_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_HEAD = b'{"type":"FeatureCollection","features":['
_FEATURE = b'{"type":"Feature"'
_FEATURE_ID = b'{"type":"Feature","id":'
#: Bytes copied at a time by :meth:`FeatureCollectionWriter.append_fragment`.
_COPY_BYTES = 1024 * 1024

#: A collection's bounds: west, south, east, north.
Bounds = tuple[float, float, float, float]


class ByteSink(Protocol):
    """Where a writer's bytes go: a :class:`GeoJSONResult`, or a binary file."""

    def write(self, data: bytes, /) -> Any:
        """Append ``data``."""


class FeatureCollectionWriter:
    """Writes a FeatureCollection into a :class:`GeoJSONResult`, feature by feature.

    Call :meth:`write_batch` or :meth:`write_feature` any number of times, then
    :meth:`close` once to finish the document. Geometries must be in WGS84 lon/lat already,
    within -180..180 (see :mod:`geotasks.geo.antimeridian`).

    A *fragment* writer writes features only, comma-separated, with neither the document's
    head nor its tail: the part of a collection that another process rendered, which the
    collection's own writer then takes in with :meth:`append_fragment`.

    Parameters:
      result: Where the bytes go.
      precision: Decimal places kept in coordinates.
      write_bbox: Add the collection's ``bbox`` member.
      fragment: Write features only (see above); :meth:`close` then writes nothing.

    Raises:
      InputError: If ``precision`` is out of range.
    """

    def __init__(
        self,
        result: GeoJSONResult | ByteSink,
        *,
        precision: int = 7,
        write_bbox: bool = False,
        fragment: bool = False,
    ) -> None:
        self._result = result
        self._precision = check_precision(precision)
        self._write_bbox = write_bbox
        self._bounds = [math.inf, math.inf, -math.inf, -math.inf]
        self._count = 0
        self._closed = fragment
        if not fragment:
            result.write(_HEAD)

    @property
    def count(self) -> int:
        """Features written so far."""
        return self._count

    @property
    def precision(self) -> int:
        """Decimal places kept in coordinates."""
        return self._precision

    @property
    def write_bbox(self) -> bool:
        """Whether the collection gets a ``bbox`` member."""
        return self._write_bbox

    @property
    def bounds(self) -> Bounds | None:
        """The bounds of what was written so far (when ``write_bbox``), or ``None``."""
        if not math.isfinite(self._bounds[0]):
            return None
        west, south, east, north = self._bounds
        return west, south, east, north

    def append_fragment(self, fragment: BinaryIO, count: int, bounds: Bounds | None) -> None:
        """Append the features a fragment writer wrote (see the class), copied as they are.

        Parameters:
          fragment: The fragment's bytes, read to their end.
          count: How many features it holds.
          bounds: Their bounds, as the fragment writer's :attr:`bounds` gave them.
        """
        if not count:
            return
        if self._count:
            self._result.write(b",")
        while data := fragment.read(_COPY_BYTES):
            self._result.write(data)
        self._count += count
        if bounds is not None:
            self._extend_bounds(np.array(bounds[0::2]), np.array(bounds[1::2]))

    def write_batch(
        self,
        ids: Sequence[Any],
        properties: Sequence[bytes],
        batch: GeometryBatch,
        replacements: Mapping[int, BaseGeometry | None] | None = None,
    ) -> None:
        """Write a batch of features whose geometries are flat arrays (the fast path).

        The batch's coordinates are re-oriented and rounded in place.

        Parameters:
          ids: One id per feature (``None`` to leave it out).
          properties: Each feature's properties as JSON (see :func:`encode_properties`).
          batch: The geometries, in lon/lat.
          replacements: Feature index to a shapely geometry written instead of the batch's
            (for features that were repaired or split).
        """
        texts = self.geometry_texts(batch)
        for index, geometry in (replacements or {}).items():
            texts[index] = self.geometry_text(geometry)
        self.write_texts(ids, properties, texts)

    def write_feature(
        self, fid: Any, properties: Mapping[str, Any], geometry: BaseGeometry | None
    ) -> None:
        """Write one feature with a shapely geometry (the path of geoprocessing results).

        Parameters:
          fid: The feature id, or ``None`` to leave it out.
          properties: The feature's properties.
          geometry: The geometry in lon/lat, or ``None``.
        """
        self.write_texts([fid], [encode_properties(properties)], [self.geometry_text(geometry)])

    def geometry_texts(self, batch: GeometryBatch) -> list[bytes]:
        """Orient and round a batch in place; return each feature's geometry as JSON.

        Parameters:
          batch: The geometries, in lon/lat.

        Returns:
          One JSON text per feature (``b"null"`` for a null geometry).
        """
        orient_and_round(batch, self._precision)
        if self._write_bbox and len(batch.coords):
            self._extend_bounds(batch.coords[:, 0], batch.coords[:, 1])
        return geometry_texts(batch)

    def geometry_text(self, geometry: BaseGeometry | None) -> bytes:
        """A shapely geometry (oriented and rounded here) as JSON text.

        Parameters:
          geometry: The geometry in lon/lat, or ``None``.

        Returns:
          Its JSON.
        """
        return orjson.dumps(self._geometry(geometry), option=orjson.OPT_SERIALIZE_NUMPY)

    def write_texts(
        self, ids: Sequence[Any], properties: Sequence[bytes], geometries: Sequence[bytes]
    ) -> None:
        """Write features whose properties and geometries are JSON already.

        Parameters:
          ids: One id per feature (``None`` to leave it out).
          properties: Each feature's properties as a JSON object.
          geometries: Each feature's geometry as JSON.
        """
        count = len(ids)
        if not count:
            return
        # Six pieces a feature, interleaved by slice assignment and joined once.
        pieces: list[bytes] = [b""] * (6 * count)
        pieces[0::6] = [_FEATURE if fid is None else _FEATURE_ID + _id_text(fid) for fid in ids]
        pieces[1::6] = [b',"properties":'] * count
        pieces[2::6] = properties
        pieces[3::6] = [b',"geometry":'] * count
        pieces[4::6] = geometries
        pieces[5::6] = [b"},"] * count
        pieces[-1] = b"}"
        self._result.write((b"," if self._count else b"") + b"".join(pieces))
        self._count += count

    def write_streamed(self, fid: Any, properties: bytes, geometry: Iterable[bytes]) -> None:
        """Write one feature whose geometry's JSON comes in pieces, each written as it comes.

        For a geometry too large to hold as one text (a dissolved MultiPolygon of every
        feature): its pieces are joined as they are, with nothing in between.

        Parameters:
          fid: The feature id, or ``None`` to leave it out.
          properties: The feature's properties as a JSON object.
          geometry: The geometry's JSON, in consecutive pieces.
        """
        head = _FEATURE if fid is None else _FEATURE_ID + _id_text(fid)
        self._result.write(
            (b"," if self._count else b"") + head + b',"properties":' + properties + b',"geometry":'
        )
        for piece in geometry:
            self._result.write(piece)
        self._result.write(b"}")
        self._count += 1

    def close(self) -> None:
        """Finish the document (closing the array, then the bbox if asked). Idempotent."""
        if self._closed:
            return
        self._closed = True
        tail = b"]"
        if self._write_bbox and self._count and math.isfinite(self._bounds[0]):
            tail += b',"bbox":' + orjson.dumps(
                [round(value, self._precision) for value in self._bounds]
            )
        self._result.write(tail + b"}")

    def _geometry(self, geometry: BaseGeometry | None) -> dict[str, Any] | None:
        if geometry is None:
            return None
        oriented = shapely.orient_polygons(geometry, exterior_cw=False)
        if self._write_bbox and not oriented.is_empty:
            minx, miny, maxx, maxy = oriented.bounds
            self._extend_bounds(np.array([minx, maxx]), np.array([miny, maxy]))
        return geometry_mapping(oriented, self._precision)

    def _extend_bounds(self, x: Any, y: Any) -> None:
        bounds = self._bounds
        bounds[0] = min(bounds[0], float(np.nanmin(x)))
        bounds[1] = min(bounds[1], float(np.nanmin(y)))
        bounds[2] = max(bounds[2], float(np.nanmax(x)))
        bounds[3] = max(bounds[3], float(np.nanmax(y)))


def geometry_mapping(geometry: BaseGeometry, precision: int) -> dict[str, Any]:
    """A shapely geometry as a GeoJSON mapping with rounded numpy coordinate arrays.

    Rings are written as given: orient them first (``shapely.orient_polygons``).

    Parameters:
      geometry: A lon/lat geometry.
      precision: Decimal places kept.

    Returns:
      A mapping orjson serialises with ``OPT_SERIALIZE_NUMPY``.
    """
    kind = geometry.geom_type
    if kind == "GeometryCollection":
        return {
            "type": kind,
            "geometries": [
                geometry_mapping(part, precision) for part in shapely.get_parts(geometry)
            ],
        }
    with_z = bool(shapely.has_z(geometry))

    def coords(part: BaseGeometry) -> Any:
        return np.round(shapely.get_coordinates(part, include_z=with_z), precision)

    def rings(polygon: Any) -> list[Any]:
        if polygon.is_empty:
            return []
        return [coords(polygon.exterior), *(coords(ring) for ring in polygon.interiors)]

    if kind == "Point":
        return {"type": kind, "coordinates": [] if geometry.is_empty else coords(geometry)[0]}
    if kind in ("LineString", "LinearRing", "MultiPoint"):
        return {
            "type": "LineString" if kind == "LinearRing" else kind,
            "coordinates": coords(geometry),
        }
    if kind == "Polygon":
        return {"type": kind, "coordinates": rings(geometry)}
    members = shapely.get_parts(geometry)
    if kind == "MultiLineString":
        return {"type": kind, "coordinates": [coords(part) for part in members]}
    return {"type": kind, "coordinates": [rings(part) for part in members]}


def encode_properties(properties: Mapping[str, Any]) -> bytes:
    """A feature's properties as a JSON object.

    Parameters:
      properties: The properties (a dict; bytes become base64, NaN and infinities null).

    Returns:
      The JSON text.

    Raises:
      InputError: If a value has no JSON form.
    """
    try:
        return orjson.dumps(properties, option=_DUMPS_OPTIONS, default=_default)
    except orjson.JSONEncodeError as exc:
        raise InputError(f"a property value cannot be written as JSON: {exc}") from exc


def _id_text(fid: Any) -> bytes:
    try:
        return orjson.dumps(fid, option=_DUMPS_OPTIONS, default=_default)
    except orjson.JSONEncodeError as exc:
        raise InputError(f"a feature id cannot be written as JSON: {exc}") from exc


def _default(value: Any) -> Any:
    """orjson fallback for property values JSON has no type for."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"type {type(value).__name__} is not JSON serialisable")
