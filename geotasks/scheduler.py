"""``python -m geotasks.scheduler geotasks.worker geotasks.maintenance``: periodiq's scheduler,
listed in the worker registry with the schedules it sends.

periodiq itself tells no one it runs: registered here, a scheduler shows on the dashboard, and
``geotasks health`` knows each periodic actor's next slot (and so whether a tick is late) from
Postgres alone. The arguments are periodiq's. It stops cleanly on SIGTERM (leaving the registry);
killed otherwise, it reads ``lost`` after the heartbeat timeout.
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from types import FrameType

import dramatiq
import periodiq
from dramatiq.cli import LOGFORMAT

from .middleware.workers import Presence, registration_for
from .postgres.broker import HEARTBEATS_PER_TIMEOUT
from .postgres.workers import Registration, ScheduleSpec, WorkerStore
from .settings import get_settings


def periodic_schedules(broker: dramatiq.Broker) -> dict[str, ScheduleSpec]:
    """Return the schedules of ``broker``'s periodic actors, at this host's UTC offset now."""
    offset = time.localtime().tm_gmtoff
    return {
        name: ScheduleSpec(str(actor.options["periodic"]), offset)
        for name, actor in sorted(broker.actors.items())
        if "periodic" in actor.options
    }


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    """Import the modules as periodiq does, register, and run periodiq's scheduler."""
    from .broker import database_for

    args = periodiq.make_argument_parser().parse_args(argv)
    for path in args.path:
        sys.path.insert(0, path)
    _, broker = periodiq.import_broker(args.broker)
    for module in args.modules:
        importlib.import_module(module)
    settings = get_settings()
    registration = registration_for("scheduler", (), 0)

    def describe() -> tuple[Registration, int]:
        schedules = periodic_schedules(broker)
        queues = tuple(sorted({broker.actors[name].queue_name for name in schedules}))
        return replace(registration, queues=queues, schedules=schedules), 0

    presence = Presence(
        WorkerStore(database_for(settings)),
        settings.broker_heartbeat_timeout_s / HEARTBEATS_PER_TIMEOUT,
        describe,
    )
    signal.signal(signal.SIGTERM, _stop)
    presence.start()
    try:
        return int(periodiq.main(args) or 0)
    finally:
        presence.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format=LOGFORMAT)
    sys.exit(main())
