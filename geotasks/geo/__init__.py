"""Pure geoprocessing: open datasets safely by name, stream features, write RFC 7946 GeoJSON.

This package knows fiona, shapely, pyproj and orjson, and nothing of Dramatiq or Postgres.
Its public names are loaded lazily (PEP 562), on first use: :mod:`geotasks.geo.result` (the
results contract) must stay importable by a web application that never pays for GDAL::

    from geotasks.geo import Feature, LocalMetres, in_metres, read_features
    from geotasks.geo.result import GeoJSONResult
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from geotasks.geo.features import Feature, read_features
    from geotasks.geo.metres import LocalMetres, in_metres
    from geotasks.geo.options import ReadingOptions

#: Each public name and the module that defines it.
_LAZY = {
    "Feature": "geotasks.geo.features",
    "read_features": "geotasks.geo.features",
    "LocalMetres": "geotasks.geo.metres",
    "in_metres": "geotasks.geo.metres",
    "ReadingOptions": "geotasks.geo.options",
}

__all__ = ["Feature", "LocalMetres", "ReadingOptions", "in_metres", "read_features"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
