"""Helpers that put worker processes and schedulers in the registry, as they would register."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from geotasks.postgres.pool import Database
from geotasks.postgres.workers import Registration, ScheduleSpec, WorkerStore


def register(
    database: Database,
    *,
    role: str = "worker",
    queues: tuple[str, ...] = ("default",),
    schedules: Mapping[str, str] | None = None,
    hostname: str = "host-a",
    pid: int = 100,
    silent_for_s: float = 0,
    started_ago_s: float = 0,
) -> uuid.UUID:
    """Register a process whose last heartbeat was ``silent_for_s`` seconds ago; return its id.

    ``schedules`` maps actor names to cron specs, read in UTC.
    """
    registration = Registration(
        worker_id=uuid.uuid4(),
        role=role,
        hostname=hostname,
        pid=pid,
        parent_pid=1,
        queues=queues,
        threads=2,
        version="test",
        schedules={name: ScheduleSpec(cron, 0) for name, cron in (schedules or {}).items()},
    )
    WorkerStore(database).beat(registration, 0)
    database.transaction(
        lambda cur: cur.execute(
            "UPDATE geotasks.worker SET heartbeat_at = now() - make_interval(secs => %s), "
            "started_at = now() - make_interval(secs => %s) WHERE worker_id = %s",
            (silent_for_s, max(started_ago_s, silent_for_s), str(registration.worker_id)),
        )
    )
    return registration.worker_id
