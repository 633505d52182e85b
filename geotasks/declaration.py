"""``@geotasks.actor``: a plain function becomes a Dramatiq actor with geotasks' guarantees.

>>> import geotasks
>>> @geotasks.actor(rate_limit="4/m")
... def get_shps(name: str, min_area_km2: float = 0.0) -> list[Polygon]:
...     ...
>>> get_shps("parcels")          # runs here and now
>>> job = get_shps.submit("parcels")   # a geotasks.Job, already PENDING

What Celery's ``@task`` and Dramatiq's ``@actor`` leave to the user, this does once:

- **Defaults** are geotasks': results stored; :class:`~geotasks.errors.InputError` (bad input)
  fails at once, on the first attempt; only transient errors (a server away) are retried, with
  back-off capped at minutes (:mod:`geotasks.retries`).
- **Arguments are described by the signature** (:mod:`geotasks.signatures`): ``submit`` checks
  names and types before anything is sent, and the worker checks again before running (a
  message can arrive by other means), failing a bad one once with the same message.
- **Results are converted, never pickled**: JSON values are stored as they are; shapely
  geometries, features and anything with ``__geo_interface__`` become an RFC 7946
  FeatureCollection, streamed (:mod:`geotasks.geo.conversion`); anything else fails the job at
  once, saying what to return instead.
- **Declaring connects to nothing**: the broker is built from the ``GEOTASKS_*`` settings when
  it is first needed (a send, a worker), so ``import myapp.tasks`` works in a shell or a test
  with no setting at all, and so does calling the function.
"""

from __future__ import annotations

import contextvars
import inspect
import re
import typing
from collections.abc import Callable, Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

import dramatiq
from dramatiq.logging import get_logger
from dramatiq.middleware import CurrentMessage

from .broker import current_broker, known_actor_options, setup_broker
from .errors import InputError, ResultNotStorable
from .registry import (
    DECLARED,
    GEOJSON_MEDIA_TYPE,
    JSON_MEDIA_TYPE,
    ActorSpec,
)
from .retries import retry_options
from .schedule import parse_cron, parse_every
from .settings import get_settings
from .signatures import checked_arguments, describe

if TYPE_CHECKING:
    from .jobs import Job

P = ParamSpec("P")
R = TypeVar("R")

#: The queue an actor goes to unless it names one (Dramatiq's default).
DEFAULT_QUEUE = "default"

#: Options shown in the catalogue (``geotasks actors``, the HTTP API), when an actor sets them.
PUBLIC_OPTIONS = (
    "rate_limit",
    "rate_limit_burst",
    "concurrency_limit",
    "time_limit",
    "max_retries",
    "result_ttl",
    "max_age",
    "skip_late_s",
    "overlap",
)

#: Options that only a periodic actor (``every=`` or ``cron=``) may set.
PERIODIC_OPTIONS = frozenset({"skip_late_s", "overlap"})

_QUEUE_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9._-]*")

#: Set while an actor runs a message, so that actors it calls directly run as plain functions.
_RUNNING_MESSAGE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "geotasks_running_message", default=False
)


class Actor(dramatiq.Actor[P, R], Generic[P, R]):
    """A Dramatiq actor declared by :func:`actor`: ``send`` as Dramatiq's, plus :meth:`submit`.

    Unlike Dramatiq's, it is bound to a broker only when one is needed, and it runs a message
    (in a worker) differently from a direct call: the message's arguments are checked and
    converted from JSON, and the returned value is converted for storage.

    Attributes:
      spec: The actor as clients know it (name, queue, parameters, description).
      public: Whether workers publish it to the catalogue (clients, the CLI, the HTTP API).
    """

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        spec: ActorSpec,
        options: dict[str, Any],
        converters: Mapping[str, Callable[[Any], Any]],
        priority: int = 0,
        broker: dramatiq.Broker | None = None,
        public: bool = True,
    ) -> None:
        # Dramatiq's __init__ declares the actor on a broker at once; this one waits for one.
        self.logger = get_logger(fn.__module__ or "_", spec.name)  # type: ignore[no-untyped-call]
        self.fn = fn
        self.actor_name = spec.name
        self.queue_name = spec.queue_name
        self.priority = priority
        self.options = options
        self.spec = spec
        self.public = public
        self._converters = converters
        self._signature = inspect.signature(fn)
        self._broker: dramatiq.Broker | None = None
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        if broker is not None:
            self.bind(broker)
            return
        if spec.name in DECLARED:
            raise ValueError(f"An actor named {spec.name!r} is already registered.")
        DECLARED[spec.name] = self
        built = current_broker()
        if built is not None:
            self.bind(built)

    @property
    def broker(self) -> dramatiq.Broker:
        """The broker the actor sends to: geotasks' own, built from the settings on first use.

        Raises:
          ConfigurationError: when no database is configured.
        """
        if self._broker is None:
            setup_broker()  # binds every declared actor, this one included
        assert self._broker is not None
        return self._broker

    @broker.setter
    def broker(self, broker: dramatiq.Broker) -> None:
        self.bind(broker)

    def bind(self, broker: dramatiq.Broker) -> None:
        """Declare the actor on ``broker`` (its options are checked by the middleware)."""
        if self._broker is broker and broker.actors.get(self.actor_name) is self:
            return
        unknown = set(self.options) - broker.actor_options
        if unknown:
            raise ValueError(
                f"the actor {self.actor_name!r} has options no middleware of its broker "
                f"declares: {', '.join(sorted(unknown))}"
            )
        self._broker = broker
        broker.declare_actor(self)

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Check the arguments, send a message and return its :class:`~geotasks.Job`.

        Raises:
          InputError: naming an argument that is unknown, missing, surplus or of the wrong
            type; nothing is sent.
          ConfigurationError: when no broker is configured.
        """
        return self.submit_with_options(args=args, kwargs=kwargs)

    #: Celery's name for :meth:`submit`, for code ported from ``task.delay(...)``.
    delay = submit

    def submit_with_options(
        self,
        *,
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
        delay: int | None = None,
        **options: Any,
    ) -> Job:
        """:meth:`submit` with message options (Dramatiq's ``send_with_options``).

        Parameters:
          args: Positional arguments of the actor.
          kwargs: Keyword arguments of the actor.
          delay: Run no earlier than this many milliseconds from now.
          **options: Message options (``result_ttl`` in ms, ``rate_limit`` lower than the
            actor's…), only those the broker's middleware declare.

        Raises:
          InputError: as :meth:`submit`, or for an unknown option.
        """
        from .jobs import Job, check_message_options, outcome_mark

        json_args, json_kwargs = checked_arguments(self.spec, args, kwargs or {})
        broker = self.broker
        check_message_options(broker, self.actor_name, options)
        mark = outcome_mark()
        message = self.send_with_options(
            args=tuple(json_args), kwargs=json_kwargs, delay=delay, **options
        )
        return Job.from_message(message, sent_mark=mark)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the function; in a worker, run the message the worker is processing."""
        message = CurrentMessage.get_current_message()
        if message is None or message.actor_name != self.actor_name or _RUNNING_MESSAGE.get():
            return self.fn(*args, **kwargs)
        token = _RUNNING_MESSAGE.set(True)
        try:
            # What is stored may differ from what the function returned (GeoJSON for geometries).
            return typing.cast(R, self._run_message(args, kwargs))
        finally:
            _RUNNING_MESSAGE.reset(token)

    def _run_message(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        arguments = self.spec.check(args, kwargs)
        for name, convert in self._converters.items():
            if name in arguments:
                arguments[name] = convert(arguments[name])
        bound = self._signature.bind_partial(**arguments)
        value = self.fn(*bound.args, **bound.kwargs)
        return storable(value, self.actor_name)

    def __repr__(self) -> str:
        return f"geotasks.Actor({self.actor_name!r}, queue_name={self.queue_name!r})"


def storable(value: Any, actor_name: str) -> Any:
    """What the results middleware stores for ``value``: JSON as it is, geometries as GeoJSON.

    Raises:
      ResultNotStorable: naming the type, when the value is neither (the job fails at once).
    """
    if value is None or isinstance(value, str | int):  # bool is an int; a float may be NaN
        return value
    from .datasets import geo_limits
    from .geo.conversion import to_result

    settings = get_settings()
    try:
        converted = to_result(value, tmp_dir=settings.tmp_dir, limits=geo_limits(settings))
    except ResultNotStorable as exc:
        raise ResultNotStorable(f"{actor_name} returned {exc}") from None
    return value if converted is None else converted


@overload
def actor(fn: Callable[P, R], /) -> Actor[P, R]: ...


@overload
def actor(
    fn: None = None,
    /,
    *,
    actor_name: str | None = None,
    queue_name: str = DEFAULT_QUEUE,
    priority: int = 0,
    broker: dramatiq.Broker | None = None,
    public: bool = True,
    every: timedelta | int | None = None,
    cron: str | None = None,
    **options: Any,
) -> Callable[[Callable[P, R]], Actor[P, R]]: ...


def actor(
    fn: Callable[P, R] | None = None,
    /,
    *,
    actor_name: str | None = None,
    queue_name: str = DEFAULT_QUEUE,
    priority: int = 0,
    broker: dramatiq.Broker | None = None,
    public: bool = True,
    every: timedelta | int | None = None,
    cron: str | None = None,
    **options: Any,
) -> Actor[P, R] | Callable[[Callable[P, R]], Actor[P, R]]:
    """Declare a function as a geotasks actor; works bare (``@geotasks.actor``) or with options.

    Parameters:
      fn: The function (when used bare).
      actor_name: The actor's name, a public API once released; the function's name by default.
      queue_name: The queue its messages go to.
      priority: Dramatiq's priority (lower runs first where the broker supports it).
      broker: A broker to declare it on at once (tests); by default geotasks' broker, built from
        the settings when first needed.
      public: Whether workers publish it to the catalogue, so that ``geotasks.submit``, the CLI
        and the HTTP API offer it by name.
      every: Run it periodically, every so many seconds (a number or a ``timedelta``, 1 s at
        least), at the multiples of that period since the Unix epoch (every 30 s: at :00 and
        :30), once per slot however many schedulers run (``geotasks scheduler``,
        ``geotasks worker --scheduler``).
      cron: Run it periodically by a five-field cron spec read in UTC (``"*/5 * * * *"``).
        A periodic actor also takes ``skip_late_s`` (a tick starting later than this after its
        slot is skipped; ``GEOTASKS_PERIODIC_SKIP_DELAY_S`` by default) and ``overlap`` (run a
        slot even while the previous slot's job runs; ``False`` by default). It learns its slot
        from :func:`geotasks.current_slot`.
      **options: Any option the middleware declare, with Dramatiq's meaning and units:
        ``rate_limit`` (``"4/m"``, global across workers), ``rate_limit_burst``,
        ``concurrency_limit``, ``time_limit`` (ms), ``max_retries`` (of transient errors),
        ``result_ttl`` (ms), ``throws`` (more permanent errors), ``store_results``…

    Returns:
      An :class:`Actor`, callable as the function is.

    Raises:
      TypeError: when a parameter's type has no JSON form, or a periodic actor needs arguments.
      ValueError: when an option is unknown, the queue name is malformed, the name is taken,
        or a schedule is malformed (naming the cron field).
    """

    def decorator(function: Callable[P, R]) -> Actor[P, R]:
        name = actor_name or function.__name__
        if not _QUEUE_NAME.fullmatch(queue_name):
            raise ValueError(f"Queue names must match the regex {_QUEUE_NAME.pattern!r}.")
        known = broker.actor_options if broker is not None else known_actor_options()
        unknown = set(options) - known
        if unknown:
            raise ValueError(
                f"The following actor options are undefined: {', '.join(sorted(unknown))}. "
                "Did you forget to add a middleware to your Broker?"
            )
        periodic = _periodic_options(function, every, cron, options)
        described = describe(function, owner=name)
        spec = ActorSpec(
            name=name,
            queue_name=queue_name,
            parameters=described.parameters,
            description=described.description,
            result_media_type=_result_media_type(function),
            options=MappingProxyType(
                {key: options[key] for key in PUBLIC_OPTIONS if key in options}
                | ({"schedule": str(periodic["schedule"])} if periodic else {})
            ),
        )
        return Actor(
            function,
            spec=spec,
            options=_with_defaults({**options, **periodic}),
            converters=described.converters,
            priority=priority,
            broker=broker,
            public=public,
        )

    return decorator(fn) if fn is not None else decorator


def _periodic_options(
    function: Callable[..., Any],
    every: timedelta | int | None,
    cron: str | None,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """What the periodic middleware needs of ``every=`` or ``cron=``: the ``schedule``, and for a
    cron spec periodiq's ``periodic``, so that periodiq's own scheduler command sends it too.

    Raises:
      ValueError: when the schedule is malformed or both are given, or a periodic option is set
        on an actor that is not periodic.
      TypeError: when the function cannot be called without arguments (a tick sends none).
    """
    if "periodic" in options or "schedule" in options:
        raise ValueError("declare a schedule with every= or cron=")
    if every is None and cron is None:
        stray = sorted(PERIODIC_OPTIONS & options.keys())
        if stray:
            raise ValueError(f"{', '.join(stray)} apply to periodic actors only (every=, cron=)")
        return {}
    if every is not None and cron is not None:
        raise ValueError("a periodic actor takes every= or cron=, not both")
    skip_late_s = options.get("skip_late_s", 0)
    if isinstance(skip_late_s, bool) or not isinstance(skip_late_s, int | float) or skip_late_s < 0:
        raise ValueError(f"skip_late_s must be a number of seconds >= 0, not {skip_late_s!r}")
    required = [
        parameter.name
        for parameter in inspect.signature(function).parameters.values()
        if parameter.default is parameter.empty
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]
    if required:
        raise TypeError(
            f"{function.__name__} is periodic, so its ticks are sent with no arguments, but it "
            f"requires {', '.join(required)}: give them defaults"
        )
    if every is not None:
        return {"schedule": parse_every(every)}
    schedule = parse_cron(cron or "")
    return {"schedule": schedule, "periodic": schedule.periodiq_spec}


def _with_defaults(options: Mapping[str, Any]) -> dict[str, Any]:
    """The actor's options over geotasks' defaults: results kept, bad input fails once, only
    transient errors retried."""
    declared = dict(options)
    throws = declared.pop("throws", ())
    throws = throws if isinstance(throws, tuple) else (throws,)
    merged = {"store_results": True, **retry_options(declared.get("max_retries")), **declared}
    merged["throws"] = (InputError, ResultNotStorable, *throws)
    return merged


def _result_media_type(function: Callable[..., Any]) -> str:
    """What the return annotation suggests the result is (the value returned decides)."""
    try:
        annotation = typing.get_type_hints(function).get("return")
    except (NameError, TypeError):  # an unresolvable hint says nothing about the result
        return JSON_MEDIA_TYPE
    return GEOJSON_MEDIA_TYPE if _mentions_geometry(annotation) else JSON_MEDIA_TYPE


def _mentions_geometry(annotation: Any) -> bool:
    if isinstance(annotation, type):
        module = annotation.__module__
        if module.startswith(("shapely", "geopandas", "fiona")):
            return True
        if annotation.__name__ in ("GeoJSONResult", "Feature") and module.startswith("geotasks"):
            return True
    return any(_mentions_geometry(argument) for argument in typing.get_args(annotation))
