"""An actor's parameters described from its signature: JSON Schemas, descriptions, conversions."""

from __future__ import annotations

import datetime as dt
import json
import socket
from typing import Annotated

import pytest
import shapely
from pydantic import Field
from shapely.geometry import MultiPolygon, Point, Polygon
from typing_extensions import TypedDict

from geotasks.catalogue import BUILTIN_FILE, builtin_actors
from geotasks.errors import InputError
from geotasks.signatures import describe, parameter_docs, to_json_value


def test_hints_defaults_and_docstring_give_each_parameter_a_schema_and_a_description() -> None:
    def get_shps(name: str, min_area_km2: float = 0.0, *, tags: list[str] | None = None) -> None:
        """Polygons of a dataset, the small ones left out.

        Parameters:
          name: dataset name
          min_area_km2: polygons smaller than this are left out,
            in square kilometres
        """

    described = describe(get_shps, owner="get_shps")

    assert described.description == "Polygons of a dataset, the small ones left out."
    name, area, tags = described.parameters
    assert (name.schema, name.description, name.required) == (
        {"type": "string"},
        "dataset name",
        True,
    )
    assert area.schema == {"type": "number", "default": 0.0}
    assert area.description == "polygons smaller than this are left out, in square kilometres"
    assert tags.keyword_only
    assert tags.schema == {"type": ["array", "null"], "items": {"type": "string"}, "default": None}


class Box(TypedDict):
    bbox: Annotated[list[float], Field(min_length=4, max_length=4)]


class Tree(TypedDict):
    children: list[Tree]


def test_constraints_typed_dicts_and_dates_become_plain_json_schema() -> None:
    def f(
        count: Annotated[int, Field(ge=1, description="how many")],
        box: Box | None = None,
        since: dt.datetime | None = None,
    ) -> None:
        pass

    count, box, since = describe(f, owner="f").parameters

    assert count.schema == {"type": "integer", "minimum": 1}
    assert count.description == "how many"
    # $defs are inlined: a process description is read one input at a time
    assert "$ref" not in json.dumps(box.schema)
    assert box.schema["type"] == ["object", "null"]
    assert box.schema["properties"]["bbox"]["minItems"] == 4
    assert since.schema["format"] == "date-time"


def test_a_shapely_parameter_takes_geojson_and_the_function_receives_a_geometry() -> None:
    def f(area: Polygon, points: list[Point] | None = None) -> None:
        pass

    described = describe(f, owner="f")
    area, points = described.parameters

    assert area.schema["properties"]["type"] == {"enum": ["Polygon"]}
    assert points.schema["type"] == ["array", "null"]
    convert = described.converters["area"]
    polygon = convert({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]})
    assert isinstance(polygon, Polygon) and polygon.area == 0.5
    assert described.converters["points"]([{"type": "Point", "coordinates": [1, 2]}]) == [
        Point(1, 2)
    ]
    with pytest.raises(InputError, match=r"argument 'area'.*a Point, where a Polygon"):
        convert({"type": "Point", "coordinates": [0, 0]})


def test_a_type_with_no_json_form_is_refused_when_declared_naming_the_parameter() -> None:
    def f(name: str, sock: socket.socket) -> None:
        pass

    with pytest.raises(TypeError, match=r"f: parameter 'sock' is annotated socket.*no JSON form"):
        describe(f, owner="f")


def test_variadic_and_recursive_parameters_are_refused() -> None:
    def star(*names: str) -> None:
        pass

    with pytest.raises(TypeError, match=r"\*names cannot be described"):
        describe(star, owner="star")

    def tree(root: Tree) -> None:
        pass

    with pytest.raises(TypeError, match="refers to itself"):
        describe(tree, owner="tree")


def test_values_are_sent_as_the_json_the_worker_will_see() -> None:
    square = shapely.box(0, 0, 1, 1)
    assert to_json_value((1, 2)) == [1, 2]
    assert to_json_value({"area": square})["area"]["type"] == "Polygon"
    assert to_json_value(MultiPolygon([square]))["type"] == "MultiPolygon"
    assert to_json_value(dt.datetime(2026, 12, 7, 13, 0, tzinfo=dt.UTC)) == (
        "2026-12-07T13:00:00+00:00"
    )
    with pytest.raises(InputError, match="object has no JSON form"):
        to_json_value(object())


def test_google_style_docstrings_are_read_too() -> None:
    assert parameter_docs(
        "Do it.\n\nArgs:\n    x (int): the x\n    y: the y\n\nReturns:\n    z"
    ) == {
        "x": "the x",
        "y": "the y",
    }


def test_the_builtin_catalogue_file_is_what_the_actors_declare() -> None:
    # `make catalogue` writes the file; a client without the actors' code reads it.
    from geotasks.actors import builtin_specs

    declared = {spec["name"]: spec for spec in builtin_specs()}
    shipped = {name: spec.to_json() for name, spec in builtin_actors().items()}
    assert shipped == declared, f"run `make catalogue` to refresh geotasks/{BUILTIN_FILE}"
