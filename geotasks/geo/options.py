"""The reading options every geo actor takes, carried as one value, and their checks.

:class:`ReadingOptions` is the one declaration of the options: each field's type, default,
one-line description and extra JSON Schema constraints are read from it to build the actors'
keyword-only parameters and their JSON Schemas, and the operations of
:mod:`geotasks.geo.operations` take it whole. It checks its values when built, so bad input
fails at once with the same messages as the reader gives.

This module is light (the standard library and :mod:`geotasks.geo.encoding` only): a web
application describing the built-in actors imports it without loading GDAL, GEOS or PROJ.
Whether PROJ knows a ``source_crs``, and whether ``fields`` or ``layer`` exist, can only be
checked when the dataset is opened.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from geotasks.errors import InputError
from geotasks.geo.encoding import gdal_encoding_name, lookup_codec

#: Largest ``precision`` accepted: a float64 holds about 15 significant decimals.
MAX_PRECISION = 15

#: Longest ``where`` attribute filter accepted by default, in characters.
MAX_WHERE_CHARS = 4_000

#: Longest ``source_crs`` text accepted, in characters (a long WKT is a few KB).
MAX_CRS_CHARS = 20_000

#: A lon/lat box: west, south, east, north, in degrees.
LonLatBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class ReadingOptions:
    """How to read a dataset: which layer, features, fields, and how to write coordinates.

    Each field's ``metadata`` holds ``"description"`` (one line for humans) and, where JSON
    Schema needs more than the type says, ``"schema"``: a fragment to merge into the field's
    schema (its keywords constrain only values of their own JSON type, so they may sit beside
    an ``anyOf`` that allows ``null``).

    Parameters:
      layer: The layer to read from a folder or zip holding several shapefiles.
      source_crs: The CRS of the coordinates (``EPSG:2154``…), overriding the ``.prj``.
      bbox: Keep features intersecting ``[west, south, east, north]`` in WGS84 degrees
        (west > east crosses the antimeridian).
      fields: The properties to keep, in order; ``None`` keeps all.
      where: An OGR SQL attribute filter, such as ``"pop_est > 1000000"``.
      precision: Decimal places kept in output coordinates (0..15; 7 is about 1 cm).
      encoding: The DBF's encoding, overriding ``.cpg`` and the DBF header.
      repair: Make invalid polygons valid (keeping polygonal parts) instead of keeping them
        as they are and reporting them (the default).
      strict: Fail on the first invalid polygon instead.
      limit: Read at most this many features.

    Raises:
      InputError: If a value is malformed (the message names the option and says why).
    """

    layer: str | None = field(
        default=None, metadata={"description": "layer name when the dataset holds several"}
    )
    source_crs: str | None = field(
        default=None,
        metadata={"description": "CRS of a dataset without .prj, such as EPSG:2056"},
    )
    bbox: list[float] | None = field(
        default=None,
        metadata={
            "description": "only features intersecting [west, south, east, north], in lon/lat "
            "degrees",
            "schema": {"minItems": 4, "maxItems": 4},
        },
    )
    fields: list[str] | None = field(
        default=None, metadata={"description": "attribute fields to keep (all when omitted)"}
    )
    where: str | None = field(default=None, metadata={"description": "OGR SQL attribute filter"})
    precision: int = field(
        default=7,
        metadata={
            "description": "decimal places of output coordinates",
            "schema": {"minimum": 0, "maximum": MAX_PRECISION},
        },
    )
    encoding: str | None = field(
        default=None,
        metadata={"description": "DBF text encoding, overriding .cpg and the DBF header"},
    )
    repair: bool = field(
        default=False,
        metadata={"description": "make invalid polygons valid instead of reporting them"},
    )
    strict: bool = field(
        default=False,
        metadata={"description": "fail on an invalid polygon instead of keeping and reporting it"},
    )
    limit: int | None = field(
        default=None,
        metadata={"description": "read at most this many features", "schema": {"minimum": 1}},
    )

    def __post_init__(self) -> None:
        check_layer(self.layer)
        if self.source_crs is not None:
            check_crs_text(self.source_crs, "source_crs=")
        if self.bbox is not None:
            parse_bbox(self.bbox)
        check_fields(self.fields)
        check_where(self.where)
        check_precision(self.precision)
        if self.encoding is not None:
            gdal_encoding_name(lookup_codec(self.encoding, "encoding="))
        check_flag(self.repair, "repair")
        check_flag(self.strict, "strict")
        if self.repair and self.strict:
            raise InputError(
                "repair= and strict= cannot both be true: repair them, or fail on them"
            )
        check_limit(self.limit)

    def layer_options(self) -> dict[str, Any]:
        """The options that choose what is read, as keywords of ``open_layer``."""
        return {
            "layer": self.layer,
            "source_crs": self.source_crs,
            "bbox": self.bbox,
            "fields": self.fields,
            "where": self.where,
            "encoding": self.encoding,
        }


def check_layer(layer: object) -> None:
    """Check a ``layer`` argument.

    Raises:
      InputError: If it is neither ``None`` nor a string.
    """
    if layer is not None and not isinstance(layer, str):
        raise InputError(f"layer= must be a string, not {type(layer).__name__}")


def check_crs_text(text: object, label: str) -> str:
    """Check that a CRS given as text is a string of a sensible length (PROJ parses it later).

    Parameters:
      text: The value given.
      label: What it is, for messages (``source_crs=``).

    Returns:
      The text.

    Raises:
      InputError: If it is not a string, is blank, or is longer than :data:`MAX_CRS_CHARS`.
    """
    if not isinstance(text, str):
        raise InputError(f"{label} must be a string such as 'EPSG:2154', not {type(text).__name__}")
    if not text.strip() or len(text) > MAX_CRS_CHARS:
        raise InputError(f"{label} must name a CRS such as 'EPSG:2154', in {MAX_CRS_CHARS} chars")
    return text


def parse_bbox(value: object, label: str = "bbox") -> LonLatBox:
    """Validate a caller's bbox.

    Parameters:
      value: A sequence ``(west, south, east, north)`` in degrees.
      label: The argument's name, for messages.

    Returns:
      The box as four floats.

    Raises:
      InputError: If it is not four finite numbers within ±180/±90 with south <= north.
    """
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 4:
        raise InputError(f"{label} must be [west, south, east, north] in degrees")
    try:
        west, south, east, north = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{label} must hold four numbers, not {list(value)!r}") from exc
    if isinstance(value[0], bool) or not all(map(math.isfinite, (west, south, east, north))):
        raise InputError(f"{label} must hold four finite numbers")
    if not (-180 <= west <= 180 and -180 <= east <= 180):
        raise InputError(f"{label} longitudes must lie within -180..180 (got {west}, {east})")
    if not (-90 <= south <= 90 and -90 <= north <= 90):
        raise InputError(f"{label} latitudes must lie within -90..90 (got {south}, {north})")
    if south > north:
        raise InputError(
            f"{label} is [west, south, east, north]: its south ({south}) is above its north "
            f"({north})"
        )
    return west, south, east, north


def check_fields(fields: object) -> list[str] | None:
    """Check a ``fields`` argument.

    Returns:
      The field names without repeats, in order, or ``None`` for all fields.

    Raises:
      InputError: If it is not a list of strings.
    """
    if fields is None:
        return None
    if isinstance(fields, str | bytes) or not isinstance(fields, Sequence):
        raise InputError("fields= must be a list of property names")
    if not all(isinstance(name, str) for name in fields):
        raise InputError("fields= must hold property names (strings)")
    return list(dict.fromkeys(fields))


def check_where(where: object, max_chars: int = MAX_WHERE_CHARS) -> str | None:
    """Check a ``where`` attribute filter's text (GDAL parses it when the dataset is opened).

    Parameters:
      where: The filter, or ``None``.
      max_chars: Its longest accepted length.

    Returns:
      The filter.

    Raises:
      InputError: If it is not a string, is blank, holds a NUL or is too long.
    """
    if where is None:
        return None
    if not isinstance(where, str):
        raise InputError(f"where= must be a string, not {type(where).__name__}")
    if not where.strip() or "\x00" in where or len(where) > max_chars:
        raise InputError(
            f"where= must be a non-empty OGR SQL condition of at most {max_chars} "
            'characters, such as "pop_est > 1000000"'
        )
    return where


def check_precision(precision: object) -> int:
    """Validate a ``precision`` argument.

    Parameters:
      precision: Decimal places to keep in coordinates.

    Returns:
      The precision.

    Raises:
      InputError: If it is not an integer within 0..15.
    """
    if isinstance(precision, bool) or not isinstance(precision, int):
        raise InputError(f"precision= must be an integer, not {type(precision).__name__}")
    if not 0 <= precision <= MAX_PRECISION:
        raise InputError(
            f"precision= must be within 0..{MAX_PRECISION} decimal places (7 is about 1 cm), "
            f"not {precision}"
        )
    return precision


def check_limit(limit: object) -> int | None:
    """Check a ``limit`` argument.

    Raises:
      InputError: If it is neither ``None`` nor a positive integer.
    """
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InputError(f"limit= must be a positive integer, not {limit!r}")
    return limit


def check_flag(value: object, name: str) -> bool:
    """Check a true/false argument named ``name``.

    Raises:
      InputError: If it is not a ``bool``.
    """
    if not isinstance(value, bool):
        raise InputError(f"{name}= must be true or false, not {value!r}")
    return value
