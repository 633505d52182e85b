"""What the HTTP API asks of the job store, in its terms, over :mod:`geotasks.jobs`.

The endpoints stay free of Dramatiq and psycopg2: they submit a validated process, read a
job's :class:`~geotasks.postgres.job_status.JobInfo`, page through the job list with an opaque
cursor, and open a result as a seekable stream. Client-side errors of the job API become
problem documents here.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

import orjson
from dramatiq.broker import Broker

from ..errors import (
    ConfigurationError,
    InputError,
    JobFailed,
    JobNotFinished,
    JobNotFound,
    JobSkipped,
    JobTimeout,
    ResultExpired,
    ResultNotStored,
)
from ..job_model import JobInfo, JobState
from ..jobs import Job, submit_with_options
from ..postgres.job_status import JobStore
from ..postgres.pool import Database, get_database
from ..settings import Settings
from .problems import INVALID_PARAMETER, Problem, no_such_job
from .processes import Process

#: Pause between reads while a finished job's status catches up with its stored result, in s.
STATUS_FOLLOWS_POLL_S = 0.02


@dataclass(frozen=True)
class Position:
    """Where a page of the job list starts: after this job, in this direction.

    Attributes:
      created_at: The ``created`` time of the job the page starts after.
      job_id: Its id (ties on ``created_at`` are broken by id).
      newer: Whether the page walks towards newer jobs (a ``prev`` link).
    """

    created_at: datetime
    job_id: str
    newer: bool

    def encode(self) -> str:
        """Return the position as an opaque URL-safe cursor."""
        raw = orjson.dumps([int(self.newer), self.created_at.isoformat(), self.job_id])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_cursor(cursor: str | None) -> Position | None:
    """Return the position a ``cursor`` parameter encodes, ``None`` without one.

    Raises:
      Problem: 400 when the cursor was not made by this server.
    """
    if cursor is None or cursor == "":
        return None
    invalid = Problem(
        400, "cursor is not valid; take it from a next or prev link", type_=INVALID_PARAMETER
    )
    try:
        newer, created, job_id = orjson.loads(
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        )
        created_at = datetime.fromisoformat(created)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise invalid from None
    if newer not in (0, 1) or not isinstance(job_id, str) or created_at.tzinfo is None:
        raise invalid
    return Position(created_at, job_id, bool(newer))


def _parse_instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise Problem(
            400,
            f"datetime: {text!r} is not an RFC 3339 date-time (2024-05-01T12:00:00Z)",
            type_=INVALID_PARAMETER,
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_datetime_filter(text: str | None) -> tuple[datetime | None, datetime | None]:
    """Return the ``(from, to)`` bounds of an OGC ``datetime`` parameter.

    ``instant``, ``start/end``, ``../end``, ``start/..`` (an empty end is open, too). A
    date-time without an offset is read as UTC.

    Raises:
      Problem: 400 when it is malformed or ends before it starts.
    """
    if text is None or text == "":
        return None, None
    if "/" not in text:
        instant = _parse_instant(text)
        return instant, instant
    start_text, _, end_text = text.partition("/")
    start = None if start_text in ("", "..") else _parse_instant(start_text)
    end = None if end_text in ("", "..") else _parse_instant(end_text)
    if start is not None and end is not None and end < start:
        raise Problem(400, f"datetime: {text!r} ends before it starts", type_=INVALID_PARAMETER)
    return start, end


@dataclass(frozen=True)
class JobQuery:
    """A ``/jobs`` request: filters and a page.

    Attributes:
      process_ids: Only jobs of these processes (all when empty).
      ogc_statuses: The OGC status codes asked for, as given.
      states: The geotasks states they stand for (all when empty).
      created_from: Only jobs created at or after this time.
      created_to: Only jobs created at or before this time.
      min_duration_s: Only jobs that have run at least this many seconds.
      max_duration_s: Only jobs that have run at most this many seconds.
      limit: Jobs per page.
      position: Where the page starts; the newest job when ``None``.
    """

    process_ids: list[str] = field(default_factory=list)
    ogc_statuses: list[str] = field(default_factory=list)
    states: list[JobState] = field(default_factory=list)
    created_from: datetime | None = None
    created_to: datetime | None = None
    min_duration_s: int | None = None
    max_duration_s: int | None = None
    limit: int = 100
    position: Position | None = None


@dataclass(frozen=True)
class JobPage:
    """One page of the job list, newest first, with cursors to its neighbours."""

    jobs: list[JobInfo]
    next_cursor: str | None
    prev_cursor: str | None


def _position(info: JobInfo, *, newer: bool) -> str:
    return Position(info.created_at, info.message_id, newer).encode()


class JobAccess:
    """The job store, as the HTTP API uses it.

    Parameters:
      database: The pool every read and write goes through.
      settings: The configuration (result time to live, spool directory).
      broker: The broker jobs are sent through; the one the settings configure by default.
    """

    def __init__(
        self, database: Database, settings: Settings, *, broker: Broker | None = None
    ) -> None:
        self.database = database
        self.settings = settings
        self.broker = broker
        self.store = JobStore(database)

    @classmethod
    def from_settings(cls, settings: Settings) -> JobAccess:
        """Return access through this process's pool for ``GEOTASKS_DATABASE_URL``.

        Raises:
          ConfigurationError: when no database is configured.
        """
        database = get_database(
            settings.require_database_url(),
            max_connections=settings.pool_max_connections,
            connect_timeout_s=settings.connect_timeout_s,
        )
        return cls(database, settings)

    def job(self, job_id: str) -> Job:
        """Return the client handle of a job."""
        return Job(job_id, database=self.database, settings=self.settings)

    def submit(self, process: Process, kwargs: dict[str, object], **options: Any) -> str:
        """Send a job for ``process`` with validated keyword arguments; return its id.

        Parameters:
          process: The process.
          kwargs: Its arguments.
          options: Message options (``output_format``).

        Raises:
          Problem: 400 when the actor refuses the arguments, 503 when no broker is set up.
        """
        try:
            return submit_with_options(
                process.id, kwargs=kwargs, broker=self.broker, database=self.database, **options
            ).id
        except InputError as exc:
            raise Problem(400, str(exc), type_=INVALID_PARAMETER) from None
        except ConfigurationError as exc:
            raise Problem(503, f"jobs cannot be sent: {exc}") from exc

    def info(self, job_id: str) -> JobInfo | None:
        """Return what is known of a job, ``None`` when its id is UNKNOWN."""
        return self.store.get(job_id)

    def wait(self, job_id: str, timeout_s: float) -> JobInfo | None:
        """Wait up to ``timeout_s`` for a job to finish; return its latest info."""
        deadline = time.monotonic() + timeout_s
        try:
            info = self.job(job_id).wait(timeout_s)
        except JobTimeout:
            return self.store.get(job_id)
        except JobNotFound:
            return None
        # The result is stored (and announced) a moment before the final status is recorded,
        # and nothing is announced then: look again until the status follows.
        while not info.status.finished and time.monotonic() < deadline:
            time.sleep(STATUS_FOLLOWS_POLL_S)
            info = self.store.get(job_id) or info
        return info

    def cancel(self, job_id: str) -> bool:
        """Cancel a job that has not started; ``False`` when it has."""
        return self.job(job_id).cancel()

    def dismiss(self, job_id: str) -> bool:
        """Delete a finished job and its result; ``False`` when it is not finished or unknown."""
        return self.job(job_id).dismiss()

    def open_result(self, info: JobInfo) -> BinaryIO:
        """Return a seekable stream over a finished job's result.

        Raises:
          Problem: 404 or 410 when the result went away since ``info`` was read.
        """
        try:
            return self.job(info.message_id).open()
        except JobNotFound:
            raise no_such_job(info.message_id) from None
        except (ResultExpired, ResultNotStored, JobSkipped, JobFailed, JobNotFinished) as exc:
            raise Problem(410, str(exc)) from None

    def list_jobs(self, query: JobQuery) -> JobPage:
        """Return one page of jobs matching ``query``, newest first."""
        position = query.position
        key = (position.created_at, position.job_id) if position is not None else None
        if position is not None and position.newer:
            rows = self._page(query, key, newer=True)
            jobs = list(reversed(rows[: query.limit]))
            more_newer = len(rows) > query.limit
            return JobPage(
                jobs,
                next_cursor=_position(jobs[-1], newer=False) if jobs else None,
                prev_cursor=_position(jobs[0], newer=True) if jobs and more_newer else None,
            )
        rows = self._page(query, key, newer=False)
        jobs = rows[: query.limit]
        more_older = len(rows) > query.limit
        return JobPage(
            jobs,
            next_cursor=_position(jobs[-1], newer=False) if jobs and more_older else None,
            prev_cursor=_position(jobs[0], newer=True) if jobs and position is not None else None,
        )

    def _page(
        self, query: JobQuery, key: tuple[datetime, str] | None, *, newer: bool
    ) -> list[JobInfo]:
        # One row more than a page tells whether there is another page after it.
        return self.store.page(
            statuses=query.states or None,
            actor_names=query.process_ids or None,
            created_from=query.created_from,
            created_to=query.created_to,
            min_duration_s=query.min_duration_s,
            max_duration_s=query.max_duration_s,
            key=key,
            newer=newer,
            limit=query.limit + 1,
        )
