"""The execute form is generated from the process's input schemas (issue 25, item 12)."""

from __future__ import annotations

from geotasks.http.forms import FormField, form_fields
from geotasks.http.processes import GEOJSON_OUTPUT, Input, Process

DATASET_SCHEMA = {"type": "string", "minLength": 1, "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$"}


def test_each_input_gets_the_field_its_schema_calls_for() -> None:
    # Given a process with one input of each kind
    process = Process(
        id="p",
        title="P",
        description="",
        output=GEOJSON_OUTPUT,
        inputs=(
            Input("name", "Name", "dataset", DATASET_SCHEMA, dataset=True),
            Input("distance_m", "Distance", "metres", {"type": "number", "exclusiveMinimum": 0}),
            Input("limit", "Limit", "", {"type": ["integer", "null"], "minimum": 1}, False),
            Input("unit", "Unit", "", {"type": "string", "enum": ["m", "km"]}, False),
            Input("repair", "Repair", "", {"type": "boolean"}, False),
            Input("where", "Where", "", {"type": ["string", "null"], "maxLength": 80}, False),
            Input("bbox", "Bbox", "", {"type": ["array", "null"], "items": {}}, False),
        ),
    )
    # When its form is built with the data directory's dataset names
    fields = form_fields(process, ["parcels", "region/roads", "../etc"])
    # Then datasets are offered (those the schema accepts), numbers keep their bounds, enums
    # and booleans are choices, strings text, and anything else JSON
    assert fields == [
        FormField("name", "Name", "dataset", "dataset", True, ("parcels", "region/roads")),
        FormField("distance_m", "Distance", "metres", "number", True, minimum=0.0),
        FormField("limit", "Limit", "", "integer", False, minimum=1.0),
        FormField("unit", "Unit", "", "choice", False, ("m", "km")),
        FormField("repair", "Repair", "", "boolean", False, ("true", "false")),
        FormField("where", "Where", "", "text", False, max_length=80),
        FormField("bbox", "Bbox", "", "json", False),
    ]
