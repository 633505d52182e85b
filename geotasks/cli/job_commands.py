"""Jobs from the shell: ``geotasks submit``, ``status``, ``result``, ``jobs`` and ``actors``."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from typing import TYPE_CHECKING

from ..settings import get_settings

if TYPE_CHECKING:
    from ..job_model import JobError, JobInfo
    from ..jobs import Job
    from ..registry import ActorSpec

from ..humanize import human_size
from .databases import database_url, existing_database_url
from .dead_letters import utc
from .submit_arguments import parse_submit_arguments

#: How often ``geotasks submit --wait`` refreshes its progress line, in seconds.
PROGRESS_REFRESH_S = 0.5


def cmd_submit(args: argparse.Namespace) -> int:
    """Send a job to an actor by name; with --wait, follow it and save its result."""
    from ..errors import InputError
    from ..job_model import JobState
    from ..jobs import submit

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
    from ..catalogue import builtin_actors, list_actors
    from ..postgres.catalogue import list_published
    from ..postgres.pool import get_database

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
    from ..errors import JobTimeout

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
    from ..jobs import Job

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

    from ..errors import JobNotFound

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
    from ..errors import JobFailed

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
    from ..job_model import JobState
    from ..postgres.job_status import JobStore
    from ..postgres.pool import Database

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
                human_size(info.result_size_bytes)
                if info.result_size_bytes is not None and info.result_kind in ("value", "geojson")
                else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0
