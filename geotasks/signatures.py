"""An actor's parameters described from its Python signature: JSON Schemas, descriptions, values.

Type hints, defaults and the docstring are the one description of an actor's arguments: pydantic
turns each hint into a JSON Schema (published in the catalogue, enforced by clients with
``jsonschema`` before sending and by the worker before running), and turns the JSON a message
carries back into the annotated Python values (``datetime``, ``tuple``, a shapely geometry from
GeoJSON…). A hint that has no JSON form is refused when the actor is declared, not when the
first message fails.

pydantic and shapely are imported only when an actor is declared, never by a client that sends
by name.
"""

from __future__ import annotations

import copy
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import InputError
from .registry import ActorSpec, Parameter

#: The GeoJSON geometry types (RFC 7946 §1.4), and so the shapely classes a parameter may name.
GEOMETRY_TYPES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
)

#: Section headings under which a docstring describes parameters (Dramatiq's, Google's).
_PARAMETER_SECTIONS = ("parameters", "params", "args", "arguments", "keyword arguments")
_SECTION = re.compile(r"^(\w[\w ]*):\s*$")
_ENTRY = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def docstring_summary(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line."""
    text = inspect.cleandoc(doc or "")
    return " ".join(text.split("\n\n", 1)[0].split())


def parameter_docs(doc: str | None) -> dict[str, str]:
    """Each parameter's description from a docstring's ``Parameters:`` (or ``Args:``) section.

    Entries are ``name: text`` or ``name (type): text``; continuation lines are indented
    further. Other sections (``Returns:``, ``Raises:``) end the parameters.
    """
    described: dict[str, str] = {}
    in_section = False
    current: str | None = None
    entry_indent = 0
    for line in inspect.cleandoc(doc or "").splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        heading = _SECTION.match(line)
        if heading and indent == 0:
            in_section = heading.group(1).lower() in _PARAMETER_SECTIONS
            current = None
            continue
        if not in_section or not stripped:
            continue
        entry = _ENTRY.match(stripped)
        if entry and (current is None or indent <= entry_indent):
            current, entry_indent = entry.group(1).lstrip("*"), indent
            described[current] = entry.group(2).strip()
        elif current is not None:
            described[current] = f"{described[current]} {stripped}".strip()
    return described


@dataclass(frozen=True)
class Described:
    """What :func:`describe` finds in a function: its parameters and how to convert them."""

    parameters: tuple[Parameter, ...]
    description: str
    converters: Mapping[str, Callable[[Any], Any]]


def describe(fn: Callable[..., Any], *, owner: str) -> Described:
    """Describe ``fn``'s parameters for the catalogue, and build their converters.

    Parameters:
      fn: The actor's function (its ``__signature__`` is honoured).
      owner: How to name the actor in errors.

    Raises:
      TypeError: when a parameter's type or default has no JSON form, or the function takes
        ``*args``/``**kwargs`` (a message's arguments must be described to be checked).
    """
    from pydantic import TypeAdapter
    from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError

    signature = inspect.signature(fn)
    try:
        hints = _type_hints(fn)
    except NameError as exc:
        raise TypeError(f"{owner}: a type hint cannot be resolved: {exc}") from exc
    docs = parameter_docs(fn.__doc__)
    parameters = []
    converters: dict[str, Callable[[Any], Any]] = {}
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(
                f"{owner}: *{parameter.name} cannot be described; an actor's parameters must "
                "be named, so that every message can be checked"
            )
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise TypeError(f"{owner}: parameter {parameter.name!r} must not be positional-only")
        annotation = _json_annotation(hints.get(parameter.name, Any))
        try:
            adapter: TypeAdapter[Any] = TypeAdapter(annotation)
            schema = json_schema(adapter.json_schema())
        except PydanticSchemaGenerationError as exc:
            raise TypeError(
                f"{owner}: parameter {parameter.name!r} is annotated {_type_name(annotation)}, "
                "which has no JSON form; use JSON types (str, int, float, bool, list, dict, "
                "None, datetime…), a pydantic model or TypedDict, or a shapely geometry"
            ) from exc
        except PydanticUserError as exc:
            raise TypeError(f"{owner}: parameter {parameter.name!r}: {exc.message}") from exc
        description = str(schema.pop("description", "") or docs.get(parameter.name, ""))
        schema.pop("title", None)
        if parameter.default is not parameter.empty:
            schema["default"] = _json_default(adapter, parameter, owner)
        parameters.append(
            Parameter(
                name=parameter.name,
                default=parameter.default,
                description=description,
                schema=schema,
                keyword_only=parameter.kind is parameter.KEYWORD_ONLY,
            )
        )
        if _needs_conversion(schema, annotation):
            converters[parameter.name] = _converter(adapter, parameter.name, owner)
    return Described(tuple(parameters), docstring_summary(fn.__doc__), converters)


def to_json_value(value: Any) -> Any:
    """Return ``value`` as the JSON a message carries (what the worker will see).

    Objects with ``__geo_interface__`` (shapely geometries…) become GeoJSON mappings; tuples
    become lists; datetimes, UUIDs, enums and dataclasses take orjson's JSON forms.

    Raises:
      InputError: when the value has no JSON form.
    """
    if value is None or isinstance(value, str | bool | int | float):
        return value
    try:
        return orjson.loads(orjson.dumps(value, default=_json_default_of, option=_JSON_OPTIONS))
    except orjson.JSONEncodeError as exc:
        raise InputError(f"{type(value).__name__} has no JSON form: {exc}") from None


def checked_arguments(
    spec: ActorSpec, args: tuple[Any, ...] | list[Any], kwargs: Mapping[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """A call's arguments as the JSON a message carries, checked against ``spec``.

    Raises:
      InputError: naming the argument that is unknown, missing, surplus, not JSON or of the
        wrong type.
    """
    try:
        json_args = [to_json_value(value) for value in args]
        json_kwargs = {name: to_json_value(value) for name, value in kwargs.items()}
    except InputError as exc:
        raise InputError(f"{spec.call_text}: {exc}") from None
    spec.check(json_args, json_kwargs)
    return json_args, json_kwargs


_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _json_default_of(value: Any) -> Any:
    interface = getattr(value, "__geo_interface__", None)
    if interface is not None:
        return interface
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"type {type(value).__name__} is not JSON serialisable")


def json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Tidy pydantic's JSON Schema into the plain form OGC clients and OpenAPI 3.0 read.

    ``$defs`` are inlined (a process description is read input by input), and an optional
    value's ``anyOf: [X, {"type": "null"}]`` becomes ``X`` with ``"type": [x, "null"]``.
    """
    definitions = schema.get("$defs", {})
    tidied = _tidy({k: v for k, v in schema.items() if k != "$defs"}, definitions, ())
    return tidied if isinstance(tidied, dict) else {}


def _tidy(node: Any, definitions: Mapping[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_tidy(item, definitions, seen) for item in node]
    if not isinstance(node, dict):
        return node
    reference = node.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/$defs/"):
        name = reference.removeprefix("#/$defs/")
        if name in seen:
            raise TypeError(f"{name} refers to itself; a recursive type cannot be an argument")
        inlined = _tidy(copy.deepcopy(definitions[name]), definitions, (*seen, name))
        return {**inlined, **{k: v for k, v in node.items() if k != "$ref"}}
    tidied = {key: _tidy(value, definitions, seen) for key, value in node.items()}
    branches = tidied.get("anyOf")
    if isinstance(branches, list) and len(branches) == 2 and {"type": "null"} in branches:
        (other,) = [branch for branch in branches if branch != {"type": "null"}]
        if isinstance(other, dict) and isinstance(other.get("type"), str):
            rest = {key: value for key, value in tidied.items() if key != "anyOf"}
            return {**other, **rest, "type": [other["type"], "null"]}
    return tidied


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    target = inspect.unwrap(fn)
    hints = typing.get_type_hints(target, include_extras=True)
    # A signature rewritten by a decorator (``__signature__``) may carry annotations of its own.
    for name, parameter in inspect.signature(fn).parameters.items():
        if parameter.annotation is not parameter.empty and not isinstance(
            parameter.annotation, str
        ):
            hints[name] = parameter.annotation
    return hints


def _json_annotation(annotation: Any) -> Any:
    """``annotation`` with every shapely geometry class replaced by a GeoJSON mapping that
    converts back to it."""
    geometry = _geometry_class(annotation)
    if geometry is not None:
        return _geometry_annotation(geometry)
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if not arguments or origin is None:
        return annotation
    replaced = tuple(_json_annotation(argument) for argument in arguments)
    if replaced == arguments:
        return annotation
    if origin is typing.Annotated:
        return typing.Annotated[(replaced[0], *typing.get_args(annotation)[1:])]
    if origin in (typing.Union, types.UnionType):
        return typing.Union[replaced]  # noqa: UP007 (built from a tuple)
    return origin[replaced]


def _geometry_class(annotation: Any) -> type | None:
    if not isinstance(annotation, type) or not annotation.__module__.startswith("shapely"):
        return None
    from shapely.geometry.base import BaseGeometry

    return annotation if issubclass(annotation, BaseGeometry) else None


def _geometry_annotation(geometry: type) -> Any:
    from pydantic import AfterValidator, WithJsonSchema

    kinds = [geometry.__name__] if geometry.__name__ in GEOMETRY_TYPES else list(GEOMETRY_TYPES)
    schema = {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": kinds}},
        "description": "a GeoJSON geometry (RFC 7946) in longitude/latitude",
    }

    def to_shape(value: dict[str, Any]) -> Any:
        import shapely.geometry

        try:
            shape = shapely.geometry.shape(value)
        except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
            raise ValueError(f"not a well-formed GeoJSON geometry: {exc}") from None
        if not isinstance(shape, geometry):
            raise ValueError(f"a {shape.geom_type}, where a {geometry.__name__} is expected")
        return shape

    return typing.Annotated[dict[str, Any], WithJsonSchema(schema), AfterValidator(to_shape)]


def _needs_conversion(schema: Mapping[str, Any], annotation: Any) -> bool:
    """Whether the JSON value is not already the Python value the function expects."""
    plain = {"string", "integer", "number", "boolean", "null"}
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if isinstance(kinds, list) and set(kinds) <= plain and "format" not in schema:
        # A float parameter given 3 receives 3: Python's numeric tower accepts it.
        return False
    return annotation is not Any


def _converter(adapter: Any, name: str, owner: str) -> Callable[[Any], Any]:
    from pydantic import ValidationError

    def convert(value: Any) -> Any:
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            problems = "; ".join(error["msg"] for error in exc.errors())
            raise InputError(f"{owner}: argument {name!r}: {problems}") from None

    return convert


def _json_default(adapter: Any, parameter: inspect.Parameter, owner: str) -> Any:
    try:
        return to_json_value(adapter.dump_python(parameter.default, mode="json"))
    except Exception as exc:
        raise TypeError(
            f"{owner}: the default of parameter {parameter.name!r} ({parameter.default!r}) "
            "has no JSON form"
        ) from exc


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)
