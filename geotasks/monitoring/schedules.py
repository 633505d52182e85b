"""Each periodic actor's schedule, next slot, last tick and lateness: what ``geotasks schedules``,
``GET /schedules``, the dashboard, the metrics and ``geotasks health`` show.

A schedule is known from the alive schedulers that registered it (:mod:`geotasks.scheduler`,
``every 30s`` or a cron spec in UTC) and from the ticks workers claimed
(``geotasks.periodic_tick``). A schedule is *late* when its next slot after the last tick that
ran (or after its oldest scheduler started: missed slots are never replayed) is further in the
past than the grace period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..postgres.overview import SystemState, read_state
from ..postgres.pool import Database
from ..postgres.workers import ScheduleSpec
from ..schedule import parse_schedule
from ..settings import Settings


@dataclass(frozen=True)
class ScheduleState:
    """One periodic actor's schedule, as of the state's ``now``.

    Attributes:
      cron: Its schedule as a scheduler sends it, ``every 30s`` or a cron spec in UTC (``None``:
        no alive scheduler sends it).
      last_slot: The latest tick a worker ran, in UTC.
      last_status: That tick's job status.
      last_message_id: That tick's job id.
      last_start_lateness_s: How long after its slot that tick started.
      next_slot: The slot due after ``last_slot`` (or after the scheduler started), in UTC.
      lateness_s: How long ``next_slot`` has been due without a tick running; 0 if not yet due.
      late: ``lateness_s`` is past the grace period while a scheduler sends the schedule.
    """

    actor_name: str
    cron: str | None
    last_slot: datetime | None
    last_status: str | None
    last_message_id: str | None
    last_start_lateness_s: float | None
    next_slot: datetime | None
    lateness_s: float
    late: bool

    def to_dict(self) -> dict[str, Any]:
        """The schedule as JSON (``GET /schedules``, ``geotasks schedules --json``)."""
        return {
            "actor": self.actor_name,
            "schedule": self.cron,
            "next_slot": _iso(self.next_slot),
            "last_slot": _iso(self.last_slot),
            "last_job_id": self.last_message_id,
            "last_status": self.last_status,
            "last_start_lateness_s": self.last_start_lateness_s,
            "overdue_s": self.lateness_s,
            "late": self.late,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def next_slot_after(spec: ScheduleSpec, after: datetime) -> datetime | None:
    """Return the first slot of ``spec`` after ``after``, in UTC (``None``: none within years)."""
    try:
        return parse_schedule(spec.cron).next_slot(after)
    except ValueError:
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
                last_start_lateness_s=None if tick is None else tick.start_lateness_s,
                next_slot=next_slot,
                lateness_s=lateness_s,
                late=lateness_s > grace_s,
            )
        )
    return states


def read_schedules(database: Database, settings: Settings) -> list[ScheduleState]:
    """Read every periodic actor's :class:`ScheduleState` from Postgres, by name.

    Raises:
      DatabaseUnavailable: when Postgres cannot be reached.
    """
    state = read_state(database, settings.broker_heartbeat_timeout_s)
    return schedule_states(state, settings.periodic_skip_delay_s)
