"""Every public actor's name, queue, parameters and default options, without the actors' code.

The registry is what lets a web application send work by name (``geotasks.submit``) without
importing fiona or shapely, and check the arguments before anything is sent. The actors module
declares each actor from its :class:`ActorSpec`, so both sides agree on names, queues and
options; the HTTP layer describes each process from it.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ParamSpec, TypeVar

import dramatiq

from .errors import ActorNotRegistered, InputError
from .retries import RETRY_OPTIONS

P = ParamSpec("P")
R = TypeVar("R")

#: The queue of the geoprocessing actors.
GEO_QUEUE = "geo"
#: Longest delay ``add_numbers_slowly`` accepts, in seconds.
MAX_DEMO_DELAY_S = 60

_NO_DEFAULT: Any = inspect.Parameter.empty


@dataclass(frozen=True)
class Parameter:
    """One parameter of an actor.

    Attributes:
      name: The keyword the actor takes.
      default: The default value; a parameter without one is required.
      description: One line for humans (CLI help, the HTTP API's process description).
      schema: A JSON Schema fragment describing valid values.
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


@dataclass(frozen=True)
class ActorSpec:
    """An actor as clients know it.

    Attributes:
      name: The actor's name, part of the public API.
      queue_name: The queue its messages go to.
      parameters: Its parameters, in positional order.
      description: One paragraph for humans.
      options: Dramatiq actor options it is declared with (``store_results``, ``throws``…).
    """

    name: str
    queue_name: str
    parameters: tuple[Parameter, ...] = ()
    description: str = ""
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def signature(self) -> inspect.Signature:
        """The actor's call signature."""
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
        """Check a call's arguments against the signature; return them all by name.

        Raises:
          InputError: naming the unknown, missing or surplus argument.
        """
        signature = self.signature
        expected = ", ".join(str(p) for p in signature.parameters.values())
        for keyword in kwargs:
            if keyword not in signature.parameters:
                close = difflib.get_close_matches(keyword, signature.parameters, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise InputError(f"{self.name}({expected}): unknown argument {keyword!r}{hint}")
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InputError(f"{self.name}({expected}): {exc}") from None
        return dict(bound.arguments)

    def declare(self, fn: Callable[P, R], **options: Any) -> dramatiq.Actor[P, R]:
        """Declare ``fn`` as this actor on Dramatiq's global broker (set it up first).

        Parameters:
          fn: The actor's code; its parameters must be the registered ones, in order.
          options: Dramatiq actor options added to (or overriding) the registered ones, for
            values known only where the actor is declared, such as a configured time limit.

        Raises:
          TypeError: when ``fn``'s parameters are not the ones registered, so the registry
            and the actors' code cannot drift apart.
        """
        if _call_shape(inspect.signature(fn)) != _call_shape(self.signature):
            raise TypeError(
                f"{self.name} is registered as {self.name}{self.signature}, "
                f"not {self.name}{inspect.signature(fn)}"
            )
        decorate = dramatiq.actor(
            actor_name=self.name, queue_name=self.queue_name, **{**self.options, **options}
        )
        return decorate(fn)


def _call_shape(signature: inspect.Signature) -> tuple[list[str], set[str]]:
    """Positional parameter names in order, and keyword-only names: what callers rely on."""
    parameters = signature.parameters.values()
    positional = [p.name for p in parameters if p.kind is not p.KEYWORD_ONLY]
    keyword_only = {p.name for p in parameters if p.kind is p.KEYWORD_ONLY}
    return positional, keyword_only


class Registry(Mapping[str, ActorSpec]):
    """The actors clients may send to, by name.

    Parameters:
      specs: The actors to start with.
    """

    def __init__(self, specs: Iterable[ActorSpec] = ()) -> None:
        self._specs: dict[str, ActorSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: ActorSpec) -> ActorSpec:
        """Add an actor; an application may register its own to send them by name.

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
            close = difflib.get_close_matches(name, self._specs, n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            known = ", ".join(sorted(self._specs)) or "none"
            raise ActorNotRegistered(
                f"no actor named {name!r}{hint} (known actors: {known})"
            ) from None

    def __getitem__(self, name: str) -> ActorSpec:
        return self._specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)


#: A dataset name relative to GEOTASKS_DATA_DIR (no absolute path, no ``..``, no hidden file),
#: or ``job:<id>``. The geo layer still resolves names safely; this lets a client (and the HTTP
#: API's validation) refuse an impossible name before anything is sent.
DATASET_NAME_PATTERN = (
    r"^(job:[0-9A-Fa-f-]{32,36}|[A-Za-z0-9_][A-Za-z0-9_. -]*(/[A-Za-z0-9_][A-Za-z0-9_. -]*)*)$"
)

_NAME = Parameter(
    "name",
    description="dataset name in GEOTASKS_DATA_DIR, or job:<id> for another job's result",
    schema={"type": "string", "minLength": 1, "maxLength": 255, "pattern": DATASET_NAME_PATTERN},
)
_READING = (
    Parameter(
        "layer",
        None,
        "layer name when the dataset holds several",
        {"type": ["string", "null"]},
        keyword_only=True,
    ),
    Parameter(
        "source_crs",
        None,
        "CRS of a dataset without .prj, such as EPSG:2056",
        {"type": ["string", "null"]},
        keyword_only=True,
    ),
    Parameter(
        "bbox",
        None,
        "only features intersecting [west, south, east, north], in lon/lat degrees",
        {
            "type": ["array", "null"],
            "items": {"type": "number"},
            "minItems": 4,
            "maxItems": 4,
        },
        keyword_only=True,
    ),
    Parameter(
        "fields",
        None,
        "attribute fields to keep (all when omitted)",
        {"type": ["array", "null"], "items": {"type": "string"}},
        keyword_only=True,
    ),
    Parameter(
        "where",
        None,
        "OGR SQL attribute filter",
        {"type": ["string", "null"]},
        keyword_only=True,
    ),
    Parameter(
        "precision",
        7,
        "decimal places of output coordinates",
        {"type": "integer", "minimum": 0, "maximum": 15},
        keyword_only=True,
    ),
    Parameter(
        "encoding",
        None,
        "DBF text encoding, overriding .cpg and the DBF header",
        {"type": ["string", "null"]},
        keyword_only=True,
    ),
    Parameter(
        "repair",
        False,
        "make invalid polygons valid instead of reporting them",
        {"type": "boolean"},
        keyword_only=True,
    ),
    Parameter(
        "limit",
        None,
        "read at most this many features",
        {"type": ["integer", "null"], "minimum": 1},
        keyword_only=True,
    ),
)

#: Options every geo actor is declared with: results stored, bad input fails once, only
#: transient errors retried.
GEO_OPTIONS: Mapping[str, Any] = MappingProxyType(
    {"store_results": True, "throws": (InputError,), **RETRY_OPTIONS}
)


def _geo_actor(name: str, description: str, *extra: Parameter) -> ActorSpec:
    return ActorSpec(
        name=name,
        queue_name=GEO_QUEUE,
        parameters=(_NAME, *extra, *_READING),
        description=description,
        options=GEO_OPTIONS,
    )


#: The actors geotasks ships, by name.
REGISTRY = Registry(
    [
        _geo_actor(
            "shapefile_to_geojson",
            "Read a dataset and return it as an RFC 7946 GeoJSON FeatureCollection.",
        ),
        _geo_actor(
            "buffer_features",
            "Buffer every feature by a distance in metres (geodesic, wherever it lies).",
            Parameter(
                "distance_m", description="buffer distance in metres", schema={"type": "number"}
            ),
        ),
        _geo_actor(
            "simplify_features",
            "Simplify every geometry with a tolerance in metres.",
            Parameter(
                "tolerance_m",
                description="simplification tolerance in metres",
                schema={"type": "number", "exclusiveMinimum": 0},
            ),
            Parameter(
                "preserve_topology",
                True,
                "never create invalid geometries",
                {"type": "boolean"},
            ),
        ),
        _geo_actor(
            "dissolve_features",
            "Merge features, all of them or grouped by attribute values.",
            Parameter(
                "by",
                None,
                "attribute field to group by; everything into one feature when omitted",
                {"type": ["string", "null"]},
            ),
        ),
        ActorSpec(
            name="clip_features",
            queue_name=GEO_QUEUE,
            parameters=(
                _NAME,
                Parameter(
                    "geometry",
                    None,
                    "GeoJSON geometry to clip to, in lon/lat (or give bbox)",
                    {"type": ["object", "null"]},
                    keyword_only=True,
                ),
                *_READING,
            ),
            description="Clip features to a bounding box (bbox) or a GeoJSON geometry.",
            options=GEO_OPTIONS,
        ),
        _geo_actor(
            "measure_features",
            "Add geodesic area (m²) and length or perimeter (m) to every feature's properties.",
        ),
        # OGC API - Processes' test process, so OGC's conformance suite can be pointed at the
        # HTTP API; declared by geotasks.http.echo (imported by the worker module).
        ActorSpec(
            name="echo",
            queue_name=GEO_QUEUE,
            parameters=(
                Parameter(
                    "stringInput",
                    description="any text, returned as it is",
                    schema={"type": "string", "maxLength": 10_000},
                ),
                Parameter(
                    "doubleInput",
                    None,
                    "any number, returned as it is",
                    {"type": ["number", "null"]},
                ),
                Parameter(
                    "arrayInput",
                    None,
                    "up to 100 integers, returned as they are",
                    {"type": ["array", "null"], "items": {"type": "integer"}, "maxItems": 100},
                ),
                Parameter(
                    "boundingBoxInput",
                    None,
                    "an OGC bounding box ({bbox: [west, south, east, north], crs}), returned",
                    {
                        "type": ["object", "null"],
                        "required": ["bbox"],
                        "properties": {
                            "bbox": {
                                "type": "array",
                                "items": {"type": "number"},
                                "minItems": 4,
                                "maxItems": 6,
                            },
                            "crs": {"type": "string"},
                        },
                    },
                ),
                Parameter(
                    "complexObjectInput",
                    None,
                    "any JSON object, returned as it is",
                    {"type": ["object", "null"]},
                ),
                Parameter(
                    "pause_s",
                    0,
                    "seconds to wait before answering, reporting progress (for tests), 0 to 60",
                    {"type": "number", "minimum": 0, "maximum": 60},
                ),
            ),
            description="Return the inputs it was given (the OGC API - Processes test process).",
            options=GEO_OPTIONS,
        ),
        ActorSpec(
            name="add_numbers",
            queue_name="default",
            parameters=(
                Parameter("x", description="a number", schema={"type": "number"}),
                Parameter("y", description="another number", schema={"type": "number"}),
            ),
            description="Add two numbers: the demo's stand-in for real work.",
            options=MappingProxyType({"store_results": True, "max_retries": 0}),
        ),
        ActorSpec(
            name="add_numbers_slowly",
            queue_name="default",
            parameters=(
                Parameter("x", description="a number", schema={"type": "number"}),
                Parameter("y", description="another number", schema={"type": "number"}),
                Parameter(
                    "delay_s",
                    description="seconds to wait before answering",
                    schema={"type": "number", "minimum": 0, "maximum": MAX_DEMO_DELAY_S},
                ),
            ),
            description="Add two numbers after a delay: the demo's stand-in for a long job.",
            options=MappingProxyType(
                {"store_results": True, "max_retries": 0, "throws": (InputError,)}
            ),
        ),
    ]
)
