"""``geotasks schedules`` and ``geotasks health``: what an operator checks first."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from ..settings import get_settings

if TYPE_CHECKING:
    pass

from .databases import database_url
from .dead_letters import utc


def cmd_schedules(args: argparse.Namespace) -> int:
    """List the periodic actors: schedule, next slot, and the last slot's job, status and
    lateness."""
    from ..monitoring.schedules import read_schedules
    from ..postgres.pool import get_database

    settings = get_settings()
    with database_url(settings) as url:
        schedules = read_schedules(get_database(url), get_settings())
    if args.json:
        print(json.dumps([s.to_dict() for s in schedules], indent=2))
        return 0
    if not schedules:
        print("no periodic actor: no scheduler runs and no tick ran")
    for s in schedules:
        print(f"{s.actor_name}  ({s.cron or 'no scheduler sends it'})")
        print(f"    next slot  {utc(s.next_slot) if s.next_slot else '-'}", end="")
        print(f"  (overdue by {s.lateness_s:.0f} s)" if s.late else "")
        if s.last_slot is not None:
            lateness = s.last_start_lateness_s
            started = "" if lateness is None else f", started {lateness:.2f} s after its slot"
            print(
                f"    last slot  {utc(s.last_slot)}: job {s.last_message_id} "
                f"{s.last_status or 'UNKNOWN'}{started}"
            )
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """Check Postgres, the schema, the broker, the workers and the schedules (exit 1 if unwell)."""
    from ..monitoring.health import check_health

    report = check_health(get_settings(), require_scheduler=args.require_scheduler)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("\n".join(report.lines()))
    return 0 if report.healthy else 1
