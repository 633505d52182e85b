"""The scheduler: sends a message for every slot of every periodic actor the loaded modules declare.

``geotasks scheduler`` runs it on its own (``python -m geotasks.scheduler [broker] [modules]``;
the broker module is ``geotasks.worker`` by default, which loads ``GEOTASKS_MODULES``);
``geotasks worker --scheduler``, or ``GEOTASKS_WORKER_SCHEDULER=true``, runs one beside each
worker instance, as a process that ``dramatiq`` starts and stops with its workers.

One loop serves every schedule: it sleeps until the earliest due slot (never more than
:data:`MAX_SLEEP_S`, so a clock step is noticed), sends that actor's message stamped with the
slot, and moves the actor to its next slot after now: slots missed while no scheduler ran are not
replayed. A scheduler keeps no state and decides nothing about duplicates: any number may run,
and the workers' :class:`~geotasks.middleware.periodic.PeriodicDeduplication` runs each slot
once. Each scheduler is listed in the worker registry with the schedules it sends.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import dramatiq
from dramatiq.cli import LOGFORMAT, import_broker
from dramatiq.cli import make_argument_parser as dramatiq_argument_parser
from dramatiq.middleware import Middleware

from .errors import GeotasksError
from .middleware.periodic import actor_schedule
from .middleware.workers import Presence, registration_for
from .postgres.broker import HEARTBEATS_PER_TIMEOUT
from .postgres.workers import Registration, ScheduleSpec, WorkerStore
from .schedule import Schedule
from .settings import get_settings

logger = logging.getLogger(__name__)

#: A periodic actor and its schedule.
Periodic = tuple["dramatiq.Actor[..., Any]", Schedule]

#: Longest the loop sleeps at once, in seconds: a clock stepped forward or back is noticed.
MAX_SLEEP_S = 1.0
#: Wait before sending a message again after the broker refused it, in seconds.
SEND_RETRY_S = 1.0


def periodic_actors(broker: dramatiq.Broker) -> dict[str, Periodic]:
    """Return the periodic actors of ``broker`` with their schedules, by name."""
    found = {}
    for name, actor in sorted(broker.actors.items()):
        schedule = actor_schedule(actor.options)
        if schedule is not None:
            found[name] = (actor, schedule)
    return found


class Scheduler:
    """Sends each periodic actor's message at each of its slots, until stopped.

    Parameters:
      actors: The periodic actors and their schedules, by name.
      skip_late_s: How late a slot's message is still worth sending, unless the actor says
        otherwise (a worker would skip it anyway).
    """

    def __init__(self, actors: dict[str, Periodic], *, skip_late_s: float) -> None:
        self.actors = actors
        self.skip_late_s = skip_late_s

    def run(self, stop: threading.Event) -> None:
        """Send every slot that comes, until ``stop`` is set."""
        now = datetime.now(UTC)
        due = {name: schedule.next_slot(now) for name, (_, schedule) in self.actors.items()}
        while due and not stop.is_set():
            name, slot = min(due.items(), key=lambda item: item[1])
            wait_s = slot.timestamp() - time.time()
            if wait_s > 0:
                stop.wait(min(wait_s, MAX_SLEEP_S))
                continue
            actor, schedule = self.actors[name]
            if self._send(actor, slot, stop):
                due[name] = schedule.next_slot(max(slot, datetime.now(UTC)))

    def _send(self, actor: dramatiq.Actor[..., Any], slot: datetime, stop: threading.Event) -> bool:
        """Send ``actor``'s message for ``slot``; ``False`` to try again shortly."""
        try:
            message = actor.send_with_options(scheduled_at=slot.isoformat())
        except Exception as exc:
            late_s = time.time() - slot.timestamp()
            if late_s > float(actor.options.get("skip_late_s", self.skip_late_s)):
                logger.error(
                    "Gave up sending slot %s of %s: %s", slot.isoformat(), actor.actor_name, exc
                )
                return True
            logger.warning(
                "Could not send slot %s of %s, retrying: %s",
                slot.isoformat(),
                actor.actor_name,
                exc,
            )
            stop.wait(SEND_RETRY_S)
            return False
        logger.info(
            "Sent slot %s of %s as message %s",
            slot.isoformat(),
            actor.actor_name,
            message.message_id,
        )
        return True


def serve(broker_name: str, modules: Sequence[str]) -> int:
    """Import the broker module and ``modules``, register, and schedule until SIGTERM.

    Returns:
      The exit code: 0 when stopped, 1 when no actor is periodic.
    """
    _, broker = import_broker(broker_name)  # type: ignore[no-untyped-call]
    for module in modules:
        importlib.import_module(module)
    actors = periodic_actors(broker)
    if not actors:
        logger.error("No periodic actor to schedule: declare one with every= or cron=.")
        return 1
    for name, (actor, schedule) in actors.items():
        logger.info("Scheduling %s (queue %s): %s", name, actor.queue_name, schedule)
    from .broker import database_for

    settings = get_settings()
    offset_s = time.localtime().tm_gmtoff
    registration = replace(
        registration_for("scheduler", (), 0),
        queues=tuple(sorted({actor.queue_name for actor, _ in actors.values()})),
        schedules={
            name: ScheduleSpec(str(schedule), offset_s) for name, (_, schedule) in actors.items()
        },
    )

    def describe() -> tuple[Registration, int]:
        return registration, 0

    presence = Presence(
        WorkerStore(database_for(settings)),
        settings.broker_heartbeat_timeout_s / HEARTBEATS_PER_TIMEOUT,
        describe,
    )
    presence.start()
    try:
        Scheduler(actors, skip_late_s=settings.periodic_skip_delay_s).run(threading.Event())
    finally:
        presence.stop()
    return 0


def run_beside_worker() -> int:
    """Schedule with the broker and modules of the ``dramatiq`` command that started this process.

    ``dramatiq`` forks it from its main process (see :class:`SchedulerProcess`), with the
    command line in ``sys.argv``, and ends it with SIGTERM when the workers stop.
    """
    args = dramatiq_argument_parser().parse_args(sys.argv[1:])  # type: ignore[no-untyped-call]
    for path in args.path:
        sys.path.insert(0, path)
    try:
        return serve(args.broker, args.modules)
    except GeotasksError:
        logger.exception("The scheduler beside the worker cannot start")
        return 1


class SchedulerProcess(Middleware):
    """Makes ``dramatiq`` run a scheduler process beside its worker processes.

    Installed by :mod:`geotasks.worker` when ``GEOTASKS_WORKER_SCHEDULER`` is true: Dramatiq
    starts each middleware's ``forks`` once per ``dramatiq`` command, after the workers booted.
    """

    @property
    def forks(self) -> list[Callable[[], int]]:
        return [run_beside_worker]


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m geotasks.scheduler [broker] [module ...]``."""
    parser = argparse.ArgumentParser(prog="geotasks scheduler", description=__doc__)
    parser.add_argument(
        "broker", nargs="?", default="geotasks.worker", help="the broker module (geotasks.worker)"
    )
    parser.add_argument("modules", nargs="*", help="more modules that declare periodic actors")
    parser.add_argument("--verbose", "-v", action="count", default=0, help="log more")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format=LOGFORMAT)
    signal.signal(signal.SIGTERM, _stop)
    try:
        return serve(args.broker, args.modules)
    except GeotasksError as exc:
        logger.error("The scheduler cannot start: %s", exc)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
