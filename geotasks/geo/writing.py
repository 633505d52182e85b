"""Writing a GeoJSON result in another format: FlatGeobuf, GeoPackage or a zipped shapefile.

GDAL writes GeoPackage through SQLite, which needs a file it can seek in, not a stream: so the
GeoJSON is spooled to a private folder in ``GEOTASKS_TMP_DIR``, converted there feature by
feature (memory stays bounded), and the file (or the shapefile's files, zipped) becomes a
:class:`~geotasks.geo.result.FileResult`, which the results store keeps in chunks.
"""

from __future__ import annotations

import logging
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import fiona
from fiona.errors import FionaError

from geotasks.errors import InputError
from geotasks.geo.output_formats import OutputFormat
from geotasks.geo.result import FileResult, GeoJSONResult, SpooledResult

logger = logging.getLogger(__name__)

#: Layer creation options: a FlatGeobuf's spatial index refuses null geometries.
_CREATION_OPTIONS: dict[str, dict[str, str]] = {"FlatGeobuf": {"SPATIAL_INDEX": "NO"}}


def convert_result(
    result: GeoJSONResult, fmt: OutputFormat, *, name: str, tmp_dir: Path | None
) -> SpooledResult:
    """Write ``result`` in ``fmt``; GeoJSON is returned as it is.

    Parameters:
      result: The GeoJSON result (RFC 7946); the caller still owns it.
      fmt: The format wanted.
      name: The stem of the file served and of the layer inside it (``buffer_features``).
      tmp_dir: Where the conversion is spooled (``GEOTASKS_TMP_DIR``).

    Returns:
      The converted file, or ``result`` itself for GeoJSON; the caller closes it.

    Raises:
      InputError: If the features do not fit the format (a shapefile holds one geometry type).
    """
    if fmt.driver is None:
        return result
    if tmp_dir is not None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="geotasks-", dir=tmp_dir) as scratch:
        folder = Path(scratch)
        source = folder / "result.geojson"
        with source.open("wb") as sink:
            result.write_to(sink)
        written = folder / "out"
        written.mkdir()
        _write(source, written / f"{name}{fmt.layer_suffix}", fmt, name)
        served = written / f"{name}{fmt.layer_suffix}"
        if fmt.zipped:
            served = folder / f"{name}{fmt.suffix}"
            with zipfile.ZipFile(served, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(written.iterdir()):
                    archive.write(path, path.name)
        output = FileResult(fmt.media_type, f"{name}{fmt.suffix}", dir=tmp_dir)
        with served.open("rb") as stream:
            output.fill_from(stream)
    logger.info("%s: wrote %s, %d bytes", name, fmt.media_type, output.size_bytes)
    return output


def _write(source: Path, target: Path, fmt: OutputFormat, name: str) -> None:
    assert fmt.driver is not None
    options: dict[str, Any] = dict(_CREATION_OPTIONS.get(fmt.driver, {}))
    try:
        # GeoJSON has no date type: its date-like strings stay strings (GDAL would make them
        # date fields, which FlatGeobuf cannot hold, and rewrite their text elsewhere).
        with fiona.open(source, enabled_drivers=["GeoJSON"], DATE_AS_STRING="YES") as features:
            schema = {"geometry": "Unknown", "properties": features.schema["properties"]}
            with fiona.open(
                target, "w", driver=fmt.driver, schema=schema, crs="EPSG:4326", layer=name,
                **options,
            ) as sink:  # fmt: skip
                for feature in features:
                    sink.write(feature)
    except (FionaError, RuntimeError) as exc:
        # GDAL's refusals (a point written to a polygon shapefile) come as RuntimeError.
        raise InputError(f"the result cannot be written as {fmt.short_name}: {exc}") from exc
