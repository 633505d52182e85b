"""ReadingOptions: one declaration of the reading options, checked when built."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import typing
from typing import Any

import pytest

from geotasks.errors import InputError
from geotasks.geo.options import ReadingOptions

EXPECTED_DEFAULTS = {
    "layer": None,
    "source_crs": None,
    "bbox": None,
    "fields": None,
    "where": None,
    "precision": 7,
    "encoding": None,
    "repair": False,
    "strict": False,
    "limit": None,
}


def test_the_options_in_order_with_their_defaults_and_descriptions() -> None:
    # Given the dataclass, When its fields are listed
    fields = dataclasses.fields(ReadingOptions)
    # Then they are the actors' reading options, in their order, each with a one-line description
    assert {f.name: f.default for f in fields} == EXPECTED_DEFAULTS
    assert list(EXPECTED_DEFAULTS) == [f.name for f in fields]
    for f in fields:
        description = f.metadata["description"]
        assert description and "\n" not in description


def test_field_types_are_plain_annotations_with_schema_fragments() -> None:
    # Given the annotations a JSON Schema is generated from, When they are resolved
    hints = typing.get_type_hints(ReadingOptions)
    # Then they are plain types, and the constraints the types cannot say are in "schema"
    assert hints == {
        "layer": str | None, "source_crs": str | None, "bbox": list[float] | None,
        "fields": list[str] | None, "where": str | None, "precision": int,
        "encoding": str | None, "repair": bool, "strict": bool, "limit": int | None,
    }  # fmt: skip
    schemas = {f.name: f.metadata.get("schema") for f in dataclasses.fields(ReadingOptions)}
    assert schemas["bbox"] == {"minItems": 4, "maxItems": 4}
    assert schemas["precision"] == {"minimum": 0, "maximum": 15}
    assert schemas["limit"] == {"minimum": 1}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"layer": 3}, "layer= must be a string, not int"),
        ({"source_crs": 2154}, "source_crs= must be a string such as 'EPSG:2154', not int"),
        ({"source_crs": " "}, "source_crs= must name a CRS"),
        ({"bbox": [1, 2, 3]}, r"bbox must be \[west, south, east, north\]"),
        ({"bbox": [0, 10, 1, 5]}, "its south"),
        ({"fields": "name"}, "fields= must be a list of property names"),
        ({"fields": ["a", 1]}, "fields= must hold property names"),
        ({"where": ""}, "where= must be a non-empty OGR SQL condition of at most 4000"),
        ({"where": "a" * 4001}, "at most 4000"),
        ({"precision": 16}, r"precision= must be within 0..15"),
        ({"precision": True}, "precision= must be an integer, not bool"),
        ({"encoding": "klingon"}, "encoding= names an unknown encoding"),
        ({"repair": "yes"}, "repair= must be true or false"),
        ({"limit": 0}, "limit= must be a positive integer, not 0"),
    ],
)
def test_bad_values_are_refused_when_built(options: dict[str, Any], message: str) -> None:
    # Given a malformed option, When the options are built, Then InputError names it
    with pytest.raises(InputError, match=message):
        ReadingOptions(**options)


def test_good_values_are_kept_as_given() -> None:
    # Given every option set, When built, Then the values are there and frozen
    options = ReadingOptions(
        layer="roads", source_crs="EPSG:2154", bbox=[170, -10, -170, 10], fields=["name"],
        where="pop > 1", precision=3, encoding="cp1252", repair=True, limit=10,
    )  # fmt: skip
    assert options.bbox == [170, -10, -170, 10]
    assert options.layer_options()["where"] == "pop > 1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.limit = 5  # type: ignore[misc]


def test_importing_the_options_loads_no_geo_library() -> None:
    # Given a fresh interpreter, When it imports the options (to describe the actors)
    code = "import json, sys, geotasks.geo.options; print(json.dumps(sorted(sys.modules)))"
    output = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    # Then neither GDAL, GEOS, PROJ nor numpy was loaded
    heavy = ("fiona", "shapely", "pyproj", "osgeo", "numpy")
    assert [m for m in json.loads(output) if m.split(".")[0] in heavy] == []
