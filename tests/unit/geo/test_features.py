"""read_features: the built-in actors' reader, for the user's own actors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
import shapely.geometry
from pyproj import Transformer

from geotasks import datasets
from geotasks.errors import InputError
from geotasks.geo import Feature, read_features
from geotasks.geo.context import ReadContext, set_context_provider
from geotasks.geo.limits import GeoLimits
from geotasks.job_warnings import recording

from .conftest import MakeShapefile
from .helpers import SAMPLE_DATA, SQUARE_CW, shapefile_members, zip_files

Use = Any


def project(geometry: shapely.Geometry, crs: str) -> shapely.Geometry:
    """A lon/lat geometry in the CRS ``crs``."""
    transformer = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return shapely.transform(
        geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
    )


@pytest.fixture
def use_context(data_dir: Path) -> Iterator[Any]:
    """Read with a context of the test's own; ``use_context(limits=..., open_source=...)``."""

    def use(**overrides: Any) -> None:
        context = ReadContext(**{"data_dir": data_dir, "limits": GeoLimits(), **overrides})
        set_context_provider(lambda: context)

    use()
    yield use
    set_context_provider(datasets.read_context)


def test_features_come_in_lon_lat_with_their_ids_and_properties(
    use_context: Use, make_shapefile: MakeShapefile
) -> None:
    # Given a shapefile in Web Mercator
    point = shapely.Point(2.35, 48.85)
    paris = shapely.geometry.mapping(project(point, "EPSG:3857"))
    make_shapefile(
        "mercator", "Point",
        [{"geometry": paris, "properties": {"name": "Paris"}},
         {"geometry": None, "properties": {"name": "nowhere"}}],
        crs="EPSG:3857",
    )  # fmt: skip
    # When read
    first, second = read_features("mercator")
    # Then the geometry is a shapely point in lon/lat, the null geometry None
    assert isinstance(first, Feature)
    assert first.id == 0 and first.properties == {"name": "Paris"}
    assert first.geometry is not None and first.geometry.distance(point) < 1e-5
    assert second == Feature(1, None, {"name": "nowhere"})


def test_a_feature_has_a_geo_interface(use_context: Use, square: Path) -> None:
    # Given a feature read from a dataset
    (feature,) = read_features("square")
    # When another library reads its __geo_interface__
    interface = feature.__geo_interface__
    # Then it is a GeoJSON Feature that shapely turns back into the geometry
    assert interface["type"] == "Feature" and interface["id"] == 0
    assert interface["properties"] == {"name": "f0"}
    assert shapely.geometry.shape(feature).equals(feature.geometry)
    assert json.loads(json.dumps(interface))["geometry"]["type"] == "Polygon"


def test_the_reading_options_apply(use_context: Use, data_dir: Path) -> None:
    # Given the Natural Earth countries
    for path in SAMPLE_DATA.glob("naturalearth_lowres.*"):
        (data_dir / path.name).write_bytes(path.read_bytes())
    # When read with where=, bbox= and fields=
    options: dict[str, Any] = {
        "where": "pop_est > 40000000", "bbox": [-5, 42, 8, 51], "fields": ["name"],
    }  # fmt: skip
    names = [f.properties for f in read_features("naturalearth_lowres", **options)]
    # Then the large countries near France are left, with the one field asked for
    assert sorted(p["name"] for p in names) == [
        "France",
        "Germany",
        "Italy",
        "Spain",
        "United Kingdom",
    ]
    # And limit= stops early
    assert len(list(read_features("naturalearth_lowres", **options, limit=2))) == 2


def test_a_feature_across_the_antimeridian_is_split_there(
    use_context: Use, make_shapefile: MakeShapefile
) -> None:
    # Given a polygon in a Pacific-centred CRS that spans 179°E..179°W
    box = shapely.box(179.0, -1.0, 181.0, 1.0)
    pacific = "+proj=merc +lon_0=150 +datum=WGS84"
    projected = project(shapely.segmentize(box, 0.5), pacific)
    make_shapefile(
        "pacific", "Polygon", [{"geometry": shapely.geometry.mapping(projected)}], crs=pacific
    )
    # When read
    (feature,) = read_features("pacific")
    # Then it is two parts, each within ±180, touching the antimeridian from both sides
    geometry = feature.geometry
    assert geometry is not None and geometry.geom_type == "MultiPolygon"
    west, _, east, _ = geometry.bounds
    assert (west, east) == pytest.approx((-180.0, 180.0))
    assert geometry.area == pytest.approx(4.0, rel=1e-3)


def test_a_zipped_shapefile_is_read_in_place(
    use_context: Use, data_dir: Path, square: Path
) -> None:
    # Given the square shapefile zipped (and the loose files gone)
    zip_files(data_dir / "zipped.zip", shapefile_members(square))
    # When read by name
    (feature,) = read_features("zipped")
    # Then it is the square
    assert feature.geometry is not None
    assert feature.geometry.exterior.coords[0] in [tuple(c) for c in SQUARE_CW]


@pytest.mark.parametrize("name", ["../outside", "/etc/passwd", "sub/../../x"])
def test_a_name_cannot_leave_the_data_directory(use_context: Use, name: str) -> None:
    # Given a name that points outside the data directory, When read, Then it is bad input
    with pytest.raises(InputError):
        next(read_features(name))


def test_the_limits_of_the_context_apply(use_context: Use, make_shapefile: MakeShapefile) -> None:
    # Given three points and a line of 50 vertices
    points = [{"geometry": {"type": "Point", "coordinates": (i, i)}} for i in range(3)]
    make_shapefile("three", "Point", points)
    line = {"type": "LineString", "coordinates": [(i / 10, 0) for i in range(50)]}
    make_shapefile("long", "LineString", [{"geometry": line}])
    # When read with lower limits, Then each limit is bad input
    use_context(limits=GeoLimits(max_features=2, max_vertices=10))
    with pytest.raises(InputError, match="more than the limit of 2"):
        list(read_features("three"))
    with pytest.raises(InputError, match="more than 10 vertices"):
        list(read_features("long"))
    # And limit= reads within the feature limit
    assert len(list(read_features("three", limit=2))) == 2


def test_bad_arguments_fail_before_anything_is_read(use_context: Use) -> None:
    # Given an unknown dataset and a bad argument, When read_features is called (not iterated)
    # Then the argument is refused at once
    with pytest.raises(InputError, match="limit= must be a positive integer"):
        read_features("nothing", limit=0)


def test_an_invalid_polygon_is_repaired_and_reported_unless_strict(
    use_context: Use, make_shapefile: MakeShapefile
) -> None:
    # Given a bow-tie polygon
    bowtie = {"type": "Polygon", "coordinates": [[(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)]]}
    make_shapefile("bowtie", "Polygon", [{"geometry": bowtie}])
    # When read, Then it comes out valid, and the job's warning counts it
    with recording() as warnings:
        (feature,) = read_features("bowtie")
    assert feature.geometry is not None and feature.geometry.is_valid
    assert [(w["count"], w["repaired"]) for w in warnings] == [(1, True)]
    # And with strict=True it is bad input
    with pytest.raises(InputError, match="feature 0 has an invalid polygon"):
        list(read_features("bowtie", strict=True))


def test_the_source_opener_resolves_a_job_argument(
    use_context: Use, tmp_path: Path, data_dir: Path
) -> None:
    # Given an opener that hands job:<id> over as a local GeoJSON file (as geotasks.datasets
    # does with a job's stored result), and tracks when it is closed
    result = tmp_path / "result.geojson"
    point = {"type": "Point", "coordinates": [10.0, 20.0]}
    feature = {"type": "Feature", "id": 7, "properties": {"a": 1}, "geometry": point}
    result.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    opened: list[str] = []

    @contextmanager
    def open_source(name: str) -> Iterator[str | Path]:
        opened.append(name)
        yield result if name.startswith("job:") else name
        opened.append("closed")

    use_context(open_source=open_source)
    # When the job's result is read
    (read,) = read_features("job:0123")
    # Then its features come out, and the opener's copy was released
    assert read.properties == {"a": 1}
    assert read.geometry == shapely.Point(10.0, 20.0)
    assert opened == ["job:0123", "closed"]


def test_import_geotasks_registers_a_context_from_settings_alone(tmp_path: Path) -> None:
    # Given a process with only GEOTASKS_DATA_DIR set (no database, no broker)
    environment = {"PATH": os.environ["PATH"], "GEOTASKS_DATA_DIR": str(SAMPLE_DATA)}
    code = (
        "from geotasks.geo import read_features;"
        "print(sum(1 for _ in read_features('naturalearth_cities')))"
    )
    # When it reads a dataset synchronously
    output = subprocess.run(
        [sys.executable, "-c", code], env=environment, cwd=tmp_path,
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    # Then every feature is read
    assert output.strip() == "243"
