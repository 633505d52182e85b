"""The mechanism behind ``@geotasks.actor`` and the catalogue: what clients know of an actor.

An :class:`ActorSpec` is an actor as a client sees it (name, queue, parameters with their JSON
Schemas, description, result media type), with no code: built from the function's signature
where the actor is declared (:mod:`geotasks.declaration`), published by workers to Postgres, and
read back by :func:`geotasks.submit`, the CLI and the HTTP API in processes that cannot import
the actor (:mod:`geotasks.catalogue`). A call's arguments are checked against it, names *and*
types, before anything is sent.

This module is light: the standard library, and jsonschema when arguments are checked.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ActorNotRegistered, InputError

if TYPE_CHECKING:
    from dramatiq import Broker
    from jsonschema import Validator

_NO_DEFAULT: Any = inspect.Parameter.empty

#: Media type of a result stored as JSON.
JSON_MEDIA_TYPE = "application/json"
#: Media type of a result stored as an RFC 7946 FeatureCollection.
GEOJSON_MEDIA_TYPE = "application/geo+json"


@dataclass(frozen=True)
class Parameter:
    """One parameter of an actor.

    Attributes:
      name: The keyword the actor takes.
      default: The default value; a parameter without one is required.
      description: One line for humans (CLI help, the HTTP API's process description).
      schema: A JSON Schema describing valid values (as the message carries them).
      keyword_only: Whether it can only be given by name.
    """

    name: str
    default: Any = _NO_DEFAULT
    description: str = ""
    schema: Mapping[str, Any] = field(default_factory=dict)
    keyword_only: bool = False

    @property
    def required(self) -> bool:
        """Whether a call must give this parameter."""
        return self.default is _NO_DEFAULT

    def to_json(self) -> dict[str, Any]:
        """This parameter as the catalogue stores it."""
        document: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "schema": dict(self.schema),
            "keyword_only": self.keyword_only,
        }
        if not self.required:
            document["default"] = self.schema.get("default", self.default)
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Parameter:
        """Read a parameter back from :meth:`to_json`'s form."""
        return cls(
            name=document["name"],
            default=document.get("default", _NO_DEFAULT),
            description=document.get("description", ""),
            schema=document.get("schema", {}),
            keyword_only=bool(document.get("keyword_only", False)),
        )


@dataclass(frozen=True)
class ActorSpec:
    """An actor as clients know it.

    Attributes:
      name: The actor's name, part of the public API.
      queue_name: The queue its messages go to.
      parameters: Its parameters, in positional order.
      description: One paragraph for humans.
      result_media_type: What its result usually is (advisory: the value the function returns
        at run time decides): ``application/geo+json`` or ``application/json``.
      options: Its public options (``rate_limit``, ``time_limit``…), as JSON, for display.
    """

    name: str
    queue_name: str
    parameters: tuple[Parameter, ...] = ()
    description: str = ""
    result_media_type: str = JSON_MEDIA_TYPE
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        """The actor's call signature (built once: every submit binds a call to it)."""
        return inspect.Signature(
            [
                inspect.Parameter(
                    p.name,
                    inspect.Parameter.KEYWORD_ONLY
                    if p.keyword_only
                    else inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    default=p.default,
                )
                for p in self.parameters
            ]
        )

    def bind(self, args: Iterable[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Check a call's argument *names* against the signature; return them all by name.

        Raises:
          InputError: naming the unknown, missing or surplus argument.
        """
        signature = self.signature
        for keyword in kwargs:
            if keyword not in signature.parameters:
                close = difflib.get_close_matches(keyword, signature.parameters, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise InputError(f"{self.call_text}: unknown argument {keyword!r}{hint}")
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InputError(f"{self.call_text}: {exc}") from None
        return dict(bound.arguments)

    def check(self, args: Iterable[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Check a call's argument names and JSON values against the parameters' schemas.

        Parameters:
          args: Positional arguments, as JSON values (see
            :func:`geotasks.signatures.to_json_value`).
          kwargs: Keyword arguments, as JSON values.

        Returns:
          Every given argument by name.

        Raises:
          InputError: naming the argument and what it expects.
        """
        bound = self.bind(args, kwargs)
        validators = self._validators
        parameters = {parameter.name: parameter for parameter in self.parameters}
        for name, value in bound.items():
            error = next(iter(validators[name].iter_errors(value)), None)
            if error is None:
                continue
            where = "".join(f"[{part!r}]" for part in error.absolute_path)
            problem = error.message
            description = parameters[name].description
            if error.validator == "pattern" and not where and description:
                # A regular expression says little to a person; what the value should be does.
                problem = f"{error.instance!r} is not a {description}"
            raise InputError(f"{self.call_text}: argument {name!r}{where}: {problem}")
        return bound

    @property
    def call_text(self) -> str:
        """``name(a, b, *, c=1)``, for error messages."""
        return f"{self.name}{self.signature}"

    @functools.cached_property
    def _validators(self) -> dict[str, Validator]:
        from jsonschema import Draft202012Validator

        return {p.name: Draft202012Validator(dict(p.schema)) for p in self.parameters}

    def to_json(self) -> dict[str, Any]:
        """This actor as the catalogue stores it."""
        return {
            "name": self.name,
            "queue_name": self.queue_name,
            "description": self.description,
            "parameters": [parameter.to_json() for parameter in self.parameters],
            "result_media_type": self.result_media_type,
            "options": dict(self.options),
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> ActorSpec:
        """Read an actor back from :meth:`to_json`'s form."""
        return cls(
            name=document["name"],
            queue_name=document["queue_name"],
            parameters=tuple(Parameter.from_json(p) for p in document.get("parameters", ())),
            description=document.get("description", ""),
            result_media_type=document.get("result_media_type", JSON_MEDIA_TYPE),
            options=MappingProxyType(dict(document.get("options", {}))),
        )


class Registry(Mapping[str, ActorSpec]):
    """Actors by name.

    Parameters:
      specs: The actors to start with.
    """

    def __init__(self, specs: Iterable[ActorSpec] = ()) -> None:
        self._specs: dict[str, ActorSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: ActorSpec) -> ActorSpec:
        """Add an actor.

        Raises:
          ValueError: when another actor with the same name is registered.
        """
        existing = self._specs.get(spec.name)
        if existing is not None and existing != spec:
            raise ValueError(f"another actor named {spec.name!r} is already registered")
        self._specs[spec.name] = spec
        return spec

    def spec(self, name: str) -> ActorSpec:
        """Return the actor named ``name``.

        Raises:
          ActorNotRegistered: with the closest known names, when there is no such actor.
        """
        try:
            return self._specs[name]
        except KeyError:
            raise not_registered(name, self._specs) from None

    def __getitem__(self, name: str) -> ActorSpec:
        return self._specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)


def not_registered(name: str, known: Iterable[str]) -> ActorNotRegistered:
    """The error for an unknown actor name, with the closest known names."""
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    listed = ", ".join(names) or "none"
    return ActorNotRegistered(f"no actor named {name!r}{hint} (known actors: {listed})")


class Declared(Protocol):
    """An actor declared in this process, waiting for (or bound to) geotasks' broker."""

    actor_name: str
    spec: ActorSpec
    #: Whether clients may see it (the catalogue, the CLI, the HTTP API).
    public: bool

    def bind(self, broker: Broker) -> None:
        """Declare the actor on ``broker``."""


#: Every actor this process declared with ``@geotasks.actor`` and no broker of its own, by
#: name: bound to geotasks' broker when it is built (:func:`geotasks.broker.setup_broker`).
DECLARED: dict[str, Declared] = {}
