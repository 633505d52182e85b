"""The formats a geo result can be written in, by media type: the ``output_format`` option.

GeoJSON (RFC 7946) is the default and what every operation writes; the others are written from
it (:mod:`geotasks.geo.writing`). This module is light (standard library only): the HTTP API
and the client check an ``output_format`` without loading GDAL.
"""

from __future__ import annotations

from dataclasses import dataclass

from geotasks.errors import InputError

#: The media type of the default output.
GEOJSON_MEDIA_TYPE = "application/geo+json"

#: The message or actor option naming the media type a GeoJSON result is stored as (read by
#: :class:`geotasks.middleware.results.Results`).
OUTPUT_FORMAT_OPTION = "output_format"


@dataclass(frozen=True)
class OutputFormat:
    """A format results can be written in.

    Parameters:
      media_type: Its IANA media type, the value of ``output_format``.
      short_name: A name to type instead (``fgb``).
      suffix: The suffix of the file served (``.zip`` for a zipped shapefile).
      driver: The GDAL driver writing it, or ``None`` for GeoJSON, which needs no conversion.
      layer_suffix: The suffix of the dataset written, inside the zip for a shapefile.
    """

    media_type: str
    short_name: str
    suffix: str
    driver: str | None
    layer_suffix: str

    @property
    def zipped(self) -> bool:
        """Whether the dataset is served inside a zip archive (a shapefile's several files)."""
        return self.suffix != self.layer_suffix


OUTPUT_FORMATS = (
    OutputFormat(GEOJSON_MEDIA_TYPE, "geojson", ".geojson", None, ".geojson"),
    OutputFormat("application/flatgeobuf", "flatgeobuf", ".fgb", "FlatGeobuf", ".fgb"),
    OutputFormat("application/geopackage+sqlite3", "geopackage", ".gpkg", "GPKG", ".gpkg"),
    OutputFormat("application/zip", "shapefile", ".zip", "ESRI Shapefile", ".shp"),
)


def output_format(value: object) -> OutputFormat:
    """The format ``output_format`` names, by media type or short name.

    Raises:
      InputError: If it names none of :data:`OUTPUT_FORMATS`.
    """
    for candidate in OUTPUT_FORMATS:
        if value in (candidate.media_type, candidate.short_name):
            return candidate
    known = ", ".join(f"{f.media_type} ({f.short_name})" for f in OUTPUT_FORMATS)
    raise InputError(f"output_format must be one of {known}, not {value!r}")
