"""Run each tick of a periodic actor once, however many periodiq schedulers sent it.

periodiq has no guard against two schedulers (two hosts, or an old and a new one overlapping
during a restart): each sends its own message for every tick, under its own message id. This
middleware normalises the ``scheduled_at`` stamp periodiq puts on the message to the tick's cron
slot in UTC, records ``(actor, slot)`` in Postgres the first time a message for it is processed,
and skips every other message for the same slot. A redelivery of the message that owns the slot
(its worker died) is not a second copy and runs again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Protocol

import periodiq
from dramatiq.broker import Broker, MessageProxy
from dramatiq.middleware import Middleware, SkipMessage

from ..errors import DatabaseError
from ..postgres.periodic import TickStore
from ..postgres.pool import Database

logger = logging.getLogger(__name__)

#: A stamp at most this many seconds before a minute in which the schedule has a slot belongs to
#: that slot (a scheduler whose clock runs a little ahead, or that woke just before the minute).
#: Any later stamp belongs to its own minute: together the two cover 60 s, so a stamp more than
#: ``60 - EARLY_TOLERANCE_S`` seconds late for an every-minute schedule counts as the next tick.
EARLY_TOLERANCE_S = 10.0


#: Each field of a cron spec, with its bounds (day of week: 0 and 7 are both Sunday).
CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)


class Schedule(Protocol):
    """What a periodiq ``cron()`` spec offers: whether a wall-clock minute is one of its slots."""

    def validate(self, date: datetime) -> bool:
        """Whether ``date`` falls in a minute the schedule runs at."""


def parse_schedule(spec: str) -> Schedule:
    """Parse a cron spec for an actor's ``periodic=`` option, refusing what would never run.

    periodiq 0.14 accepts values out of range (minute ``61``) and extra fields, and a schedule
    that names Sunday as ``0`` or ``sun`` never runs on Sundays (its ``validate`` counts days
    1 to 7, its ``next_valid_date`` 0 to 6). The first two are errors here; the returned spec
    names Sunday both ways, so it does run on Sundays.

    Parameters:
      spec: Five fields (``minute hour day-of-month month day-of-week``) or a name such as
        ``@hourly``; times are the scheduler's local time.

    Returns:
      periodiq's ``CronSpec``, ready for ``periodic=``.

    Raises:
      ValueError: naming what is wrong with ``spec``.
    """
    text = " ".join(spec.split())
    if not text.startswith("@") and len(text.split()) != len(CRON_FIELDS):
        raise ValueError(
            f"{spec!r} is not a cron spec: it needs {len(CRON_FIELDS)} fields "
            "(minute hour day-of-month month day-of-week) or a name such as @hourly"
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
    schedule: Schedule = parsed
    return schedule


def cron_slot(
    scheduled_at: datetime,
    schedule: Schedule,
    *,
    early_tolerance_s: float = EARLY_TOLERANCE_S,
) -> datetime:
    """Return the cron slot, in UTC, of a tick that periodiq stamped ``scheduled_at``.

    periodiq stamps the scheduler's local time, rounded to the second, when it wakes up for a
    slot: normally within a second after the slot, later when it is busy, and it only sends
    in a minute its schedule matches. Two schedulers stamp the same tick differently (another
    time zone, another wake-up, a clock slightly ahead); this maps each stamp to the minute it
    belongs to: the next minute when the stamp is at most ``early_tolerance_s`` before it and
    the schedule has a slot there, otherwise the stamp's own minute. The schedule is read on the
    wall clock of the stamp's UTC offset, as the scheduler read it.

    Parameters:
      scheduled_at: periodiq's stamp, timezone-aware.
      schedule: The actor's ``periodic`` option (a periodiq ``cron()`` spec).
      early_tolerance_s: How far before a slot a stamp still belongs to that slot.

    Returns:
      The start of the slot's minute, in UTC.

    Raises:
      ValueError: when ``scheduled_at`` is naive.
    """
    offset = scheduled_at.utcoffset()
    if offset is None:
        raise ValueError(f"scheduled_at must be timezone-aware, not {scheduled_at!r}")
    # A plain datetime at a fixed offset keeps the arithmetic below in absolute time on the
    # scheduler's wall clock, even for a zone with DST transitions or a pendulum datetime.
    stamp = datetime.fromtimestamp(scheduled_at.timestamp(), timezone(offset))
    minute = stamp.replace(second=0, microsecond=0)
    next_minute = minute + timedelta(minutes=1)
    if stamp + timedelta(seconds=early_tolerance_s) >= next_minute and schedule.validate(
        next_minute
    ):
        minute = next_minute
    return minute.astimezone(UTC)


def parse_scheduled_at(value: object) -> datetime | None:
    """Return periodiq's ``scheduled_at`` option as an aware datetime, or ``None`` if malformed.

    periodiq writes ``str()`` of a pendulum datetime: ISO 8601 with a space or a ``T`` and a
    UTC offset (``2024-03-31 03:00:00+02:00``).
    """
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


class PeriodicDeduplication(Middleware):
    """Skip every message of a periodic tick but the first one processed.

    Only messages that periodiq's scheduler sent are de-duplicated (they carry the
    ``scheduled_at`` option); a periodic actor sent by hand runs every time. Place it after
    periodiq's ``PeriodiqMiddleware``, so that a copy skipped for being late does not claim a
    tick that an on-time copy from another scheduler could still run.

    When Postgres cannot be reached the message runs: maintenance is idempotent, and a
    schedule that silently stopped would be worse than a tick that ran twice.

    Parameters:
      database: Where the ticks are recorded.
      early_tolerance_s: How far before a slot a stamp still belongs to that slot.
    """

    def __init__(self, database: Database, *, early_tolerance_s: float = EARLY_TOLERANCE_S) -> None:
        self.ticks = TickStore(database)
        self.early_tolerance_s = early_tolerance_s

    def holds_back(self, broker: Broker, message: MessageProxy) -> bool:
        """Whether ``message`` is a tick of a periodic actor (a duplicate of it is skipped)."""
        return "scheduled_at" in message.options

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        """Claim the message's tick, or raise :class:`SkipMessage` if another message owns it."""
        raw_stamp = message.options.get("scheduled_at")
        if raw_stamp is None:
            return
        schedule = broker.get_actor(message.actor_name).options.get("periodic")
        if schedule is None:
            return
        scheduled_at = parse_scheduled_at(raw_stamp)
        if scheduled_at is None:
            logger.warning(
                "Message %s of %s has a malformed scheduled_at %r; running it without "
                "de-duplication.",
                message.message_id,
                message.actor_name,
                raw_stamp,
            )
            return
        slot = cron_slot(scheduled_at, schedule, early_tolerance_s=self.early_tolerance_s)
        try:
            deliveries = self.ticks.claim(message.actor_name, slot, message.message_id)
        except DatabaseError as exc:
            logger.warning(
                "Cannot record tick %s of %s for message %s; running it without de-duplication: %s",
                slot.isoformat(),
                message.actor_name,
                message.message_id,
                exc,
            )
            return
        if deliveries is None:
            logger.info(
                "Skipping message %s: tick %s of %s already ran as another message "
                "(a second scheduler sent it).",
                message.message_id,
                slot.isoformat(),
                message.actor_name,
            )
            raise SkipMessage(f"tick {slot.isoformat()} of {message.actor_name} already ran")
        if deliveries > 1:
            logger.info(
                "Message %s redelivered (delivery %d) for tick %s of %s; running it again.",
                message.message_id,
                deliveries,
                slot.isoformat(),
                message.actor_name,
            )
