"""Processes come from the actor catalogue; inputs are JSON Schemas, checked before sending."""

from __future__ import annotations

import importlib

import pytest
from jsonschema import Draft7Validator

from geotasks.catalogue import builtin_actors
from geotasks.http.problems import INVALID_PARAMETER, Problem
from geotasks.http.processes import default_catalogue, openapi_schema

CATALOGUE = default_catalogue()


def test_every_registered_actor_is_a_process_with_a_schema_per_parameter() -> None:
    for name, spec in builtin_actors().items():
        description = CATALOGUE.get(name).describe("http://api/")
        assert list(description["inputs"]) == [p.name for p in spec.parameters]
        for parameter in spec.parameters:
            entry = description["inputs"][parameter.name]
            assert entry["schema"], f"{name}.{parameter.name} has no schema"
            assert entry["minOccurs"] == (1 if parameter.required else 0)


def test_geo_processes_output_geojson_and_echo_json() -> None:
    # Given echo declared in this process, as a worker that serves it would publish it
    importlib.import_module("geotasks.http.echo")
    buffer = CATALOGUE.get("buffer_features").describe("http://api/")
    assert buffer["outputs"]["result"]["schema"]["contentMediaType"] == "application/geo+json"
    echo = CATALOGUE.get("echo").describe("http://api/")
    assert echo["outputs"]["echo"]["schema"]["contentMediaType"] == "application/json"


def test_a_distance_is_a_number_with_its_unit_in_the_description() -> None:
    distance = CATALOGUE.get("buffer_features").describe("http://api/")["inputs"]["distance_m"]
    assert distance["schema"]["type"] == "number"
    assert "metres" in distance["description"]


@pytest.mark.parametrize("name", ["../etc/passwd", "/srv/data/x.shp", ".hidden", "a/../b"])
def test_a_dataset_name_outside_the_data_dir_is_refused_before_sending(name: str) -> None:
    with pytest.raises(Problem) as raised:
        CATALOGUE.get("shapefile_to_geojson").validate({"name": name})
    assert raised.value.status == 400
    assert raised.value.extra["errors"][0]["input"] == "name"


def test_valid_inputs_become_keyword_arguments() -> None:
    kwargs = CATALOGUE.get("buffer_features").validate(
        {"name": "naturalearth_lowres", "distance_m": 50, "precision": {"value": 6}}
    )
    assert kwargs == {"name": "naturalearth_lowres", "distance_m": 50, "precision": 6}


def test_every_invalid_input_is_listed() -> None:
    # Given two bad inputs, one missing input and one unknown input
    inputs = {"distance_m": "far", "precision": 99, "colour": "red"}
    # When they are validated
    with pytest.raises(Problem) as raised:
        CATALOGUE.get("buffer_features").validate(inputs)
    # Then one 400 lists them all
    problem = raised.value
    assert problem.type == INVALID_PARAMETER
    messages = " ".join(error["message"] for error in problem.extra["errors"])
    assert "'far' is not of type 'number'" in messages
    assert "99 is greater than the maximum of 15" in messages
    assert "'name' is a required property" in messages
    assert "'colour' was unexpected" in messages


def test_a_null_input_means_its_default() -> None:
    kwargs = CATALOGUE.get("shapefile_to_geojson").validate({"name": "x", "layer": None})
    assert kwargs == {"name": "x"}


def test_a_reference_to_another_jobs_results_chains_the_job() -> None:
    href = "http://api.example/jobs/0f8fad5b-d9cb-469f-a165-70867728950e/results"
    kwargs = CATALOGUE.get("buffer_features").validate({"name": {"href": href}, "distance_m": 5})
    assert kwargs["name"] == "job:0f8fad5b-d9cb-469f-a165-70867728950e"


def test_any_other_reference_is_refused_the_server_fetches_nothing() -> None:
    with pytest.raises(Problem, match="by reference"):
        CATALOGUE.get("buffer_features").validate(
            {"name": {"href": "http://169.254.169.254/latest"}, "distance_m": 5}
        )


def test_an_unknown_process_is_no_such_process() -> None:
    with pytest.raises(Problem) as raised:
        CATALOGUE.get("rm_rf")
    assert raised.value.status == 404
    assert raised.value.type.endswith("/no-such-process")


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": ["string", "null"]}, {"type": "string", "nullable": True}),
        (
            {"type": ["array", "null"], "items": {"type": "number"}, "minItems": 4},
            {"type": "array", "items": {"type": "number"}, "minItems": 4, "nullable": True},
        ),
        (
            {"type": ["string", "integer", "null"]},
            {"oneOf": [{"type": "string"}, {"type": "integer"}], "nullable": True},
        ),
        (
            {"type": ["string", "array"], "items": {"type": "string"}, "description": "x"},
            {
                "description": "x",
                "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            },
        ),
        (
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "number", "minimum": 0, "exclusiveMinimum": True},
        ),
    ],
)
def test_schemas_are_published_as_openapi_30_writes_them(
    schema: dict[str, object], expected: dict[str, object]
) -> None:
    assert openapi_schema(schema) == expected


def test_the_published_examples_are_valid_inputs() -> None:
    for process in CATALOGUE:
        Draft7Validator(process.inputs_schema(openapi=False)).validate(process.example_inputs())
