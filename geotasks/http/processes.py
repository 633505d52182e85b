"""Processes: the public actors as OGC API - Processes describes and executes them.

Every input has a JSON Schema, published in the process description and enforced with
``jsonschema`` before anything is sent: a bad execute request is a 400 listing each problem,
and never becomes a message that fails on a worker. A process's id is its actor's name.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft7Validator, ValidationError

from ..catalogue import list_actors
from ..postgres.pool import Database
from ..registry import GEOJSON_MEDIA_TYPE, ActorSpec
from .problems import INVALID_PARAMETER, NO_SUCH_PROCESS, Problem

#: Rel of a process description's link to its execution endpoint.
REL_EXECUTE = "http://www.opengis.net/def/rel/ogc/1.0/execute"

#: Members of a qualified input value besides ``value`` (OGC ``qualifiedInputValue``).
_QUALIFIERS = frozenset({"mediaType", "encoding", "schema"})

#: An input by reference to another job's result on this server: chained as ``job:<id>``.
_JOB_RESULTS_HREF = re.compile(r"^(?:.*/)?jobs/([0-9A-Fa-f-]{32,36})/results/?$")

#: Keywords of a JSON Schema that apply to one type only: when a schema allows several types,
#: each goes with its type into that type's branch of the OpenAPI 3.0 ``oneOf``.
_TYPE_KEYWORDS = {
    "array": {"items", "minItems", "maxItems", "uniqueItems"},
    "object": {"properties", "required", "additionalProperties", "minProperties", "maxProperties"},
    "string": {"minLength", "maxLength", "pattern", "format", "enum"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"},
    "integer": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"},
}


def openapi_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Return a JSON Schema as OpenAPI 3.0 writes it (what OGC process descriptions use).

    OpenAPI 3.0 has no type lists: ``{"type": ["string", "null"]}`` becomes
    ``{"type": "string", "nullable": true}``, and several types a ``oneOf``; draft 6's numeric
    ``exclusiveMinimum`` becomes OpenAPI's ``minimum`` plus boolean ``exclusiveMinimum``.
    """
    result = {key: value for key, value in schema.items()}
    for key in ("items", "additionalProperties"):
        if isinstance(result.get(key), Mapping):
            result[key] = openapi_schema(result[key])
    if isinstance(result.get("properties"), Mapping):
        result["properties"] = {k: openapi_schema(v) for k, v in result["properties"].items()}
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if isinstance(result.get(exclusive), (int, float)) and not isinstance(
            result[exclusive], bool
        ):
            result[bound] = result.pop(exclusive)
            result[exclusive] = True
    types = result.get("type")
    if not isinstance(types, list):
        return result
    nullable = "null" in types
    kinds = [kind for kind in types if kind != "null"]
    if len(kinds) == 1:
        result["type"] = kinds[0]
    else:
        shared = {
            key: value
            for key, value in result.items()
            if key != "type" and not any(key in _TYPE_KEYWORDS.get(k, set()) for k in kinds)
        }
        branches = [
            {
                "type": kind,
                **{k: v for k, v in result.items() if k in _TYPE_KEYWORDS.get(kind, set())},
            }
            for kind in kinds
        ]
        result = {**shared, "oneOf": branches}
    if nullable:
        result["nullable"] = True
    return result


@dataclass(frozen=True)
class Input:
    """One input of a process: a keyword argument of its actor.

    Attributes:
      name: The input id, which is the actor's parameter name.
      title: A short label.
      description: What it means, with units (``distance in metres``).
      schema: The JSON Schema a value must satisfy.
      required: Whether the execute request must give it.
      dataset: Whether it names a dataset, so it may also reference another job's result.
    """

    name: str
    title: str
    description: str
    schema: Mapping[str, Any]
    required: bool = True
    dataset: bool = False

    def describe(self) -> dict[str, Any]:
        """Return the OGC ``inputDescription``."""
        return {
            "title": self.title,
            "description": self.description,
            "schema": openapi_schema(self.schema),
            "minOccurs": 1 if self.required else 0,
            "maxOccurs": 1,
        }


@dataclass(frozen=True)
class Output:
    """The one output of a process.

    Attributes:
      name: The output id.
      title: A short label.
      description: What it holds.
      media_type: ``application/geo+json`` or ``application/json``.
      schema: Its JSON Schema.
    """

    name: str
    title: str
    description: str
    media_type: str
    schema: Mapping[str, Any]

    def describe(self) -> dict[str, Any]:
        """Return the OGC ``outputDescription``."""
        return {
            "title": self.title,
            "description": self.description,
            "schema": {**openapi_schema(self.schema), "contentMediaType": self.media_type},
        }


@dataclass(frozen=True)
class Process:
    """A public actor offered as an OGC process.

    Attributes:
      id: The actor's name.
      title: A short label.
      description: What it does.
      inputs: Its inputs, in the actor's parameter order.
      output: What it returns.
      version: The process's version, as OGC asks.
      keywords: Search terms.
    """

    id: str
    title: str
    description: str
    inputs: tuple[Input, ...]
    output: Output
    version: str = "1.0.0"
    keywords: tuple[str, ...] = ()
    _validator: Draft7Validator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        schema = self.inputs_schema(openapi=False)
        Draft7Validator.check_schema(schema)
        object.__setattr__(self, "_validator", Draft7Validator(schema))

    def inputs_schema(self, *, openapi: bool = True) -> dict[str, Any]:
        """Return the schema of the execute request's ``inputs`` object.

        Parameters:
          openapi: As OpenAPI 3.0 writes it (published); ``False`` for the JSON Schema the
            inputs are validated with.
        """
        convert = openapi_schema if openapi else (lambda schema: copy.deepcopy(dict(schema)))
        document: dict[str, Any] = {
            "type": "object",
            "properties": {entry.name: convert(entry.schema) for entry in self.inputs},
            "additionalProperties": False,
        }
        required = [entry.name for entry in self.inputs if entry.required]
        if required:
            document["required"] = required
        return document

    def example_inputs(self) -> dict[str, Any]:
        """Return the inputs of a minimal execute request: a value for each required input."""
        samples = {"string": "example", "number": 1.0, "integer": 1, "boolean": True}
        example: dict[str, Any] = {}
        for entry in self.inputs:
            if not entry.required:
                continue
            kind = entry.schema.get("type")
            example[entry.name] = (
                "naturalearth_lowres" if entry.dataset else samples.get(str(kind), "…")
            )
        return example

    def summary(self, base_url: str) -> dict[str, Any]:
        """Return the OGC ``processSummary``."""
        url = f"{base_url}processes/{self.id}"
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "version": self.version,
            "keywords": list(self.keywords),
            "jobControlOptions": ["async-execute", "dismiss"],
            "outputTransmission": ["value"],
            "links": [
                {"href": f"{url}?f=json", "rel": "self", "type": "application/json"},
                {"href": f"{url}?f=html", "rel": "alternate", "type": "text/html"},
                {
                    "href": f"{url}/execution",
                    "rel": REL_EXECUTE,
                    "type": "application/json",
                    "title": "execute this process",
                },
            ],
        }

    def describe(self, base_url: str) -> dict[str, Any]:
        """Return the OGC ``process`` description, with every input's JSON Schema."""
        return {
            **self.summary(base_url),
            "inputs": {entry.name: entry.describe() for entry in self.inputs},
            "outputs": {self.output.name: self.output.describe()},
        }

    def validate(self, inputs: object) -> dict[str, Any]:
        """Check an execute request's ``inputs`` and return them as the actor's keyword arguments.

        Qualified values (``{"value": …, "mediaType": …}``) are unwrapped first; values by
        reference (``{"href": …}``) are refused, since the server never fetches URLs for a
        client.

        Raises:
          Problem: 400, listing every input that fails its schema.
        """
        if not isinstance(inputs, dict):
            raise Problem(400, "'inputs' must be a JSON object", type_=INVALID_PARAMETER)
        values = {name: self._unwrap(name, value) for name, value in inputs.items()}
        # An input left null means "use the default", as leaving it out does.
        values = {name: value for name, value in values.items() if value is not None}
        errors = sorted(self._validator.iter_errors(values), key=lambda e: list(e.absolute_path))
        if errors:
            details = [{"input": _input_of(error), "message": error.message} for error in errors]
            summary = "; ".join(
                f"{item['input']}: {item['message']}" if item["input"] else item["message"]
                for item in details
            )
            raise Problem(
                400,
                f"invalid inputs for process {self.id!r}: {summary}",
                type_=INVALID_PARAMETER,
                extra={"errors": details},
            )
        return values

    def _unwrap(self, name: str, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        entry = next((entry for entry in self.inputs if entry.name == name), None)
        if entry is None or entry.schema.get("type") == "object":
            return value
        if "href" in value and isinstance(value["href"], str):
            match = _JOB_RESULTS_HREF.match(value["href"])
            if entry.dataset and match:
                return f"job:{match.group(1)}"
            raise Problem(
                400,
                f"input {name!r} is given by reference; this server takes values inline "
                "only (a dataset input may reference another job's results, /jobs/{id}/results)",
                type_=INVALID_PARAMETER,
            )
        if "value" in value and set(value) - {"value"} <= _QUALIFIERS:
            return value["value"]
        return value


def _input_of(error: ValidationError) -> str | None:
    """Name the input a validation error is about (a missing or unknown one is named too)."""
    path = ".".join(str(part) for part in error.absolute_path)
    if path:
        return path
    instance = error.instance
    if not isinstance(instance, dict):
        return None
    if error.validator == "required" and isinstance(error.validator_value, list):
        missing = [name for name in error.validator_value if name not in instance]
        return str(missing[0]) if missing else None
    if error.validator == "additionalProperties" and isinstance(error.schema, Mapping):
        known = set(error.schema.get("properties", {}))
        extra = [name for name in instance if name not in known]
        return str(extra[0]) if extra else None
    return None


class Catalogue:
    """The processes a server offers, by id: one per actor of the actor catalogue.

    The actors are read again at every request (:mod:`geotasks.catalogue` caches them
    briefly), so an actor is offered as soon as a worker that serves it has started.

    Parameters:
      actors: Returns the actors to offer, in the order ``/processes`` lists them.
    """

    def __init__(self, actors: Callable[[], Iterable[ActorSpec]]) -> None:
        self._actors = actors
        self._lock = threading.Lock()
        #: Processes by their actor's spec, as JSON: a validator is built once per spec.
        self._built: dict[str, Process] = {}

    def _processes(self) -> dict[str, Process]:
        processes = {}
        for spec in self._actors():
            key = json.dumps(spec.to_json(), sort_keys=True)
            with self._lock:
                process = self._built.get(key)
                if process is None:
                    process = self._built[key] = process_from_spec(spec)
            processes[process.id] = process
        return processes

    def __iter__(self) -> Iterator[Process]:
        return iter(self._processes().values())

    def __len__(self) -> int:
        return len(self._processes())

    def get(self, process_id: str) -> Process:
        """Return the process named ``process_id``.

        Raises:
          Problem: 404 ``no-such-process``.
        """
        process = self._processes().get(process_id)
        if process is None:
            raise Problem(404, f"there is no process {process_id!r}", type_=NO_SUCH_PROCESS)
        return process


#: The output of every geo actor: an RFC 7946 FeatureCollection.
GEOJSON_OUTPUT = Output(
    name="result",
    title="Result",
    description="an RFC 7946 GeoJSON FeatureCollection, in longitude/latitude (WGS 84)",
    media_type="application/geo+json",
    schema={"type": "object", "required": ["type", "features"]},
)

#: The output of an actor whose result is any JSON value.
JSON_OUTPUT = Output(
    name="result",
    title="Result",
    description="the actor's result, as JSON",
    media_type="application/json",
    schema={},
)

#: Actors whose output has a name of its own.
OTHER_OUTPUTS = {
    "echo": Output(
        name="echo",
        title="Echo",
        description="the inputs given, as a JSON object",
        media_type="application/json",
        schema={"type": "object"},
    )
}

#: The parameter of geo actors that names a dataset (or ``job:<id>``).
DATASET_PARAMETER = "name"


def _title(name: str) -> str:
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).replace("_", " ").split()
    return " ".join(words).capitalize()


def process_from_spec(spec: ActorSpec) -> Process:
    """Return the OGC process of a registered actor: one input per parameter."""
    return Process(
        id=spec.name,
        title=_title(spec.name),
        description=spec.description,
        inputs=tuple(
            Input(
                name=parameter.name,
                title=_title(parameter.name),
                description=parameter.description,
                schema=parameter.schema,
                required=parameter.required,
                dataset=parameter.name == DATASET_PARAMETER,
            )
            for parameter in spec.parameters
        ),
        output=OTHER_OUTPUTS.get(spec.name, _output_of(spec)),
        keywords=("geotasks", spec.queue_name),
    )


def _output_of(spec: ActorSpec) -> Output:
    if spec.result_media_type == GEOJSON_MEDIA_TYPE:
        return GEOJSON_OUTPUT
    return JSON_OUTPUT


def default_catalogue(database: Database | None = None) -> Catalogue:
    """Return every actor of the actor catalogue as a process: built-in ones first.

    Parameters:
      database: Where workers publish their actors; ``GEOTASKS_DATABASE_URL``'s by default.
    """
    return Catalogue(lambda: list_actors(database=database))
