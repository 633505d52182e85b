"""Results in other formats: FlatGeobuf, GeoPackage and zipped shapefiles, read back with GDAL."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import fiona
import pytest

from geotasks.errors import InputError
from geotasks.geo.output_formats import output_format
from geotasks.geo.result import FileResult, GeoJSONResult
from geotasks.geo.writing import convert_result

SQUARE = [[2.0, 48.0], [3.0, 48.0], [3.0, 49.0], [2.0, 49.0], [2.0, 48.0]]
FEATURES = [
    {"type": "Feature", "id": 0, "properties": {"name": "Besançon", "pop": 1, "on": "2024-05-01"},
     "geometry": {"type": "Polygon", "coordinates": [SQUARE]}},
    {"type": "Feature", "id": 1, "properties": {"name": "two", "pop": 2, "on": "2024-05-02"},
     "geometry": {"type": "MultiPolygon", "coordinates": [[SQUARE]]}},
    {"type": "Feature", "id": 2, "properties": {"name": "none", "pop": 3, "on": None},
     "geometry": None},
]  # fmt: skip


def geojson(features: list[dict[str, Any]]) -> GeoJSONResult:
    document = {"type": "FeatureCollection", "features": features}
    return GeoJSONResult.from_bytes(json.dumps(document).encode())


def read_back(result: FileResult, tmp_path: Path) -> list[Any]:
    path = tmp_path / result.file_name
    with path.open("wb") as sink:
        result.write_to(sink)
    if path.suffix == ".zip":
        assert zipfile.ZipFile(path).namelist() == [
            f"parcels{suffix}" for suffix in (".cpg", ".dbf", ".prj", ".shp", ".shx")
        ]
        return list(fiona.open(f"/vsizip/{path}/parcels.shp"))
    return list(fiona.open(path))


@pytest.mark.parametrize(
    ("media_type", "file_name"),
    [
        ("application/flatgeobuf", "parcels.fgb"),
        ("application/geopackage+sqlite3", "parcels.gpkg"),
        ("application/zip", "parcels.zip"),
    ],
)
def test_a_result_is_written_in_each_format(
    tmp_path: Path, media_type: str, file_name: str
) -> None:
    # Given a GeoJSON result with a polygon, a multipolygon and a null geometry
    with geojson(FEATURES) as result:
        # When it is converted, spooling in a tmp dir that does not exist yet
        converted = convert_result(
            result, output_format(media_type), name="parcels", tmp_dir=tmp_path / "tmp"
        )
    # Then the file has its media type and name, and GDAL reads the same features back
    assert isinstance(converted, FileResult)
    assert (converted.media_type, converted.file_name) == (media_type, file_name)
    features = read_back(converted, tmp_path)
    assert [f.properties["name"] for f in features] == ["Besançon", "two", "none"]
    # (a date-like string stays a string: FlatGeobuf has no date fields)
    assert [f.properties["on"] for f in features] == ["2024-05-01", "2024-05-02", None]
    assert [f.geometry and f.geometry.type for f in features][2] is None
    assert sorted(features[0].geometry.coordinates[0][:-1]) == sorted(
        tuple(position) for position in SQUARE[:-1]
    )
    # And nothing is left in the tmp dir
    assert list((tmp_path / "tmp").iterdir()) == []


def test_geojson_is_returned_as_it_is(tmp_path: Path) -> None:
    with geojson(FEATURES) as result:
        assert (
            convert_result(result, output_format("geojson"), name="x", tmp_dir=tmp_path) is result
        )


def test_a_shapefile_of_mixed_geometry_types_is_bad_input(tmp_path: Path) -> None:
    point = {"type": "Feature", "properties": {"name": "p", "pop": 4},
             "geometry": {"type": "Point", "coordinates": [2.0, 48.0]}}  # fmt: skip
    with (
        geojson([FEATURES[0], point]) as result,
        pytest.raises(InputError, match="cannot be written as shapefile"),
    ):
        convert_result(result, output_format("application/zip"), name="x", tmp_dir=tmp_path)


@pytest.mark.parametrize("value", ["text/csv", "kml", None, 3])
def test_an_unknown_output_format_is_bad_input(value: object) -> None:
    with pytest.raises(InputError, match="output_format must be one of application/geo"):
        output_format(value)
