"""The bounds that keep one geoprocessing job short and its memory small."""

from __future__ import annotations

from dataclasses import dataclass, fields

from geotasks.errors import ConfigurationError
from geotasks.geo.options import MAX_WHERE_CHARS

#: One mebibyte, in bytes.
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class GeoLimits:
    """Limits applied to every dataset a job reads.

    A GEOS or GDAL call cannot be interrupted by Dramatiq's time limit, so the work is bounded
    by these counts instead. The actor layer builds one from settings; the defaults suit a
    worker with a few GB of memory.

    Parameters:
      max_features: Most features a job may read (after ``where``/``bbox`` filtering).
      max_vertices: Most vertices in one geometry, before and after an operation.
      max_zip_members: Most entries in a zip archive's central directory.
      max_zip_bytes: Most uncompressed bytes, as declared by the archive, of all the members
        of a zip together. GDAL never decompresses a member past its declared size, so this
        also caps the bytes actually read out of a zip.
      max_zip_ratio: Highest declared compression ratio of one zip member (an early, cheap
        refusal of the textbook zip bomb: deflate reaches about 1032:1 only on runs of one
        byte; real shapefiles compress far less).
      max_where_chars: Longest accepted ``where`` attribute filter.
      max_clip_vertices: Most vertices in a caller's clip geometry.
      max_read_processes: Most processes that write one dataset's GeoJSON, or run buffer,
        simplify or measure on it, the job's own included: a large shapefile is split between
        them (see :mod:`geotasks.geo.parallel`). 1 keeps every job in its own process.

    Raises:
      ConfigurationError: If a limit is not a positive integer.
    """

    max_features: int = 2_000_000
    max_vertices: int = 1_000_000
    max_zip_members: int = 1_000
    max_zip_bytes: int = 2048 * MIB
    max_zip_ratio: int = 1_000
    max_where_chars: int = MAX_WHERE_CHARS
    max_clip_vertices: int = 100_000
    max_read_processes: int = 1

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigurationError(
                    f"GeoLimits.{field.name} must be a positive integer, not {value!r}"
                )
