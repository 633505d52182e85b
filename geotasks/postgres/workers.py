"""The worker registry (``geotasks.worker``): which worker processes and schedulers run, where.

Every broker's workers register here (:class:`~geotasks.middleware.workers.WorkerRegistry`),
so the dashboard, ``/metrics`` and ``geotasks health`` see the same processes whether messages
travel through Postgres, Redis or RabbitMQ.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg2.extensions import cursor as Cursor
from psycopg2.extras import Json

from .pool import Database
from .queries import load_queries

#: A lost process's row is deleted after this many seconds without a heartbeat: it stays on the
#: dashboard for a day, long enough for someone to notice it.
LOST_RETENTION_S = 86_400


@dataclass(frozen=True)
class ScheduleSpec:
    """A periodic actor's schedule as its scheduler reads it.

    Attributes:
      cron: The schedule as :mod:`geotasks.schedule` prints it: ``every 30s``, or a cron spec
        read in UTC.
      utc_offset_s: The scheduler host's UTC offset, in seconds, when it last heart-beat (for
        information: schedules do not depend on it).
    """

    cron: str
    utc_offset_s: int


@dataclass(frozen=True)
class Registration:
    """What a process says about itself when it registers and at every heartbeat.

    Attributes:
      role: ``worker`` or ``scheduler``.
      parent_pid: The process that started it: processes of one host and parent are one
        worker instance (``dramatiq -p N``).
      schedules: A scheduler's periodic actors and their schedules.
    """

    worker_id: uuid.UUID
    role: str
    hostname: str
    pid: int
    parent_pid: int
    queues: tuple[str, ...]
    threads: int
    version: str
    schedules: Mapping[str, ScheduleSpec] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class WorkerProcess(Registration):
    """One registered process, as the database last heard of it.

    Attributes:
      processes: Processes of the same instance (same host and parent process), itself included.
      lost: Its heartbeat is older than the heartbeat timeout.
    """

    started_at: datetime
    heartbeat_at: datetime
    jobs_in_flight: int
    lost: bool
    processes: int

    @property
    def state(self) -> str:
        """``alive`` or ``lost``."""
        return "lost" if self.lost else "alive"

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> WorkerProcess:
        """Build from a ``list_workers`` row."""
        (worker_id, role, hostname, pid, parent_pid, queues, threads, version, started_at,
         heartbeat_at, jobs_in_flight, schedules, lost, processes) = row  # fmt: skip
        return cls(
            worker_id=uuid.UUID(str(worker_id)),
            role=role,
            hostname=hostname,
            pid=pid,
            parent_pid=parent_pid,
            queues=tuple(queues),
            threads=threads,
            version=version,
            schedules={
                actor: ScheduleSpec(spec["cron"], int(spec["utc_offset_s"]))
                for actor, spec in schedules.items()
            },
            started_at=started_at,
            heartbeat_at=heartbeat_at,
            jobs_in_flight=jobs_in_flight,
            lost=lost,
            processes=int(processes),
        )


class WorkerStore:
    """Reads and writes ``geotasks.worker``.

    Parameters:
      database: The pool every statement goes through.
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    def beat(self, registration: Registration, jobs_in_flight: int) -> None:
        """Register the process, or renew its heartbeat.

        Raises:
          DatabaseUnavailable: when Postgres cannot be reached.
          DatabaseError: when the schema is missing.
        """
        params = {
            "worker_id": str(registration.worker_id),
            "role": registration.role,
            "hostname": registration.hostname,
            "pid": registration.pid,
            "parent_pid": registration.parent_pid,
            "queues": list(registration.queues),
            "threads": registration.threads,
            "version": registration.version,
            "jobs_in_flight": jobs_in_flight,
            "schedules": Json(
                {
                    actor: {"cron": spec.cron, "utc_offset_s": spec.utc_offset_s}
                    for actor, spec in registration.schedules.items()
                }
            ),
        }
        query = load_queries("workers")["beat"]
        self.database.transaction(lambda cur: cur.execute(query, params), single_statement=True)

    def forget_lost(self, older_than_s: int = LOST_RETENTION_S) -> int:
        """Delete the processes silent for more than ``older_than_s`` seconds; return how many."""
        query = load_queries("workers")["forget_lost"]

        def delete(cur: Cursor) -> int:
            cur.execute(query, {"older_than_s": older_than_s})
            return int(cur.rowcount)

        return self.database.transaction(delete, single_statement=True)

    def unregister(self, worker_id: uuid.UUID) -> None:
        """Remove a process that stops cleanly."""
        query = load_queries("workers")["unregister"]
        self.database.transaction(
            lambda cur: cur.execute(query, {"worker_id": str(worker_id)}), single_statement=True
        )

    def workers(self, heartbeat_timeout_s: float) -> list[WorkerProcess]:
        """Return every registered process; those silent for ``heartbeat_timeout_s`` are lost."""
        query = load_queries("workers")["list_workers"]

        def read(cur: Cursor) -> list[WorkerProcess]:
            cur.execute(query, {"heartbeat_timeout_s": heartbeat_timeout_s})
            return [WorkerProcess.from_row(row) for row in cur.fetchall()]

        return self.database.transaction(read, single_statement=True)
