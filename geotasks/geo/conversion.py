"""What an actor returns, made storable: JSON as it is, geometries as RFC 7946 GeoJSON.

Results cross the queue as JSON, never pickled. The value a function returns at run time
decides how it is stored, whatever its annotation says:

| The function returns | Stored as |
| --- | --- |
| `None`, `bool`, `int`, finite `float`, `str`; lists, tuples, dicts of those | JSON, as it is |
| a geometry, `Feature`, `(geometry, properties)` pair, `__geo_interface__` object | GeoJSON |
| a list, tuple, generator or other iterable of those (`None`: no geometry) | GeoJSON, streamed |
| a `GeoJSONResult` (what a built-in operation returns) | itself |
| anything else: datetime, bytes, numpy scalar, geometry in a dict, mixed list, NaN | refused |

JSON is stored as ``application/json``: a tuple becomes a list, dict keys must be strings,
``[]`` stays ``[]``, and a dict is always JSON, even a dict subclass with
``__geo_interface__`` (the ``geojson`` package's objects): stored as given, not rewritten. A
numpy ``float64`` is a float; other numpy scalars and arrays are refused (``.item()``,
``.tolist()``). A list is GeoJSON when its first item that is not ``None`` is a geometry,
feature or pair; a generator is always GeoJSON (an empty one gives an empty collection).
A refusal is :class:`~geotasks.errors.ResultNotStorable`, naming the type, where it is
(``returned[2]['geom']``, ``item 3 (from 0) of the returned generator``) and what to return.

GeoJSON results follow RFC 7946 as the built-in actors' do: WGS84 lon/lat (a GeoDataFrame with
another CRS is refused: return ``gdf.to_crs(4326)``), exterior rings counter-clockwise,
coordinates rounded to ``precision`` decimals, geometries whose longitudes pass ±180 split
at the antimeridian, ids kept when the items have them (``Feature``, ``__geo_interface__``
features). Geometries are written as given otherwise (not repaired). The feature and vertex
limits apply, and coordinates that cannot be lon/lat (a latitude beyond ±90, such as
metres) are refused.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import shapely
import shapely.geometry
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from geotasks.errors import ResultNotStorable
from geotasks.geo.antimeridian import split
from geotasks.geo.features import Feature
from geotasks.geo.geojson import FeatureCollectionWriter, encode_properties
from geotasks.geo.limits import GeoLimits
from geotasks.geo.result import GeoJSONResult

#: Features converted at a time (vectorised rounding, orienting and writing).
CHUNK_FEATURES = 1024

#: Vertices converted at a time, so a chunk of large geometries stays small in memory too.
CHUNK_VERTICES = 256 * 1024

#: Largest |longitude| accepted, in degrees: one turn past ±180 (a continuous geometry that
#: crosses the antimeridian), not metres.
MAX_ABS_LON_DEG = 540.0

#: What to return instead, said by every refusal.
_RETURN_INSTEAD = (
    "return JSON values (None, bool, int, float, str, and lists or dicts of those), or "
    "shapely geometries, Features, (geometry, properties) pairs or objects with "
    "__geo_interface__ (one, or a list or generator of them) to get GeoJSON"
)

#: Values whose JSON form is checked, never converted (a dict included).
_JSON_VALUES = (str, int, float, bool, type(None), Mapping)

_LONLAT = CRS.from_user_input("OGC:CRS84")


def to_result(
    value: Any,
    *,
    precision: int = 7,
    tmp_dir: Path | None = None,
    limits: GeoLimits | None = None,
) -> GeoJSONResult | None:
    """Decide how an actor's return value is stored (see the module's table).

    Parameters:
      value: What the function returned.
      precision: Decimal places kept in GeoJSON coordinates.
      tmp_dir: Where a large GeoJSON result is spooled.
      limits: The feature and vertex limits (the defaults when ``None``).

    Returns:
      ``None`` when ``value`` is JSON, to be stored as it is; otherwise the GeoJSON
      FeatureCollection, which the caller closes (a ``GeoJSONResult`` returned by the function
      comes back as it is).

    Raises:
      ResultNotStorable: If ``value`` is neither (the message names its type and place, and
        says what to return instead), or breaks a limit.
    """
    limits = limits or GeoLimits()
    if isinstance(value, GeoJSONResult):
        return value
    if _is_geo_object(value):
        return _write(_features_of_object(value), precision, tmp_dir, limits)
    if isinstance(value, tuple) and _is_pair(value):
        return _write(iter([_row(_RETURNED, value)]), precision, tmp_dir, limits)
    if isinstance(value, _JSON_VALUES):
        _check_json(value)
        return None
    if isinstance(value, np.ndarray) and value.dtype != object:
        raise _refusal(str(_RETURNED), value)
    if isinstance(value, list | tuple):
        first = next((item for item in value if item is not None), None)
        if first is None or not _is_geo_item(first):
            _check_json(value)
            return None
        return _write(_rows(value, "returned[{}]"), precision, tmp_dir, limits)
    if isinstance(value, Iterable) and not isinstance(value, bytes | bytearray | memoryview):
        template = f"item {{}} (from 0) of the returned {type(value).__name__}"
        return _write(_rows(value, template), precision, tmp_dir, limits)
    raise _refusal(str(_RETURNED), value)


class _Place(NamedTuple):
    """Where an item is in the returned value, spelt out only in a message."""

    template: str
    position: int

    def __str__(self) -> str:
        return self.template.format(self.position)


_RETURNED = _Place("the returned value", 0)

#: One feature to write: its id (``None`` for none), properties, lon/lat geometry, and place.
_Row = tuple[Any, Mapping[str, Any], BaseGeometry | None, _Place]


def _is_geo_object(value: object) -> bool:
    """A geometry, or a non-dict object with ``__geo_interface__`` (one feature or many).

    The attribute is looked up without being evaluated: a GeoDataFrame's builds every feature.
    """
    return isinstance(value, BaseGeometry) or (
        not isinstance(value, Mapping)
        and (
            hasattr(type(value), "__geo_interface__")
            or "__geo_interface__" in getattr(value, "__dict__", ())
        )
    )


def _is_geo_item(item: object) -> bool:
    """Whether a list item makes the list a list of features rather than a JSON array."""
    return _is_geo_object(item) or _is_pair(item)


def _is_pair(item: object) -> bool:
    return (
        isinstance(item, tuple | list)
        and len(item) == 2
        and (item[0] is None or _is_geo_object(item[0]))
        and isinstance(item[1], Mapping)
    )


def _features_of_object(value: Any) -> Iterator[_Row]:
    """The features of one geo object: a geometry, a feature, or a collection."""
    if isinstance(value, BaseGeometry | Feature):
        yield _row(_RETURNED, value)
        return
    _check_crs(value)
    iterfeatures = getattr(value, "iterfeatures", None)
    if callable(iterfeatures):
        # A GeoDataFrame builds its whole __geo_interface__ at once: stream it instead.
        features: Iterable[Any] = iterfeatures()
    else:
        interface = _interface(_RETURNED, value)
        if interface.get("type") != "FeatureCollection":
            yield _row_of_interface(_RETURNED, interface)
            return
        features = interface.get("features") or ()
    template = f"feature {{}} (from 0) of the returned {type(value).__name__}"
    for index, feature in enumerate(features):
        yield _row_of_interface(_Place(template, index), feature)


def _rows(items: Iterable[Any], template: str) -> Iterator[_Row]:
    for index, item in enumerate(items):
        yield _row(_Place(template, index), item)


def _row(where: _Place, item: Any) -> _Row:
    """One item of a geo result as a feature row."""
    if item is None:
        return None, {}, None, where
    if isinstance(item, BaseGeometry):
        return None, {}, item, where
    if isinstance(item, Feature):
        return item.id, _properties(where, item.properties), _geometry(where, item.geometry), where
    if _is_pair(item):
        geometry, properties = item
        return None, _properties(where, properties), _geometry(f"{where}[0]", geometry), where
    if _is_geo_object(item):
        return _row_of_interface(where, _interface(where, item))
    raise _refusal(where, item, feature_expected=True)


def _row_of_interface(where: _Place, interface: Any) -> _Row:
    """A feature or geometry given by its ``__geo_interface__`` mapping."""
    if not isinstance(interface, Mapping):
        raise _refusal(where, interface, feature_expected=True)
    if interface.get("type") == "FeatureCollection":
        raise ResultNotStorable(
            f"{where} is a whole FeatureCollection: return one collection, or the features of "
            "several chained (itertools.chain) in one generator"
        )
    if interface.get("type") != "Feature":
        return None, {}, _geometry(where, interface), where
    geometry = interface.get("geometry")
    properties = _properties(where, interface.get("properties") or {})
    return interface.get("id"), properties, _geometry(where, geometry), where


def _interface(where: _Place, value: Any) -> Any:
    try:
        return value.__geo_interface__
    except Exception as exc:
        raise ResultNotStorable(f"{where}: its __geo_interface__ failed: {exc}") from exc


def _geometry(where: _Place | str, value: Any) -> BaseGeometry | None:
    """A shapely geometry from a geometry, a ``__geo_interface__`` object or mapping, or None."""
    if value is None or isinstance(value, BaseGeometry):
        return value
    try:
        return shapely.geometry.shape(value)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        raise ResultNotStorable(f"{where} is not a well-formed geometry: {exc}") from exc
    except shapely.errors.GEOSException as exc:
        raise ResultNotStorable(f"{where} is not a well-formed geometry: {exc}") from exc


def _properties(where: _Place, properties: Any) -> dict[str, Any]:
    if isinstance(properties, dict):
        return properties
    if not isinstance(properties, Mapping):
        raise ResultNotStorable(
            f"the properties of {where} are a {type(properties).__name__}, not a dict"
        )
    return dict(properties)


def _check_crs(value: Any) -> None:
    """Refuse a collection (a GeoDataFrame or GeoSeries) that says it is not in lon/lat."""
    crs = getattr(value, "crs", None)
    if crs is None:
        return
    if not CRS.from_user_input(crs).equals(_LONLAT, ignore_axis_order=True):
        name = CRS.from_user_input(crs).to_string()
        raise ResultNotStorable(
            f"the returned {type(value).__name__} is in {name}, not WGS84 lon/lat: return "
            "value.to_crs(4326)"
        )


def _write(
    rows: Iterator[_Row], precision: int, tmp_dir: Path | None, limits: GeoLimits
) -> GeoJSONResult:
    """Write the rows as a FeatureCollection, a chunk at a time, as they are produced."""
    if tmp_dir is not None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
    result = GeoJSONResult(dir=tmp_dir)
    try:
        writer = FeatureCollectionWriter(result, precision=precision)
        chunk: list[_Row] = []
        vertices = 0
        for row in rows:
            chunk.append(row)
            if row[2] is not None:
                vertices += int(shapely.get_num_coordinates(row[2]))
            if len(chunk) >= CHUNK_FEATURES or vertices >= CHUNK_VERTICES:
                _write_chunk(writer, chunk, precision, limits)
                chunk, vertices = [], 0
        _write_chunk(writer, chunk, precision, limits)
        writer.close()
    except BaseException:
        result.close()
        raise
    return result


def _write_chunk(
    writer: FeatureCollectionWriter, chunk: list[_Row], precision: int, limits: GeoLimits
) -> None:
    if not chunk:
        return
    if writer.count + len(chunk) > limits.max_features:
        raise ResultNotStorable(
            f"the result has more than {limits.max_features} features (GEOTASKS_MAX_FEATURES)"
        )
    geometries = np.empty(len(chunk), dtype=object)
    geometries[:] = [row[2] for row in chunk]
    west, _, east, _ = _checked_bounds(geometries, chunk, limits).T
    for index in np.flatnonzero((west < -180.0) | (east > 180.0)).tolist():
        geometries[index] = split(geometries[index])
    # include_z=None keeps each geometry's own dimensions (the stubs know only bool).
    rounded = shapely.transform(
        geometries,
        lambda xy: np.round(xy, precision),
        include_z=None,  # type: ignore[call-overload]
    )
    texts = shapely.to_geojson(shapely.orient_polygons(rounded, exterior_cw=False))
    properties = []
    for fid, values, _, where in chunk:
        try:
            properties.append(encode_properties(values))
        except Exception as exc:
            raise ResultNotStorable(
                f"the properties of {where} cannot be written as JSON: {exc}"
            ) from exc
        _check_id(where, fid)
    writer.write_texts(
        [row[0] for row in chunk],
        properties,
        [b"null" if text is None else text.encode() for text in texts],
    )


def _checked_bounds(geometries: Any, chunk: list[_Row], limits: GeoLimits) -> Any:
    """The geometries' bounds, once their vertex counts and coordinates are checked."""
    counts = shapely.get_num_coordinates(geometries)
    for index in np.flatnonzero(counts > limits.max_vertices).tolist():
        raise ResultNotStorable(
            f"{chunk[index][3]} has more than {limits.max_vertices} vertices "
            "(GEOTASKS_MAX_VERTICES); simplify it first"
        )
    bounds = shapely.bounds(geometries)
    present = ~np.isnan(bounds).all(axis=1) | (counts > 0)
    with np.errstate(invalid="ignore"):
        bad = present & (
            ~np.isfinite(bounds).all(axis=1)
            | (bounds[:, 1] < -90.0)
            | (bounds[:, 3] > 90.0)
            | (np.abs(bounds[:, [0, 2]]) > MAX_ABS_LON_DEG).any(axis=1)
        )
    for index in np.flatnonzero(bad).tolist():
        raise ResultNotStorable(
            f"{chunk[index][3]} has coordinates that are not WGS84 longitude/latitude degrees "
            f"(bounds {tuple(float(b) for b in bounds[index])}): bring them back to lon/lat "
            "(geotasks.geo.in_metres gives to_lonlat) before returning them"
        )
    return bounds


def _check_id(where: _Place, fid: Any) -> None:
    if fid is not None and not isinstance(fid, str | int | float):
        raise ResultNotStorable(
            f"the id of {where} is a {type(fid).__name__}: a feature id is a string or number"
        )


def _check_json(value: Any) -> None:
    """Refuse what JSON cannot hold as it is, anywhere in ``value``, naming where it is."""
    stack: list[tuple[str, Any]] = [("returned", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str | bool | int | type(None)):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise ResultNotStorable(
                    f"{_place(where)} is {item}, which JSON cannot hold: return None instead"
                )
            continue
        if isinstance(item, list | tuple):
            stack.extend((f"{where}[{index}]", member) for index, member in enumerate(item))
            continue
        if isinstance(item, Mapping):
            for key, member in item.items():
                if not isinstance(key, str):
                    raise ResultNotStorable(
                        f"{_place(where)} has the key {key!r} ({type(key).__name__}): JSON "
                        "object keys are strings"
                    )
                stack.append((f"{where}[{key!r}]", member))
            continue
        raise _refusal(_place(where), item, inside_json=where != "returned")


def _place(where: str) -> str:
    return "the returned value" if where == "returned" else where


def _refusal(
    where: _Place | str, value: Any, *, feature_expected: bool = False, inside_json: bool = False
) -> ResultNotStorable:
    kind = type(value)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    if inside_json and _is_geo_item(value):
        hint = (
            "a geometry inside a dict or a list of JSON values cannot be stored: return a "
            "list of (geometry, properties) pairs or Features instead, the other values "
            "in the properties"
        )
    elif feature_expected:
        hint = (
            "every item of a geo result must be a shapely geometry, a Feature, a (geometry, "
            "properties) pair, an object with __geo_interface__, or None; to return JSON, "
            "return a list"
        )
    elif isinstance(value, np.generic):
        hint = "return value.item() (a Python number)"
    else:
        hint = _HINTS.get(kind.__name__, _RETURN_INSTEAD)
    article = "an" if name[0] in "aeiouAEIOU" else "a"
    return ResultNotStorable(
        f"{where} is {article} {name}, which cannot be stored as a result: {hint}"
    )


#: Advice for types often returned by mistake, by class name.
_HINTS = {
    "datetime": "return value.isoformat() (a str)",
    "date": "return value.isoformat() (a str)",
    "time": "return value.isoformat() (a str)",
    "Decimal": "return float(value) or str(value)",
    "bytes": "decode it to a str, or base64-encode it",
    "bytearray": "decode it to a str, or base64-encode it",
    "ndarray": "return value.tolist()",
    "set": "return a sorted list",
    "frozenset": "return a sorted list",
    "complex": "return [value.real, value.imag]",
}
