"""The client side: :func:`submit` work by actor name, then follow it with a :class:`Job`.

>>> import geotasks
>>> job = geotasks.submit("shapefile_to_geojson", "parcels", precision=6)
>>> job.status
<JobState.PENDING: 'PENDING'>
>>> job.get(timeout=60)["type"]
'FeatureCollection'
>>> job.save("parcels.geojson")

Everything is keyed by the job id (the Dramatiq message id): ``Job(id)`` in another process, or
another host, sees the same job. Nothing here imports the actors' code, fiona or shapely.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

import orjson
from dramatiq.broker import Broker
from dramatiq.message import Message

from .catalogue import find_actor
from .errors import (
    InputError,
    JobFailed,
    JobNotFinished,
    JobNotFound,
    JobSkipped,
    JobTimeout,
    ResultExpired,
    ResultIsAFile,
    ResultNotStored,
    ResultTooLarge,
)
from .geo.output_formats import OUTPUT_FORMAT_OPTION, output_format
from .job_model import JobError, JobInfo, JobState, Progress
from .postgres.job_status import FINISHED_CHANNEL, JobStore
from .postgres.listener import Mark, get_listener, running_listener
from .postgres.outcome import OUTCOME_CHANNEL, InlineResult, parse_payload
from .postgres.pool import Database, get_database
from .postgres.result_store import FAILURE, FILE, GEOJSON, StoredResult
from .postgres.results import PostgresBackend
from .registry import Registry
from .settings import Settings, get_settings
from .signatures import checked_arguments

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Bytes copied at a time by :meth:`Job.save`.
COPY_BUFFER_BYTES = 1024 * 1024

#: Where a client waits for a job to finish: the outcome channel, whose SUCCESS payload may
#: carry the result, and the first channel, all that workers of an older version ring.
WAITED_CHANNELS = (OUTCOME_CHANNEL, FINISHED_CHANNEL)

#: What :meth:`Job._inline_value` returns when the notification's result cannot be used.
_READ = object()


def submit(actor_name: str, /, *args: Any, **kwargs: Any) -> Job:
    """Send a message to a registered actor by name and return its :class:`Job`.

    The arguments are checked against the actor's parameters, names and types, before anything
    is sent; the actor's code need not be importable here (see :mod:`geotasks.catalogue`).

    Parameters:
      actor_name: An actor's name, such as ``"shapefile_to_geojson"``: one declared in this
        process, one a worker published to the catalogue, or a built-in one.
      *args: Positional arguments of the actor.
      **kwargs: Keyword arguments of the actor.

    Returns:
      Job: the handle of the new job, already PENDING.

    Raises:
      ActorNotRegistered: when no actor has that name.
      InputError: when an argument is unknown, missing, surplus, not JSON or of the wrong type.
      ConfigurationError: when no broker is configured.
    """
    return submit_with_options(actor_name, args=args, kwargs=kwargs)


def submit_with_options(
    actor_name: str,
    *,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    delay_ms: int | None = None,
    broker: Broker | None = None,
    registry: Registry | None = None,
    database: Database | None = None,
    **options: Any,
) -> Job:
    """Like :func:`submit`, with message options (Dramatiq's ``send_with_options``).

    Parameters:
      actor_name: A registered actor's name.
      args: Positional arguments of the actor.
      kwargs: Keyword arguments of the actor.
      delay_ms: Run no earlier than this many milliseconds from now.
      broker: The broker to send through; by default the one
        :func:`geotasks.broker.setup_broker` builds from the settings.
      registry: Where to look the actor up; by default :func:`geotasks.catalogue.find_actor`.
      database: Where :func:`~geotasks.catalogue.find_actor` reads the published catalogue;
        ``GEOTASKS_DATABASE_URL``'s by default.
      **options: Message options, such as ``result_ttl`` (ms) or ``time_limit`` (ms); only
        options some middleware of the broker declares are accepted.

    Returns:
      Job: the handle of the new job.

    Raises:
      ActorNotRegistered: when no actor has that name.
      InputError: when an argument or option is unknown, missing, surplus or not JSON.
      ConfigurationError: when no broker is configured.
    """
    spec = (
        registry.spec(actor_name)
        if registry is not None
        else find_actor(actor_name, database=database)
    )
    json_args, json_kwargs = checked_arguments(spec, tuple(args), kwargs or {})
    broker = broker if broker is not None else _configured_broker()
    check_message_options(broker, actor_name, options)
    message: Message[Any] = Message(
        queue_name=spec.queue_name,
        actor_name=spec.name,
        args=tuple(json_args),
        kwargs=json_kwargs,
        options=options,
    )
    broker.declare_queue(spec.queue_name)
    mark = outcome_mark()
    sent = broker.enqueue(message, delay=delay_ms)
    logger.debug("Sent message %s to %s", sent.message_id, actor_name)
    return Job.from_message(sent, sent_mark=mark)


def outcome_mark() -> Mark | None:
    """Where the channels a client waits on stand in this process, to take just before sending
    a job (see :meth:`geotasks.postgres.listener.Listener.mark`).

    ``None`` unless this process already listens (it waited for a job before): one that only
    sends never opens a LISTEN connection for it.
    """
    url = get_settings().database_url
    listener = running_listener(url) if url else None
    return listener.mark(*WAITED_CHANNELS) if listener is not None else None


def check_message_options(broker: Broker, actor_name: str, options: Mapping[str, Any]) -> None:
    """Refuse, before anything is sent, a message option no middleware of ``broker`` declares,
    or an ``output_format`` no writer knows (it would fail on the worker).

    Raises:
      InputError: naming the option.
    """
    unknown = sorted(set(options) - broker.actor_options)
    if unknown:
        raise InputError(
            f"unknown message option(s) {', '.join(unknown)} for {actor_name}; "
            f"known: {', '.join(sorted(broker.actor_options))}"
        )
    if OUTPUT_FORMAT_OPTION in options:
        output_format(options[OUTPUT_FORMAT_OPTION])


def _configured_broker() -> Broker:
    # Imported here: building a broker is the sender's business, not the reader's.
    from .broker import setup_broker

    return setup_broker()


@functools.lru_cache(maxsize=16)
def _job_store(database: Database) -> JobStore:
    # Shared by every handle on the pool: building one costs more than a small job's read.
    return JobStore(database)


@functools.lru_cache(maxsize=16)
def _results_backend(database: Database, spool_dir: Path) -> PostgresBackend:
    return PostgresBackend(database=database, spool_dir=spool_dir)


class Job:
    """A handle on one job, found by its id (the Dramatiq message id).

    Creating a handle costs nothing (the database is looked up on first use); every attribute
    reads the current state from Postgres.

    Parameters:
      id: The job id.
      database: The pool to read through; the one of ``GEOTASKS_DATABASE_URL`` by default.
      settings: Settings to use instead of the environment's.
      sent_mark: Where this process's LISTEN channels stood before the job was sent
        (:func:`outcome_mark`; ``submit`` passes it): the first wait needs no read then.
    """

    def __init__(
        self,
        id: str,
        *,
        database: Database | None = None,
        settings: Settings | None = None,
        sent_mark: Mark | None = None,
    ) -> None:
        self.id = str(id)
        self._given_database = database
        self._given_settings = settings
        self._sent_mark = sent_mark

    @functools.cached_property
    def _settings(self) -> Settings:
        return self._given_settings or get_settings()

    @functools.cached_property
    def _database(self) -> Database:
        if self._given_database is not None:
            return self._given_database
        return get_database(
            self._settings.require_database_url(),
            max_connections=self._settings.pool_max_connections,
            connect_timeout_s=self._settings.connect_timeout_s,
        )

    @functools.cached_property
    def _store(self) -> JobStore:
        return _job_store(self._database)

    @functools.cached_property
    def _backend(self) -> PostgresBackend:
        return _results_backend(self._database, self._settings.tmp_dir)

    @classmethod
    def from_message(cls, message: Message[Any], **kwargs: Any) -> Job:
        """Return the job of a sent message (``Job.from_message(actor.send(...))``)."""
        return cls(message.message_id, **kwargs)

    def __repr__(self) -> str:
        return f"Job({self.id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def info(self) -> JobInfo:
        """Return everything known about the job: state, attempts, each state's timestamp.

        Raises:
          JobNotFound: when the id is UNKNOWN.
        """
        info = self._store.get(self.id)
        if info is None:
            raise JobNotFound(
                f"no job {self.id}: it was never sent, its record was deleted after "
                f"GEOTASKS_JOB_RETENTION_S, or it was sent without geotasks' JobStatus middleware"
            )
        return info

    @property
    def status(self) -> JobState:
        """The job's state; UNKNOWN for an id never seen."""
        info = self._store.get(self.id)
        return info.status if info is not None else JobState.UNKNOWN

    def ready(self) -> bool:
        """Whether the job has finished (successfully or not, or it will never run)."""
        return self.status.finished

    def successful(self) -> bool:
        """Whether the job finished with SUCCESS."""
        return self.status is JobState.SUCCESS

    def failed(self) -> bool:
        """Whether the job finished with FAILURE."""
        return self.status is JobState.FAILURE

    @property
    def progress(self) -> Progress | None:
        """What the actor last reported with ``geotasks.progress()``, if anything."""
        info = self._store.get(self.id)
        return info.progress if info is not None else None

    @property
    def error(self) -> JobError | None:
        """What the actor raised (type, message, traceback) when the job failed, or when its last
        attempt failed and it waits to be retried (RETRYING); else ``None``."""
        info = self._store.get(self.id)
        if info is None or info.error is None:
            return None
        if info.result_kind == FAILURE:
            stored = self._backend.header(self.id)
            if stored is not None and stored.error is not None:
                return stored.error
        return info.error

    def cancel(self) -> bool:
        """Cancel the job if nothing of it runs: it waits to start (PENDING, delayed or not), for
        a rate-limit slot (THROTTLED) or for its next retry (RETRYING). A worker then skips it.

        Returns:
          bool: whether it was cancelled; ``False`` when it is running (STARTED) or finished.
        """
        cancelled = self._store.cancel(self.id, ttl_ms=self._settings.result_ttl_s * 1000)
        if cancelled:
            logger.info("Cancelled job %s", self.id)
        return cancelled

    def dismiss(self) -> bool:
        """Forget a finished job: delete its status and its result (``DELETE /jobs/{id}``).

        Returns:
          bool: whether it was deleted; ``False`` when it has not finished or is unknown.
        """
        dismissed = self._store.dismiss(self.id)
        if dismissed:
            logger.info("Dismissed job %s", self.id)
        return dismissed

    def wait(self, timeout: float | None = None) -> JobInfo:
        """Block until the job has finished, without polling: woken by Postgres NOTIFY.

        Parameters:
          timeout: The longest wait in seconds; ``None`` waits as long as it takes.

        Returns:
          JobInfo: the finished job.

        Raises:
          JobTimeout: (a :class:`TimeoutError`) when the timeout passes first.
          JobNotFound: when the id is UNKNOWN.
        """

        def read() -> tuple[JobState, JobInfo]:
            info = self.info()
            return info.status, info

        return self._wait_for(read, timeout)

    def get(self, timeout: float | None = None) -> Any:
        """Wait for the job to finish and return its result, as :attr:`result` does.

        Parameters:
          timeout: The longest wait in seconds; ``None`` waits as long as it takes.

        Raises:
          JobTimeout: (a :class:`TimeoutError`) when the timeout passes first.
          JobFailed: when the actor raised; carries type, message and traceback.
          JobSkipped: when the job was cancelled or skipped.
          ResultExpired: when the result outlived its time to live.
          ResultTooLarge: when the result is too large to parse; stream it instead.
        """
        return self._wait_for(self._read_value, timeout, inline=self._inline_value)

    def _read_value(self) -> tuple[JobState, Any]:
        # Status and result are read together: a small result is one round trip.
        status, stored = self._outcome()
        if not status.finished:
            return status, None
        if stored is None:
            return status, self.result  # no result to read: its reading says why
        return status, self._parsed(self._checked(stored))

    def _inline_value(self, inline: InlineResult, received_at: float) -> Any:
        # A result that came with its SUCCESS notification; read instead once its time to live
        # is over, or when it is above the parse limit (the read raises, saying so).
        if (
            inline.message_id != self.id
            or time.monotonic() - received_at > inline.ttl_ms / 1000
            or len(inline.data) > self._settings.result_parse_max_bytes
        ):
            return _READ
        return self._decoded(inline.kind, inline.data)

    def _outcome(self) -> tuple[JobState, StoredResult | None]:
        status, stored = self._backend.outcome(self.id)
        if status is JobState.UNKNOWN:
            self.info()  # raises JobNotFound, with its explanation
        return status, stored

    def _wait_for(
        self,
        read: Callable[[], tuple[JobState, T]],
        timeout: float | None,
        *,
        inline: Callable[[InlineResult, float], T | object] | None = None,
    ) -> T:
        # Registered before the first read, so a job that finishes in between is not missed;
        # read again each time it rings until the status is a final one. Workers of an older
        # version ring only the first channel: waiting on both, a client never hangs on them.
        # The first read is skipped when nothing can have finished the job yet (it was sent
        # after this process's LISTEN was in effect, and no notification for it arrived), and
        # every read when the notification carries the result.
        deadline = None if timeout is None else time.monotonic() + timeout
        status: JobState | None = None
        listener = get_listener(self._database)
        with listener.expect(WAITED_CHANNELS, self.id, since=self._sent_mark) as finished:
            must_read = not finished.quiet_since_mark
            while True:
                if finished.is_set():
                    finished.clear()
                    payload = finished.payloads.get(OUTCOME_CHANNEL)
                    carried = parse_payload(payload) if inline and payload else None
                    if carried is not None and inline is not None:
                        value = inline(carried, finished.received_at)
                        if value is not _READ:
                            return cast(T, value)
                    must_read = True
                if must_read:
                    status, value = read()
                    if status.finished:
                        return value
                remaining = None if deadline is None else deadline - time.monotonic()
                if (remaining is not None and remaining <= 0) or not finished.wait(remaining):
                    state = f" (it is {status})" if status is not None else ""
                    raise JobTimeout(f"job {self.id} did not finish within {timeout} s{state}")

    @property
    def result(self) -> Any:
        """The finished job's result, parsed: a GeoJSON result becomes a ``dict``.

        Raises:
          JobNotFinished: when the job has not finished.
          JobFailed: when the actor raised; carries type, message and traceback.
          JobSkipped: when the job was cancelled or skipped.
          ResultExpired: when the result outlived its time to live.
          ResultNotStored: when the actor does not store results.
          ResultTooLarge: above ``GEOTASKS_RESULT_PARSE_MAX_BYTES``; use :meth:`save` or
            :meth:`open`, which stream.
          ResultIsAFile: when the result is a file of another format (``output_format``); use
            :meth:`save` or :meth:`open`.
        """
        return self._parsed(self._stored_result())

    def _parsed(self, stored: StoredResult) -> Any:
        if stored.kind == FILE:
            raise ResultIsAFile(
                f"the result of job {self.id} is a {stored.media_type} file, not JSON: save it "
                f"with job.save(path) (a folder gets {stored.file_name}) or read it with "
                "job.open()"
            )
        limit = self._settings.result_parse_max_bytes
        if stored.size_bytes > limit:
            raise ResultTooLarge(
                f"the result of job {self.id} is {stored.size_bytes:,} bytes, more than "
                f"GEOTASKS_RESULT_PARSE_MAX_BYTES ({limit:,}): stream it with "
                f"job.save(path) or job.open() instead of parsing it"
            )
        with self._backend.open(stored) as stream:
            return self._decoded(stored.kind, stream.read())

    def _decoded(self, kind: str, data: bytes) -> Any:
        if kind == GEOJSON:
            return orjson.loads(data)
        return self._backend.encoder.decode(data)

    def result_info(self) -> StoredResult:
        """Return the stored result's header: kind, media type, size, expiry.

        Raises:
          the errors of :attr:`result`, except :class:`ResultTooLarge`.
        """
        return self._stored_result()

    def open(self) -> BinaryIO:
        """Return a seekable binary stream over the result (GeoJSON, JSON or a file's bytes;
        :meth:`result_info` says which, with its media type and file name).

        Memory stays bounded whatever the size: chunks are fetched as the stream is read.

        Raises:
          the errors of :attr:`result`, except :class:`ResultTooLarge`.
        """
        return self._backend.open(self._stored_result())

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Stream the result into a file; the file appears complete or not at all.

        Parameters:
          path: The file to write, or an existing folder to write it into under its own name
            (``<job id>.geojson``, ``.fgb``, ``.gpkg``, ``.zip``, ``.json``).

        Returns:
          Path: where it was written.

        Raises:
          the errors of :attr:`result`, except :class:`ResultTooLarge`.
        """
        target = Path(path)
        if target.is_dir():
            target = target / self._stored_result().file_name
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with self.open() as source, partial.open("wb") as sink:
                shutil.copyfileobj(source, sink, COPY_BUFFER_BYTES)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return target

    def _stored_result(self) -> StoredResult:
        _status, stored = self._outcome()
        if stored is not None:
            return self._checked(stored)
        # No result: the job's record says why (read again: it may have moved meanwhile).
        info = self.info()
        if info.status is JobState.EXPIRED:
            raise ResultExpired(
                f"the result of job {self.id} expired at {info.expired_at or info.expires_at}"
            )
        if info.status is JobState.FAILURE:
            error = info.error or JobError("Exception", "unknown")
            raise JobFailed(self.id, error.type_name, error.message, error.traceback)
        if info.status in (JobState.SKIPPED, JobState.CANCELLED):
            reason = f" ({info.error.message})" if info.error is not None else ""
            raise JobSkipped(
                f"job {self.id} was {info.status}{reason} and has no result", status=info.status
            )
        if info.status is JobState.SUCCESS:
            if info.result_kind is not None:
                raise ResultExpired(f"the result of job {self.id} expired")
            raise ResultNotStored(
                f"job {self.id} succeeded but {info.actor_name} does not store results "
                f"(declare it with store_results=True)"
            )
        raise JobNotFinished(f"job {self.id} has not finished: it is {info.status}")

    def _checked(self, stored: StoredResult) -> StoredResult:
        # A stored failure is raised as JobFailed, with the actor's type, message and traceback.
        if stored.kind == FAILURE:
            self._backend.unwrap_result(stored)
        return stored
