"""The vocabulary of global rate limits: the ``"N/s|m|h|d"`` notation, the actor and message
options that set limits (:func:`parse_limits`), and what a backend does.

A backend is a Dramatiq :class:`~dramatiq.rate_limits.RateLimiterBackend` (so Dramatiq's own
``WindowRateLimiter``, ``ConcurrentRateLimiter``, ``Barrier`` and group callbacks run on it) that
can also *reserve* start slots and *lease* concurrency slots:

* :meth:`LimiterBackend.reserve` hands every caller its own start time, in one atomic step on the
  server: never more than ``limit`` starts in any window of ``period_ms``, spaced
  ``period_ms / limit`` apart unless ``burst`` lets up to ``burst`` of them start together. A
  sliding log of the most recent slots makes that exact (a token bucket would let a burst and the
  steady rate add up to more than ``limit`` in one window).
* :meth:`LimiterBackend.acquire_lease` counts running messages: a lease expires unless renewed,
  so one held by a killed worker frees itself.

Backends: :class:`geotasks.postgres.rate_limits.PostgresBackend` and
:class:`geotasks.redis.rate_limits.RedisBackend`; :func:`geotasks.broker.build_middleware` picks
one from settings. This module imports neither: it is the leaf both depend on.
"""

from __future__ import annotations

import re
from abc import ABCMeta, abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from dramatiq.rate_limits import RateLimiterBackend

from .errors import InvalidRateLimit

__all__ = [
    "PERIOD_MS",
    "Lease",
    "LimiterBackend",
    "Limits",
    "Rate",
    "Slot",
    "lower_limits",
    "parse_limits",
    "slots_kept",
    "spacing_ms",
]

#: Milliseconds in each period a rate may name.
PERIOD_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

#: A concurrency lease: ``(key, holder)``.
Lease = tuple[str, str]

_RATE = re.compile(r"^\s*([1-9]\d*)\s*/\s*([smhd])\s*$")


@dataclass(frozen=True)
class Rate:
    """At most ``limit`` starts in any window of ``period_ms``, up to ``burst`` at once.

    Parameters:
      limit: Starts allowed per period, at least 1.
      period_ms: The window, in milliseconds.
      burst: How many may start together; 1 (the default) spaces every start
        ``period_ms / limit`` apart, ``limit`` lets a whole period's worth start at once. Slots
        are whole milliseconds, so it is at least ``limit / period_ms`` (``"5000/s"``: 5).

    Raises:
      InvalidRateLimit: when a value is out of range.
    """

    limit: int
    period_ms: int
    burst: int = 1

    def __post_init__(self) -> None:
        for name in ("limit", "period_ms", "burst"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidRateLimit(f"{name} must be a whole number of at least 1: {value!r}")
        if self.burst > self.limit:
            raise InvalidRateLimit(f"burst={self.burst} exceeds the limit of {self.limit}")
        # Slots are whole milliseconds: more than one start per millisecond means starting
        # several together.
        object.__setattr__(self, "burst", max(self.burst, -(-self.limit // self.period_ms)))

    @classmethod
    def parse(cls, text: object, *, burst: object = 1) -> Rate:
        """Parse ``"N/s"``, ``"N/m"``, ``"N/h"`` or ``"N/d"`` (Celery's notation).

        Parameters:
          text: The rate, e.g. ``"4/m"``.
          burst: How many may start together (see the class).

        Raises:
          InvalidRateLimit: naming the value and the expected form.
        """
        match = _RATE.match(text) if isinstance(text, str) else None
        if match is None:
            raise InvalidRateLimit(
                f"rate_limit={text!r} is malformed: expected 'N/s', 'N/m', 'N/h' or 'N/d' "
                "with N a whole number of at least 1, e.g. '4/m'"
            )
        if not isinstance(burst, int) or isinstance(burst, bool):
            raise InvalidRateLimit(f"rate_limit_burst={burst!r} is not a whole number")
        return cls(int(match.group(1)), PERIOD_MS[match.group(2)], burst)

    def allows_more_than(self, other: Rate) -> bool:
        """Whether this rate lets more starts through, in the long run, than ``other``."""
        return self.limit * other.period_ms > other.limit * self.period_ms

    def __str__(self) -> str:
        units = {ms: unit for unit, ms in PERIOD_MS.items()}
        period = units.get(self.period_ms, f"{self.period_ms}ms")
        return f"{self.limit}/{period}" + (f" (burst {self.burst})" if self.burst > 1 else "")


@dataclass(frozen=True)
class Slot:
    """A reserved start time, in epoch milliseconds on the backend's clock."""

    #: When the caller may start.
    start_ms: int
    #: The backend's clock when the slot was handed out; compare with ``start_ms`` only, as the
    #: caller's own clock may differ from the server's.
    now_ms: int

    @property
    def wait_ms(self) -> int:
        """Milliseconds until the slot, 0 when it has come."""
        return max(0, self.start_ms - self.now_ms)


@dataclass(frozen=True)
class Limits:
    """The limits that apply to one message (``None``: no such limit)."""

    rate: Rate | None = None
    concurrency: int | None = None

    @property
    def any(self) -> bool:
        """Whether there is any limit at all."""
        return self.rate is not None or self.concurrency is not None


def parse_limits(options: Mapping[str, Any], *, owner: str) -> Limits:
    """Read ``rate_limit``, ``rate_limit_burst`` and ``concurrency_limit`` from options.

    Parameters:
      options: An actor's or a message's options.
      owner: What the options belong to, for the error message (``"actor 'x'"``).

    Raises:
      InvalidRateLimit: naming the owner, the option and what was expected.
    """
    rate_text = options.get("rate_limit")
    burst = options.get("rate_limit_burst")
    concurrency = options.get("concurrency_limit")
    try:
        if burst is not None and rate_text is None:
            raise InvalidRateLimit("rate_limit_burst needs a rate_limit")
        rate = (
            None
            if rate_text is None
            else Rate.parse(rate_text, burst=1 if burst is None else burst)
        )
        if concurrency is not None and (
            not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1
        ):
            raise InvalidRateLimit(
                f"concurrency_limit={concurrency!r} must be a whole number of at least 1"
            )
    except InvalidRateLimit as exc:
        raise InvalidRateLimit(f"{owner}: {exc}") from None
    return Limits(rate, concurrency)


def lower_limits(actor: Limits, message: Limits, *, owner: str) -> Limits:
    """Apply a message's limits on top of its actor's; they may only be stricter.

    Raises:
      InvalidRateLimit: when the message's limit would let more through than the actor's.
    """
    rate, concurrency = actor.rate, actor.concurrency
    if message.rate is not None:
        if rate is not None and (
            message.rate.allows_more_than(rate) or message.rate.burst > rate.burst
        ):
            raise InvalidRateLimit(
                f"{owner}: rate_limit {message.rate} would raise the actor's {rate}; "
                "a message may only lower it"
            )
        rate = message.rate
    if message.concurrency is not None:
        if concurrency is not None and message.concurrency > concurrency:
            raise InvalidRateLimit(
                f"{owner}: concurrency_limit={message.concurrency} would raise the actor's "
                f"{concurrency}; a message may only lower it"
            )
        concurrency = message.concurrency
    return Limits(rate, concurrency)


def spacing_ms(limit: int, period_ms: int, burst: int) -> int:
    """Milliseconds that a group of ``burst`` starts occupies (rounded up, never down)."""
    return -(-burst * period_ms // limit)


def slots_kept(limit: int, burst: int) -> int:
    """How many recent slots a sliding log must keep to enforce ``limit`` per period.

    When ``burst`` divides ``limit``, spacing each group of ``burst`` starts by
    ``burst * period / limit`` already bounds every window, so the last ``burst`` slots suffice;
    otherwise the ``limit``-th most recent slot is needed too.
    """
    return burst if limit % burst == 0 else limit


class LimiterBackend(RateLimiterBackend, metaclass=ABCMeta):
    """A Dramatiq rate-limiter backend that also reserves start slots and leases concurrency.

    Implementations raise :class:`~geotasks.errors.RateLimiterUnavailable` or
    :class:`~geotasks.errors.DatabaseUnavailable` (both transient) when the server is
    unreachable.
    """

    @abstractmethod
    def reserve(self, key: str, limit: int, period_ms: int, *, burst: int = 1) -> Slot:
        """Reserve the next start slot under ``key``, atomically on the server.

        Every caller gets its own slot: the earliest time at which starting keeps at most
        ``limit`` starts in any window of ``period_ms`` (counting every slot already handed out)
        and at most ``burst`` in any window of ``burst * period_ms / limit``. Slots never go
        backwards, so callers are served in order.

        Parameters:
          key: What is limited (an actor's name, say).
          limit: Starts per period.
          period_ms: The window, in milliseconds.
          burst: How many may start together.

        Returns:
          Slot: the start time and the server's clock.
        """

    @abstractmethod
    def now_ms(self) -> int:
        """Return the backend's clock, in epoch milliseconds (slots are on this clock)."""

    @abstractmethod
    def acquire_lease(self, key: str, holder: str, limit: int, ttl_ms: int) -> bool:
        """Take one of ``limit`` concurrency slots under ``key`` for ``holder``.

        Leases older than their ``ttl_ms`` do not count; a holder that already has a lease
        renews it.

        Returns:
          bool: whether the slot was taken.
        """

    @abstractmethod
    def release_lease(self, key: str, holder: str) -> None:
        """Give back ``holder``'s slot under ``key``; a no-op when it holds none."""

    @abstractmethod
    def renew_leases(self, leases: Collection[Lease], ttl_ms: int) -> set[Lease]:
        """Extend the given ``(key, holder)`` leases by ``ttl_ms`` from now.

        Returns:
          set: the leases that had already expired, and were not renewed.
        """
