"""When a periodic actor runs: every N seconds or by cron, as slots in UTC.

This module is the schedules' vocabulary and imports nothing else from geotasks: the declaration
(``@geotasks.actor(every=30)``, ``cron="*/5 * * * *"``), the scheduler that sends the ticks, the
middleware that runs each slot once and the monitoring views all speak it.

- **Intervals** (:class:`Every`): the slots of ``every=N`` are the multiples of N seconds since
  the Unix epoch, so every 30 s means :00 and :30 on every host, whatever its time zone or the
  moment its scheduler started, and a slot never drifts.
- **Cron specs** (:class:`Cron`): five fields with periodiq's rules (periodiq is the cron engine),
  read in UTC, so that schedulers in different time zones agree on every slot and daylight saving
  time never adds or removes one. A spec periodiq would misread is refused, naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pendulum
import periodiq

#: The shortest interval, in seconds.
MIN_PERIOD_S = 1

#: A cron spec's fields, with their bounds (day of week: 0 and 7 are both Sunday).
CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)

#: A stamp at most this many seconds before a minute in which a cron schedule has a slot
#: belongs to that slot (periodiq's own scheduler on a clock a little ahead). Any later stamp
#: belongs to its own minute.
EARLY_TOLERANCE_S = 10.0

#: How far ahead a cron slot is looked for (four years: 29 February).
_CRON_HORIZON = timedelta(days=4 * 366)

_EVERY_PREFIX = "every "
#: A spec is refused if it has no slot within four years of this (``0 0 30 2 *``).
_ANY_LEAP_YEAR_START = datetime(2024, 1, 1, tzinfo=UTC)


class Schedule(Protocol):
    """A periodic actor's schedule: its slots, as aware datetimes in UTC."""

    def next_slot(self, after: datetime) -> datetime:
        """The first slot strictly after ``after``."""

    def slot_of(self, scheduled_at: datetime) -> datetime:
        """The slot a tick stamped ``scheduled_at`` by a scheduler belongs to."""

    def __str__(self) -> str:
        """The spec as it is declared and listed (``every 30s``, ``*/5 * * * *``)."""


def _require_aware(value: datetime) -> None:
    if value.utcoffset() is None:
        raise ValueError(f"a schedule needs a timezone-aware datetime, not {value!r}")


@dataclass(frozen=True)
class Every:
    """Every ``period_s`` seconds, at the multiples of ``period_s`` since the Unix epoch."""

    period_s: int

    def __post_init__(self) -> None:
        if self.period_s < MIN_PERIOD_S:
            raise ValueError(f"every= must be at least {MIN_PERIOD_S} s, not {self.period_s} s")

    def next_slot(self, after: datetime) -> datetime:
        """The first multiple of the period strictly after ``after``."""
        _require_aware(after)
        index = math.floor(after.timestamp() / self.period_s) + 1
        return datetime.fromtimestamp(index * self.period_s, UTC)

    def slot_of(self, scheduled_at: datetime) -> datetime:
        """The slot at or before ``scheduled_at`` (geotasks' scheduler stamps the slot itself)."""
        _require_aware(scheduled_at)
        index = math.floor(scheduled_at.timestamp() / self.period_s)
        return datetime.fromtimestamp(index * self.period_s, UTC)

    def __str__(self) -> str:
        return f"{_EVERY_PREFIX}{self.period_s}s"


@dataclass(frozen=True)
class Cron:
    """A five-field cron spec read in UTC, with periodiq's rules (see :func:`parse_cron`).

    Attributes:
      spec: The spec as written, whitespace normalised.
      periodiq_spec: periodiq's parsed ``CronSpec``, Sunday fixed; periodiq's own scheduler
        command reads it as the actor's ``periodic`` option.
    """

    spec: str
    periodiq_spec: periodiq.CronSpec = field(compare=False, repr=False)

    def matches(self, minute: datetime) -> bool:
        """Whether the UTC minute of ``minute`` is one of the schedule's."""
        _require_aware(minute)
        return bool(self.periodiq_spec.validate(minute.astimezone(UTC)))

    def next_slot(self, after: datetime) -> datetime:
        """The first matching UTC minute strictly after ``after``.

        Raises:
          ValueError: when no minute matches within four years (``0 0 30 2 *``).
        """
        _require_aware(after)
        horizon = after + _CRON_HORIZON
        candidate = pendulum.instance(after.astimezone(UTC))
        while candidate <= horizon:
            # periodiq's jump is fast but not exact for every spec: check each answer.
            candidate = self.periodiq_spec.next_valid_date(candidate)
            slot = datetime.fromtimestamp(candidate.timestamp(), UTC)
            if slot > after and self.matches(slot):
                return slot
        raise ValueError(f"{self.spec!r} has no slot within four years")

    def slot_of(self, scheduled_at: datetime) -> datetime:
        """The UTC minute a tick stamped ``scheduled_at`` belongs to.

        periodiq's scheduler stamps its local time rounded to the second when it wakes for a
        slot: normally within a second after the slot, later when busy, a few seconds early on a
        clock that runs ahead. A stamp at most :data:`EARLY_TOLERANCE_S` before a minute that
        matches belongs to that minute; any other stamp to its own minute.
        """
        _require_aware(scheduled_at)
        stamp = datetime.fromtimestamp(scheduled_at.timestamp(), UTC)
        minute = stamp.replace(second=0, microsecond=0)
        next_minute = minute + timedelta(minutes=1)
        if stamp + timedelta(seconds=EARLY_TOLERANCE_S) >= next_minute and self.matches(
            next_minute
        ):
            return next_minute
        return minute

    def __str__(self) -> str:
        return self.spec


def parse_every(value: timedelta | int) -> Every:
    """Parse an actor's ``every=``: a :class:`~datetime.timedelta` or a number of seconds.

    Raises:
      ValueError: when it is not a whole number of seconds, or shorter than
        :data:`MIN_PERIOD_S`.
      TypeError: when it is neither a timedelta nor a number.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"every= takes a timedelta or a number of seconds, not {value!r}")
    if not seconds.is_integer():
        raise ValueError(f"every= must be a whole number of seconds, not {seconds} s")
    return Every(int(seconds))


def parse_cron(spec: str) -> Cron:
    """Parse a cron spec, refusing what periodiq would misread.

    periodiq 0.14 reads a sixth field as nothing (``*/30 * * * * *`` silently runs every 30
    *minutes*), accepts values out of range (minute ``61``) and, given Sunday as ``0`` or
    ``sun``, never runs on Sundays (its ``validate`` counts days 1 to 7, its
    ``next_valid_date`` 0 to 6). The first two are refused here, naming the field; Sunday is
    named both ways, so it does run on Sundays.

    Parameters:
      spec: Five fields (``minute hour day-of-month month day-of-week``, in UTC) or a name
        such as ``@hourly``.

    Raises:
      ValueError: naming what is wrong with ``spec``, or when it never runs.
    """
    text = " ".join(spec.split())
    fields = text.split()
    if not text.startswith("@") and len(fields) != len(CRON_FIELDS):
        hint = (
            " (seconds are not a cron field: use every= for intervals)" if len(fields) > 5 else ""
        )
        raise ValueError(
            f"{spec!r} has {len(fields)} fields; a cron spec needs {len(CRON_FIELDS)} "
            f"(minute hour day-of-month month day-of-week){hint}"
        )
    try:
        parsed = periodiq.cron(text)
    except (ValueError, IndexError, KeyError):
        raise ValueError(f"{spec!r} is not a cron spec periodiq understands") from None
    for (name, low, high), values in zip(CRON_FIELDS, parsed.astuple(), strict=True):
        if not low <= values[0] <= values[-1] <= high:
            raise ValueError(f"{spec!r}: the {name} must be within {low}-{high}")
    days = set(parsed.dow)
    if days & {0, 7}:
        parsed = parsed.replace(dow=sorted(days | {0, 7}))
    schedule = Cron(text, parsed)
    schedule.next_slot(_ANY_LEAP_YEAR_START)
    return schedule


def parse_schedule(text: str) -> Every | Cron:
    """Parse a schedule as :class:`Every` and :class:`Cron` print it (``every 30s`` or cron).

    Raises:
      ValueError: when it is neither.
    """
    if text.startswith(_EVERY_PREFIX) and text.endswith("s"):
        seconds = text[len(_EVERY_PREFIX) : -1]
        if seconds.isdigit():
            return Every(int(seconds))
    return parse_cron(text)
