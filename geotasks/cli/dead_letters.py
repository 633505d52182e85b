"""``geotasks dead-letters``: list, show, re-queue and purge the messages a worker rejected."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..settings import get_settings

if TYPE_CHECKING:
    pass

from .databases import broker_database


def utc(moment: datetime) -> str:
    """Format a timestamp in UTC to the second."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}"


def cmd_dead_letters_list(args: argparse.Namespace) -> int:
    """List dead-lettered messages, oldest first."""
    from ..postgres.dead_letters import list_dead_letters

    with broker_database(get_settings()) as database:
        letters = list_dead_letters(database, queue_name=args.queue, limit=args.limit)
    if not letters:
        print("no dead letters")
        return 0
    print(f"{'ID':>6}  {'DEAD AT (UTC)':19}  {'QUEUE':16}  {'ACTOR':24}  ERROR")
    for letter in letters:
        error = letter.error.strip().splitlines()[-1] if letter.error.strip() else ""
        print(
            f"{letter.dead_letter_id:>6}  {utc(letter.dead_at)}  "
            f"{letter.queue_name[:16]:16}  {(letter.actor_name or '?')[:24]:24}  {error[:80]}"
        )
    return 0


def cmd_dead_letters_show(args: argparse.Namespace) -> int:
    """Show one dead letter: its message and its full error."""
    from ..postgres.dead_letters import get_dead_letter

    with broker_database(get_settings()) as database:
        letter = get_dead_letter(database, args.id)
    if letter is None:
        print(f"geotasks: no dead letter {args.id}", file=sys.stderr)
        return 1
    try:
        body = json.dumps(json.loads(letter.body), indent=2)
    except ValueError:
        body = letter.body
    print(f"dead letter:  {letter.dead_letter_id}")
    print(f"message id:   {letter.message_id}")
    print(f"queue:        {letter.queue_name}")
    print(f"actor:        {letter.actor_name or '(unknown: the body did not decode)'}")
    print(f"enqueued at:  {utc(letter.enqueued_at)} UTC")
    print(f"dead at:      {utc(letter.dead_at)} UTC")
    print(f"redeliveries: {letter.redeliveries}")
    print(f"message:\n{body}")
    print(f"error:\n{letter.error}")
    return 0


def cmd_dead_letters_requeue(args: argparse.Namespace) -> int:
    """Put a dead letter back in its queue, to run again now."""
    from ..postgres.dead_letters import requeue_dead_letter
    from ..postgres.job_status import JobStore
    from ..postgres.pool import Database

    settings = get_settings()
    with broker_database(settings) as database:
        jobs = None
        if settings.database_url and database.url != settings.database_url:
            # Job status lives in GEOTASKS_DATABASE_URL's database, not the broker's.
            jobs = JobStore(Database(settings.database_url, max_connections=1))
        try:
            requeued = requeue_dead_letter(database, args.id, jobs=jobs)
        finally:
            if jobs is not None:
                jobs.database.close()
    if requeued is None:
        print(f"geotasks: no dead letter {args.id}", file=sys.stderr)
        return 1
    message_id, queue_name = requeued
    print(f"requeued message {message_id} on queue {queue_name}")
    return 0


def cmd_dead_letters_purge(args: argparse.Namespace) -> int:
    """Delete the dead letters of one queue (--queue) or of every queue (--all)."""
    from ..postgres.dead_letters import purge_dead_letters

    if not args.queue and not args.all:
        print("geotasks: say which dead letters to purge: --queue NAME or --all", file=sys.stderr)
        return 2
    with broker_database(get_settings()) as database:
        deleted = purge_dead_letters(database, queue_name=args.queue)
    print(f"deleted {deleted} dead letter(s)")
    return 0
