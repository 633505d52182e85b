"""The ``geotasks`` command.

It is the one entry point that may start the embedded PostgreSQL, and only in ``demo`` and the
development ``worker`` / ``scheduler`` wrappers: when ``GEOTASKS_DATABASE_URL`` is unset, they
start it once, hand its URL to every process they start, and stop it on exit (also on Ctrl-C
and SIGTERM). Every other command (``submit``, ``status``, ``db``, ``serve``…) uses an embedded
server already running from the same directory, or fails at once naming the setting: a
forgotten setting must not quietly create a database no worker reads.

One module per group of commands: :mod:`.databases` (``db``, and which database a command
uses), :mod:`.services` (``worker``, ``scheduler``, ``demo``, ``serve``), :mod:`.job_commands`
(``submit``, ``status``, ``result``, ``jobs``, ``actors``), :mod:`.dead_letters`,
:mod:`.monitoring` (``schedules``, ``health``); :mod:`.main` builds the parser.
"""

from __future__ import annotations

from .main import build_parser, main

__all__ = ["build_parser", "main"]
