"""Every public actor's name, queue, parameters and default options, without the actors' code.

The registry is what lets a web application send work by name (``geotasks.submit``) without
importing fiona or shapely, and check the arguments before anything is sent. The actors module
declares each actor from its :class:`ActorSpec`, so both sides agree on names, queues and
options; the HTTP layer describes each process from it.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .errors import ActorNotRegistered, InputError
from .retries import RETRY_OPTIONS

#: The queue of the geoprocessing actors.
GEO_QUEUE = "geo"

_NO_DEFAULT: Any = inspect.Parameter.empty


@dataclass(frozen=True)
class Parameter:
    """One parameter of an actor.

    Attributes:
      name: The keyword the actor takes.
      default: The default value; a parameter without one is required.
      description: One line for humans (CLI help, the HTTP API's process description).
      schema: A JSON Schema fragment describing valid values.
    """

    name: str
    default: Any = _NO_DEFAULT
    description: str = ""
    schema: Mapping[str, Any] = field(default_factory=dict)

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
        """The actor's call signature (positional-or-keyword parameters)."""
        return inspect.Signature(
            [
                inspect.Parameter(
                    p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=p.default
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


_NAME = Parameter(
    "name",
    description="dataset name in GEOTASKS_DATA_DIR, or job:<id> for another job's result",
    schema={"type": "string", "minLength": 1},
)
_READING = (
    Parameter(
        "layer",
        None,
        "layer name or index when the dataset holds several",
        {"type": ["string", "integer", "null"]},
    ),
    Parameter(
        "source_crs",
        None,
        "CRS of a dataset without .prj, such as EPSG:2056",
        {"type": ["string", "null"]},
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
    ),
    Parameter(
        "fields",
        None,
        "attribute fields to keep (all when omitted)",
        {"type": ["array", "null"], "items": {"type": "string"}},
    ),
    Parameter("where", None, "OGR SQL attribute filter", {"type": ["string", "null"]}),
    Parameter(
        "precision",
        7,
        "decimal places of output coordinates",
        {"type": "integer", "minimum": 0, "maximum": 15},
    ),
    Parameter(
        "encoding",
        None,
        "DBF text encoding, overriding .cpg and the DBF header",
        {"type": ["string", "null"]},
    ),
    Parameter(
        "repair",
        False,
        "make invalid polygons valid instead of reporting them",
        {"type": "boolean"},
    ),
    Parameter(
        "limit",
        None,
        "read at most this many features",
        {"type": ["integer", "null"], "minimum": 1},
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
                "attribute field(s) to group by; everything into one feature when omitted",
                {"type": ["string", "array", "null"], "items": {"type": "string"}},
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
    ]
)
