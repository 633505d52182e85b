"""``python manage.py geotasks COMMAND``: the ``geotasks`` command inside a Django project.

Every subcommand of ``geotasks`` (``worker``, ``scheduler``, ``db``, ``submit``, ``status``,
``result``, ``jobs``, ``actors``, ``dead-letters``, ``health``, ``serve``…) with the project's
settings; ``worker`` and ``scheduler`` load :mod:`geotasks.contrib.django.worker`, which sets
Django up in each worker process and finds the apps' ``tasks`` modules.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from .....cli import main

#: The module Dramatiq and periodiq load in a Django project.
DJANGO_WORKER_MODULE = "geotasks.contrib.django.worker"


class Command(BaseCommand):
    help = "Run a geotasks command (worker, scheduler, db init, submit, status, jobs…)."

    def run_from_argv(self, argv: list[str]) -> None:
        # geotasks' own parser reads everything after `geotasks` (its -h, its -v), not Django's.
        sys.exit(run(argv[2:]))

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("arguments", nargs=argparse.REMAINDER)

    def handle(self, *args: Any, **options: Any) -> None:
        code = run(options["arguments"])
        if code:
            sys.exit(code)


def run(arguments: list[str]) -> int:
    """Run ``geotasks ARGUMENTS`` with this project's settings; return its exit code."""
    # Worker processes import the project's settings module like this one did.
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (sys.path[0] or os.getcwd(), path) if p)
    return main(arguments, worker_module=DJANGO_WORKER_MODULE)
