"""The dashboard's document: the whole system as JSON, every number with the link behind it.

``GET /dashboard`` answers this document as JSON, or renders it as the HTML page. Numbers link to
the jobs list filtered on what they count (an actor's failures: ``/jobs?processID=…&status=
failed``); the jobs list has no queue filter, so a queue's numbers link to the jobs in that
state.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import dramatiq

from ..postgres.overview import WINDOW_S, SystemState
from ..postgres.workers import WorkerProcess
from ..settings import Settings
from .queues import QueueInfo
from .schedules import schedule_states


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def jobs_link(base_url: str, **filters: str) -> str:
    """Return the jobs list's URL, filtered (``processID``, ``status``)."""
    return f"{base_url}jobs?{urlencode({**filters, 'f': 'html'})}"


def declared_limits() -> dict[str, dict[str, Any]]:
    """Return the rate and concurrency limits of the actors declared in this process.

    Limits live in the actors' code; the server knows those of the actors it imported, and
    shows "in use" without a limit for the others.
    """
    broker = dramatiq.broker.global_broker
    if broker is None:
        return {}
    return {
        name: {
            "rate_limit": actor.options.get("rate_limit"),
            "concurrency_limit": actor.options.get("concurrency_limit"),
        }
        for name, actor in broker.actors.items()
    }


def _process(process: WorkerProcess, base_url: str) -> dict[str, Any]:
    return {
        "host": process.hostname,
        "pid": process.pid,
        "parent_pid": process.parent_pid,
        "queues": list(process.queues),
        "state": process.state,
        "last_heartbeat": _iso(process.heartbeat_at),
        "started": _iso(process.started_at),
        "threads": process.threads,
        "processes": process.processes,
        "version": process.version,
        "jobs_in_flight": process.jobs_in_flight,
        "jobs_in_flight_href": jobs_link(base_url, status="running"),
    }


def _queue(queue: QueueInfo, base_url: str) -> dict[str, Any]:
    return {
        "name": queue.queue_name,
        "ready": queue.ready,
        "delayed": queue.delayed,
        "in_flight": queue.in_flight,
        "oldest_age_s": queue.oldest_age_s,
        "dead_letters": queue.dead_letters,
        "waiting_href": jobs_link(base_url, status="accepted"),
        "in_flight_href": jobs_link(base_url, status="running"),
        "dead_letters_href": jobs_link(base_url, status="failed"),
    }


def _per_minute(state: SystemState) -> dict[str, Any]:
    end = state.now.replace(second=0, microsecond=0)
    minutes = [end - timedelta(minutes=i) for i in range(WINDOW_S // 60 - 1, -1, -1)]
    index = {minute: i for i, minute in enumerate(minutes)}
    series: dict[str, dict[str, Any]] = {}
    for count in state.per_minute:
        entry = series.setdefault(
            count.actor_name,
            {
                "actor": count.actor_name,
                "finished": [0] * len(minutes),
                "failed": [0] * len(minutes),
            },
        )
        position = index.get(count.minute.astimezone(end.tzinfo))
        if position is not None:
            entry["finished"][position] = count.finished
            entry["failed"][position] = count.failed
    return {"minutes": [_iso(m) for m in minutes], "series": list(series.values())}


def _actors(state: SystemState, base_url: str) -> list[dict[str, Any]]:
    actors: dict[str, dict[str, Any]] = {}
    for row in state.by_status:
        entry = actors.setdefault(
            row.actor_name,
            {
                "actor": row.actor_name,
                "finished": 0,
                "failed": 0,
                "p50_s": None,
                "p95_s": None,
                "finished_href": jobs_link(
                    base_url, processID=row.actor_name, status="successful,failed"
                ),
                "failed_href": jobs_link(base_url, processID=row.actor_name, status="failed"),
            },
        )
        entry["finished"] += row.jobs
        if row.status == "FAILURE":
            entry["failed"] += row.jobs
        if row.status == "SUCCESS":
            entry["p50_s"], entry["p95_s"] = row.p50_s, row.p95_s
    return list(actors.values())


def dashboard_document(
    settings: Settings,
    state: SystemState,
    queues: list[QueueInfo] | None,
    broker_error: str | None,
    *,
    base_url: str,
) -> dict[str, Any]:
    """Return the dashboard's JSON document.

    Parameters:
      settings: The server's settings.
      state: The system's state.
      queues: The broker's queues (``None`` when it did not answer).
      broker_error: Why the broker did not answer.
      base_url: The API's base URL, ending in ``/``, for the links.
    """
    limits = declared_limits()
    return {
        "generated_at": _iso(state.now),
        "window_s": WINDOW_S,
        "heartbeat_timeout_s": settings.broker_heartbeat_timeout_s,
        "workers": [_process(w, base_url) for w in state.workers if w.role == "worker"],
        "schedulers": [
            {**_process(w, base_url), "schedules": sorted(w.schedules)}
            for w in state.workers
            if w.role == "scheduler"
        ],
        "queues": [_queue(q, base_url) for q in queues or []],
        "broker_error": broker_error,
        "actors": _actors(state, base_url),
        "per_minute": _per_minute(state),
        "recent_failures": [
            {
                "jobID": job.message_id,
                "actor": job.actor_name,
                "finished": _iso(job.finished_at),
                "error": f"{job.error_type}: {job.error_message}" if job.error_type else None,
                "href": f"{base_url}jobs/{job.message_id}?f=html",
            }
            for job in state.recent_failures
        ],
        "rate_limits": [
            {
                "actor": slots.actor_name,
                "in_use": slots.in_use,
                "period_s": slots.period_s,
                "limit": limits.get(slots.actor_name, {}).get("rate_limit"),
            }
            for slots in state.rate_limits
        ],
        "concurrency_limits": [
            {
                "actor": slots.actor_name,
                "in_use": slots.in_use,
                "limit": limits.get(slots.actor_name, {}).get("concurrency_limit"),
            }
            for slots in state.concurrency
        ],
        "schedules": [
            {
                "actor": s.actor_name,
                "cron": s.cron,
                "last_slot": _iso(s.last_slot),
                "last_status": s.last_status,
                "last_href": None
                if s.last_message_id is None
                else f"{base_url}jobs/{s.last_message_id}?f=html",
                "next_slot": _iso(s.next_slot),
                "lateness_s": s.lateness_s,
                "late": s.late,
            }
            for s in schedule_states(state, settings.periodic_skip_delay_s)
        ],
    }
