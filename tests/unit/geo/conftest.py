"""Fixtures that generate edge-case datasets in a temporary data directory.

Every dataset is written with fiona (or by hand, where the point is that it is broken) under
``tmp_path``; the shared ``sample_data/`` is only ever copied, never written.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import fiona
import pytest

from geotasks.geo.limits import GeoLimits

from .helpers import SAMPLE_DATA, SQUARE_CW

Feature = Mapping[str, Any]
MakeShapefile = Callable[..., Path]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty data directory (``GEOTASKS_DATA_DIR``)."""
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def limits() -> GeoLimits:
    """The default limits."""
    return GeoLimits()


@pytest.fixture
def make_shapefile(data_dir: Path) -> MakeShapefile:
    """Write a shapefile into the data directory and return its ``.shp`` path.

    Call it as ``make_shapefile(name, geometry_type, features, crs=..., properties=...,
    encoding=..., cpg=True)``; ``crs=None`` writes no ``.prj``.
    """

    def make(
        name: str,
        geometry: str,
        features: Iterable[Feature],
        *,
        crs: str | None = "EPSG:4326",
        properties: Mapping[str, str] | None = None,
        encoding: str = "utf-8",
        cpg: bool = True,
        folder: Path | None = None,
    ) -> Path:
        target = (folder or data_dir) / f"{name}.shp"
        schema = {"geometry": geometry, "properties": dict(properties or {"name": "str:40"})}
        records = [
            {
                "geometry": feature.get("geometry"),
                "properties": feature.get("properties", {"name": f"f{index}"}),
            }
            for index, feature in enumerate(features)
        ]
        with fiona.open(
            target,
            "w",
            driver="ESRI Shapefile",
            schema=schema,
            crs=crs or "EPSG:4326",
            encoding=encoding,
        ) as collection:
            collection.writerecords(records)
        if crs is None:
            target.with_suffix(".prj").unlink()
        if not cpg:
            target.with_suffix(".cpg").unlink(missing_ok=True)
        return target

    return make


@pytest.fixture
def square(make_shapefile: MakeShapefile) -> Path:
    """``square``: one lon/lat polygon with a hole, stored the shapefile way round."""
    hole = [(2.4, 48.4), (2.6, 48.4), (2.6, 48.6), (2.4, 48.6), (2.4, 48.4)]
    return make_shapefile(
        "square",
        "Polygon",
        [{"geometry": {"type": "Polygon", "coordinates": [SQUARE_CW, hole]}}],
    )


@pytest.fixture
def sample(data_dir: Path) -> Callable[[str], Path]:
    """Copy a dataset from ``sample_data/`` into the data directory."""

    def copy(name: str) -> Path:
        for source in SAMPLE_DATA.glob(f"{name}.*"):
            shutil.copy(source, data_dir / source.name)
        return data_dir / f"{name}.shp"

    return copy
