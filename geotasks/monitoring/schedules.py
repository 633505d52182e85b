"""Each periodic actor's last tick, next slot and lateness, from the registry and the ticks.

Today a schedule is a periodiq ``cron`` spec that a scheduler registers
(:mod:`geotasks.scheduler`) and the ticks its workers claimed (``geotasks.periodic_tick``). A
schedule is *late* when its next slot after the last tick that ran (or after the scheduler
started, since periodiq never catches up) is further in the past than the grace period. The
schedules work (sub-minute intervals, its own table) extends :func:`schedule_states` with its
own rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from ..middleware.periodic import parse_schedule
from ..postgres.overview import SystemState
from ..postgres.workers import ScheduleSpec

#: How far ahead a next slot is looked for, in minutes: a schedule rarer than monthly reads
#: "no slot within 32 days".
NEXT_SLOT_HORIZON_MIN = 32 * 24 * 60


@dataclass(frozen=True)
class ScheduleState:
    """One periodic actor's schedule, as of the state's ``now``.

    Attributes:
      cron: Its cron spec in the scheduler's local time (``None``: no alive scheduler sends it).
      last_slot: The latest tick a worker ran, in UTC.
      last_status: That tick's job status.
      next_slot: The slot due after ``last_slot`` (or after the scheduler started), in UTC.
      lateness_s: How long ``next_slot`` has been due without a tick running; 0 if not yet due.
      late: ``lateness_s`` is past the grace period while a scheduler sends the schedule.
    """

    actor_name: str
    cron: str | None
    last_slot: datetime | None
    last_status: str | None
    last_message_id: str | None
    next_slot: datetime | None
    lateness_s: float
    late: bool


def next_slot_after(spec: ScheduleSpec, after: datetime) -> datetime | None:
    """Return the first slot of ``spec`` in a minute after ``after``'s, in UTC.

    The cron spec is read on the scheduler's wall clock (its UTC offset), as periodiq reads it.
    """
    schedule = parse_schedule(spec.cron)
    zone = timezone(timedelta(seconds=spec.utc_offset_s))
    minute = after.astimezone(zone).replace(second=0, microsecond=0)
    for _ in range(NEXT_SLOT_HORIZON_MIN):
        minute += timedelta(minutes=1)
        if schedule.validate(minute):
            return minute.astimezone(UTC)
    return None


def schedule_states(state: SystemState, grace_s: float) -> list[ScheduleState]:
    """Return every periodic actor known from alive schedulers or from ticks, by name.

    Parameters:
      state: The system's state.
      grace_s: How long a slot may be due before its schedule counts as late
        (``GEOTASKS_PERIODIC_SKIP_DELAY_S``: a tick later than that is skipped anyway).
    """
    specs: dict[str, ScheduleSpec] = {}
    sent_since: dict[str, datetime] = {}
    for process in state.workers:
        if process.role != "scheduler" or process.lost:
            continue
        for actor, sent in process.schedules.items():
            specs.setdefault(actor, sent)
            sent_since[actor] = min(sent_since.get(actor, process.started_at), process.started_at)
    ticks = {tick.actor_name: tick for tick in state.latest_ticks}
    states = []
    for actor in sorted(specs.keys() | ticks.keys()):
        tick = ticks.get(actor)
        spec = specs.get(actor)
        next_slot = None
        if spec is not None:
            since = sent_since[actor]
            if tick is not None and tick.slot > since:
                since = tick.slot
            next_slot = next_slot_after(spec, since)
        lateness_s = 0.0
        if next_slot is not None:
            lateness_s = max(0.0, (state.now - next_slot).total_seconds())
        states.append(
            ScheduleState(
                actor_name=actor,
                cron=None if spec is None else spec.cron,
                last_slot=None if tick is None else tick.slot,
                last_status=None if tick is None else tick.status,
                last_message_id=None if tick is None else tick.message_id,
                next_slot=next_slot,
                lateness_s=lateness_s,
                late=lateness_s > grace_s,
            )
        )
    return states
