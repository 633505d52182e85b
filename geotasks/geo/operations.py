"""The geoprocessing operations: each reads one dataset and returns a GeoJSONResult.

Every operation takes a ``source`` (a dataset name, or a trusted ``Path`` from an earlier
job), an explicit ``data_dir`` and ``limits``, and the reading options of
:func:`geotasks.geo.reading.open_layer`. Results are always RFC 7946: WGS84 lon/lat.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from geotasks.errors import InputError
from geotasks.geo.geojson import FeatureCollectionWriter, check_precision
from geotasks.geo.limits import GeoLimits
from geotasks.geo.reading import Source, open_layer
from geotasks.geo.result import GeoJSONResult
from geotasks.geo.streaming import write_layer

logger = logging.getLogger(__name__)


def shapefile_to_geojson(
    source: Source,
    *,
    data_dir: Path,
    limits: GeoLimits,
    layer: str | None = None,
    source_crs: str | None = None,
    bbox: Sequence[float] | None = None,
    fields: Sequence[str] | None = None,
    where: str | None = None,
    precision: int = 7,
    encoding: str | None = None,
    repair: bool = False,
    limit: int | None = None,
    tmp_dir: Path | None = None,
) -> GeoJSONResult:
    """Read one dataset and return it as an RFC 7946 FeatureCollection.

    Parameters:
      source: A dataset name inside ``data_dir`` (``parcels`` finds ``parcels.shp``,
        ``parcels/`` or ``parcels.zip``), or a trusted local ``Path``.
      data_dir: The directory holding every dataset.
      limits: Feature, vertex and archive limits.
      layer: The layer to read from a folder or zip holding several shapefiles.
      source_crs: The CRS of the coordinates (``EPSG:2154``…), overriding the ``.prj``.
      bbox: Keep features intersecting ``[west, south, east, north]`` in WGS84 degrees
        (west > east crosses the antimeridian).
      fields: The properties to keep, in order; ``None`` keeps all.
      where: An OGR SQL attribute filter, such as ``"pop_est > 1000000"``.
      precision: Decimal places kept in coordinates (0..15; 7 is about 1 cm).
      encoding: The DBF's encoding, overriding ``.cpg`` and the DBF header.
      repair: Make invalid polygons valid (keeping polygonal parts) instead of failing.
      limit: Return at most this many features.
      tmp_dir: Where temporary files go (the result past 4 MiB, a rebuilt ``.shx``).

    Returns:
      The GeoJSON document; the caller closes it.

    Raises:
      InputError: If the dataset or an argument is bad (the message says which and why).
    """
    precision = check_precision(precision)
    limit = _check_limit(limit)
    _check_flag(repair, "repair")
    result = GeoJSONResult(dir=tmp_dir)
    try:
        with open_layer(
            source,
            data_dir=data_dir,
            limits=limits,
            layer=layer,
            source_crs=source_crs,
            encoding=encoding,
            fields=fields,
            where=where,
            bbox=bbox,
            tmp_dir=tmp_dir,
        ) as opened:
            writer = FeatureCollectionWriter(result, precision=precision)
            write_layer(opened, writer, limits=limits, repair=repair, limit=limit)
            writer.close()
            logger.info(
                "%s: wrote %d features (%d bytes of GeoJSON)",
                opened.label,
                writer.count,
                result.size_bytes,
            )
    except BaseException:
        result.close()
        raise
    return result


def _check_limit(limit: object) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InputError(f"limit= must be a positive integer, not {limit!r}")
    return limit


def _check_flag(value: object, name: str) -> None:
    if not isinstance(value, bool):
        raise InputError(f"{name}= must be true or false, not {value!r}")
