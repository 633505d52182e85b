"""Run each slot of a periodic actor once, on time, and never on top of the previous one.

Any number of schedulers may run (one beside every worker is the highly available set-up): each
sends its own message for every slot, under its own message id. This middleware maps the
``scheduled_at`` stamp of a message to the slot in UTC (:mod:`geotasks.schedule`) and, before the
actor runs:

- skips a tick that starts more than the actor's ``skip_late_s`` after its slot (after an outage
  stale ticks do not all run at once);
- records ``(actor, slot)`` in Postgres the first time a message for it is processed, and skips
  every other message for the same slot; a redelivery of the message that owns the slot (its
  worker died) is not a second copy and runs again;
- unless the actor declares ``overlap=True``, skips a slot while the job of the actor's previous
  slot has not finished (a long job does not pile up), and a slot older than one that already ran.

Each skipped job reads SKIPPED with the reason. While the actor runs, :func:`current_slot` tells
it which slot it runs for.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from dramatiq.broker import Broker, MessageProxy
from dramatiq.errors import ActorNotFound
from dramatiq.middleware import Middleware, SkipMessage

from ..errors import DatabaseError
from ..postgres.periodic import Claim, TickStore
from ..postgres.pool import Database
from ..schedule import Cron, Schedule, parse_cron
from .job_status import mark_skipped

logger = logging.getLogger(__name__)

#: The slot the message this thread runs was sent for.
_current_slot: contextvars.ContextVar[datetime | None] = contextvars.ContextVar(
    "geotasks_current_slot", default=None
)


def current_slot() -> datetime | None:
    """Return the slot (in UTC) that the running periodic actor was sent for.

    A periodic actor calls it to learn which run this is (the slot is not a parameter, so it
    never shows in the actor's inputs): for ``every=30``, the :00 or :30 the tick belongs to,
    however late it started.

    Returns:
      The slot, or ``None`` outside a scheduled run (a direct call, a job sent by hand).
    """
    return _current_slot.get()


def actor_schedule(options: Mapping[str, Any]) -> Schedule | None:
    """Return the schedule of an actor with ``options``, or ``None`` if it is not periodic.

    ``@geotasks.actor(every=…, cron=…)`` sets ``schedule``; a plain ``@dramatiq.actor`` with
    periodiq's ``periodic=cron(…)`` is read as that cron spec.
    """
    schedule: Schedule | None = options.get("schedule")
    if schedule is None and options.get("periodic") is not None:
        schedule = parse_cron(str(options["periodic"]))
    return schedule


def parse_scheduled_at(value: object) -> datetime | None:
    """Return a message's ``scheduled_at`` option as an aware datetime, or ``None`` if malformed.

    geotasks' scheduler writes the slot in ISO 8601 (UTC); periodiq's writes ``str()`` of a
    pendulum datetime, with a space and a UTC offset (``2024-03-31 03:00:00+02:00``).
    """
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


class PeriodicDeduplication(Middleware):
    """Skip late, duplicate and overlapping ticks of periodic actors, saying why.

    Only messages a scheduler sent are concerned (they carry the ``scheduled_at`` option); a
    periodic actor sent by hand runs every time. When Postgres cannot be reached the tick runs:
    a schedule that silently stopped would be worse than a tick that ran twice.

    Parameters:
      database: Where the ticks are recorded.
      skip_late_s: How late after its slot a tick may start, unless the actor says otherwise
        (``GEOTASKS_PERIODIC_SKIP_DELAY_S``).
    """

    #: ``schedule`` (set by ``every=``/``cron=``), periodiq's ``periodic`` (kept for periodiq's
    #: own scheduler command), ``skip_late_s`` and ``overlap``.
    actor_options: ClassVar[set[str]] = {"schedule", "periodic", "skip_late_s", "overlap"}

    def __init__(self, database: Database, *, skip_late_s: float) -> None:
        self.ticks = TickStore(database)
        self.skip_late_s = skip_late_s

    def holds_back(self, broker: Broker, message: MessageProxy) -> bool:
        """Whether ``message`` is a tick of a periodic actor (it may be skipped)."""
        return "scheduled_at" in message.options

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        """Claim the message's slot, or raise :class:`SkipMessage` saying why it does not run."""
        _current_slot.set(None)
        raw_stamp = message.options.get("scheduled_at")
        if raw_stamp is None:
            return
        try:
            options = broker.get_actor(message.actor_name).options
        except ActorNotFound:
            return
        schedule = actor_schedule(options)
        if schedule is None:
            return
        scheduled_at = parse_scheduled_at(raw_stamp)
        if scheduled_at is None:
            logger.warning(
                "Message %s of %s has a malformed scheduled_at %r; running it as sent by hand.",
                message.message_id,
                message.actor_name,
                raw_stamp,
            )
            return
        slot = schedule.slot_of(scheduled_at)
        if isinstance(schedule, Cron) and not schedule.matches(slot):
            self._skip(
                message,
                f"{scheduled_at.isoformat()} is not a slot of {schedule} in UTC (a scheduler "
                "reading the spec in another time zone sent it: run periodiq with TZ=UTC)",
            )
        late_s = time.time() - slot.timestamp()
        skip_late_s = float(
            message.options.get("skip_late_s", options.get("skip_late_s", self.skip_late_s))
        )
        if late_s > skip_late_s:
            self._skip(
                message,
                f"slot {slot.isoformat()} started {late_s:.1f} s late, more than "
                f"skip_late_s={skip_late_s:g}",
            )
        try:
            claim = self.ticks.claim(
                message.actor_name, slot, message.message_id, overlap=bool(options.get("overlap"))
            )
        except DatabaseError as exc:
            logger.warning(
                "Cannot record slot %s of %s for message %s; running it without de-duplication: %s",
                slot.isoformat(),
                message.actor_name,
                message.message_id,
                exc,
            )
        else:
            self._check_claim(message, slot, claim)
        _current_slot.set(slot)

    def _check_claim(self, message: MessageProxy, slot: datetime, claim: Claim) -> None:
        if claim.owner is not None:
            self._skip(
                message,
                f"slot {slot.isoformat()} already runs as job {claim.owner} (another "
                "scheduler sent it)",
            )
        blocked = claim.blocked_by
        if blocked is not None and blocked.slot > slot:
            self._skip(
                message,
                f"the later slot {blocked.slot.isoformat()} already started as job "
                f"{blocked.message_id}",
            )
        if blocked is not None:
            self._skip(
                message,
                f"the job {blocked.message_id} of the previous slot {blocked.slot.isoformat()} "
                f"is still {blocked.status} (declare the actor with overlap=True to allow this)",
            )
        if claim.deliveries is not None and claim.deliveries > 1:
            logger.info(
                "Message %s redelivered (delivery %d) for slot %s of %s; running it again.",
                message.message_id,
                claim.deliveries,
                slot.isoformat(),
                message.actor_name,
            )

    def _skip(self, message: MessageProxy, reason: str) -> None:
        logger.info("Skipping message %s of %s: %s", message.message_id, message.actor_name, reason)
        mark_skipped(message, reason)
        raise SkipMessage(reason)

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """Forget the slot: the thread's next message may be another actor's."""
        _current_slot.set(None)

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        """Forget the slot."""
        _current_slot.set(None)
