"""The HTML execute form of a process, generated from its inputs' JSON Schemas.

Each input becomes one field whose kind the schema decides: a dataset picker for an input that
names a dataset, a choice for an ``enum``, a yes/no choice for a boolean, a number field (with
the schema's bounds) for a number or an integer, a text field for a string, and a JSON text area
for anything else (arrays, objects, several types). ``static/process.js`` turns the fields back
into an execute request; the API validates it as any other, so the form only helps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft7Validator

from .processes import Input, Process


@dataclass(frozen=True)
class FormField:
    """One field of a process's execute form.

    Attributes:
      name: The input id.
      label: A short label.
      description: What it means (units included).
      kind: ``dataset``, ``choice``, ``boolean``, ``number``, ``integer``, ``text`` or ``json``.
      required: Whether the input must be given.
      options: The values offered (dataset names, or the ``enum``).
      minimum: The smallest number allowed, if any.
      maximum: The largest number allowed, if any.
      max_length: The longest text allowed, if any.
    """

    name: str
    label: str
    description: str
    kind: str
    required: bool
    options: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None


def form_fields(process: Process, dataset_names: Sequence[str]) -> list[FormField]:
    """Return the fields of ``process``'s execute form, in the order of its inputs.

    Parameters:
      process: The process, with the JSON Schema of each input.
      dataset_names: The datasets a dataset input may name (those its schema accepts are
        offered).
    """
    return [_field(entry, dataset_names) for entry in process.inputs]


def _field(entry: Input, dataset_names: Sequence[str]) -> FormField:
    schema = entry.schema
    kinds = _types(schema)
    common: dict[str, Any] = {
        "name": entry.name,
        "label": entry.title,
        "description": entry.description,
        "required": entry.required,
    }
    if entry.dataset:
        validator = Draft7Validator(dict(schema))
        offered = tuple(name for name in dataset_names if validator.is_valid(name))
        return FormField(kind="dataset", options=offered, **common)
    if kinds == ["string"] and isinstance(schema.get("enum"), list):
        return FormField(kind="choice", options=tuple(map(str, schema["enum"])), **common)
    if kinds == ["boolean"]:
        return FormField(kind="boolean", options=("true", "false"), **common)
    if kinds in (["number"], ["integer"]):
        return FormField(
            kind=kinds[0],
            minimum=_bound(schema, "minimum", "exclusiveMinimum"),
            maximum=_bound(schema, "maximum", "exclusiveMaximum"),
            **common,
        )
    if kinds == ["string"]:
        return FormField(kind="text", max_length=schema.get("maxLength"), **common)
    return FormField(kind="json", **common)


def _types(schema: Mapping[str, Any]) -> list[str]:
    """The types a value may have, ``null`` left out (an empty field means "not given")."""
    kinds = schema.get("type")
    listed = kinds if isinstance(kinds, list) else [kinds] if isinstance(kinds, str) else []
    return [kind for kind in listed if kind != "null"]


def _bound(schema: Mapping[str, Any], inclusive: str, exclusive: str) -> float | None:
    """The bound an HTML number field can show (an exclusive one as inclusive: the API
    still refuses the bound itself)."""
    for key in (inclusive, exclusive):
        value = schema.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None
