"""Processes: the public actors as OGC API – Processes describes and executes them.

Every input has a JSON Schema, published in the process description and enforced with
``jsonschema`` before anything is sent: a bad execute request is a 400 listing each problem,
and never becomes a message that fails on a worker. A process's id is its actor's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft7Validator

from .problems import INVALID_PARAMETER, NO_SUCH_PROCESS, Problem

#: Rel of a process description's link to its execution endpoint.
REL_EXECUTE = "http://www.opengis.net/def/rel/ogc/1.0/execute"

#: Members of a qualified input value besides ``value`` (OGC ``qualifiedInputValue``).
_QUALIFIERS = frozenset({"mediaType", "encoding", "schema"})


@dataclass(frozen=True)
class Input:
    """One input of a process: a keyword argument of its actor.

    Attributes:
      name: The input id, which is the actor's parameter name.
      title: A short label.
      description: What it means, with units (``distance in metres``).
      schema: The JSON Schema a value must satisfy.
      required: Whether the execute request must give it.
    """

    name: str
    title: str
    description: str
    schema: Mapping[str, Any]
    required: bool = True

    def describe(self) -> dict[str, Any]:
        """Return the OGC ``inputDescription``."""
        return {
            "title": self.title,
            "description": self.description,
            "schema": dict(self.schema),
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
            "schema": {**self.schema, "contentMediaType": self.media_type},
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
        schema = self.inputs_schema()
        Draft7Validator.check_schema(schema)
        object.__setattr__(self, "_validator", Draft7Validator(schema))

    def inputs_schema(self) -> dict[str, Any]:
        """Return the JSON Schema of the execute request's ``inputs`` object."""
        return {
            "type": "object",
            "properties": {entry.name: dict(entry.schema) for entry in self.inputs},
            "required": [entry.name for entry in self.inputs if entry.required],
            "additionalProperties": False,
        }

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
        errors = sorted(self._validator.iter_errors(values), key=lambda e: list(e.absolute_path))
        if errors:
            details = [
                {
                    "input": ".".join(str(part) for part in error.absolute_path) or None,
                    "message": error.message,
                }
                for error in errors
            ]
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
        schema = next((entry.schema for entry in self.inputs if entry.name == name), {})
        if schema.get("type") == "object":
            return value
        if "href" in value:
            raise Problem(
                400,
                f"input {name!r} is given by reference; this server takes values inline only",
                type_=INVALID_PARAMETER,
            )
        if "value" in value and set(value) - {"value"} <= _QUALIFIERS:
            return value["value"]
        return value


class Catalogue:
    """The processes a server offers, by id.

    Parameters:
      processes: The processes, in the order ``/processes`` lists them.
    """

    def __init__(self, processes: list[Process]) -> None:
        self._processes = {process.id: process for process in processes}

    def __iter__(self) -> Any:
        return iter(self._processes.values())

    def __len__(self) -> int:
        return len(self._processes)

    def get(self, process_id: str) -> Process:
        """Return the process named ``process_id``.

        Raises:
          Problem: 404 ``no-such-process``.
        """
        process = self._processes.get(process_id)
        if process is None:
            raise Problem(
                404, f"there is no process {process_id!r}", type_=NO_SUCH_PROCESS
            )
        return process
