"""A Dramatiq result backend on Postgres, keyed by message id, for results of any size.

A result is a header row in ``geotasks.result`` plus, when its payload is larger than one chunk
(1 MiB), ``geotasks.result_chunk`` rows: nothing comes near Postgres' per-value limit, and neither
side ever holds more than a chunk or two in memory. A
:class:`~geotasks.geo.result.GeoJSONResult` is stored as the bytes it holds, never re-encoded;
other values go through the Dramatiq encoder. A failure stores the exception's type, message and
traceback. A blocking get registers with the process's LISTEN connection, checks the table, and
sleeps until the storing transaction's NOTIFY (payload: the message id) wakes it. A worker
thread stores the small result of the job it ran together with the job's SUCCESS, and those of
threads that finish at the same time share one statement (:mod:`geotasks.postgres.group_commit`).
"""

from __future__ import annotations

import io
import logging
import struct
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

from dramatiq.encoder import Encoder, JSONEncoder
from dramatiq.message import Message
from dramatiq.middleware import TimeLimitExceeded
from dramatiq.results import ResultBackend, ResultMissing, ResultTimeout
from dramatiq.results.backend import DEFAULT_TIMEOUT, Missing
from psycopg2.extensions import cursor as Cursor

from ..errors import DatabaseError, JobFailed, ResultExpired
from ..geo.result import FileResult, GeoJSONResult, SpooledResult
from ..job_model import JobError, JobState
from .group_commit import GroupCommit
from .job_status import FINISHED_CHANNEL, JobStore, RunningJob, running_job
from .listener import get_listener
from .pool import Database, PreparedStatement, bind_prepared, execute_prepared
from .queries import load_queries

logger = logging.getLogger(__name__)

#: Payloads up to this size are stored inline in the header row; larger ones in chunks of it.
CHUNK_BYTES = 1024 * 1024
#: Longest traceback stored with a failure, in characters (the innermost frames are kept).
MAX_TRACEBACK_CHARS = 64 * 1024
#: Buffer of the streams :meth:`PostgresBackend.open` returns, in bytes.
READ_BUFFER_BYTES = 64 * 1024
#: Bytes psycopg2 moves per read or write of a COPY.
COPY_BUFFER_BYTES = 256 * 1024
#: Largest result, in bytes, that shares a statement with the results of other worker threads
#: (group commit); a larger one costs more than a statement's fixed cost and goes alone.
GROUP_MAX_BYTES = 64 * 1024

#: The suffix of a saved result, by media type.
_SUFFIXES = {
    "application/geo+json": ".geojson",
    "application/json": ".json",
    "application/flatgeobuf": ".fgb",
    "application/geopackage+sqlite3": ".gpkg",
    "application/zip": ".zip",
}

#: ``kind`` of a result: a value encoded by the Dramatiq encoder.
VALUE = "value"
#: ``kind`` of a result: the bytes of a GeoJSON document.
GEOJSON = "geojson"
#: ``kind`` of a result: the bytes of a file of another format (FlatGeobuf, GeoPackage, zip).
FILE = "file"
#: ``kind`` of a result: what a failed actor raised.
FAILURE = "failure"


@dataclass(frozen=True)
class StoredResult:
    """The header of a stored result.

    Attributes:
      kind: ``value``, ``geojson``, ``file`` or ``failure``.
      media_type: ``application/geo+json`` for GeoJSON, ``application/json`` for JSON values,
        the file's own (``application/flatgeobuf``…) for a file.
      size_bytes: Length of the payload (0 for a failure).
      error: For a failure, what the actor raised.
    """

    message_id: str
    kind: str
    media_type: str
    size_bytes: int
    stored_at: datetime
    expires_at: datetime
    error: JobError | None = None
    chunk_bytes: int | None = field(default=None, repr=False)
    inline: bytes | None = field(default=None, repr=False)

    @property
    def file_name(self) -> str:
        """The name to save the payload under (see :func:`result_file_name`)."""
        return result_file_name(self.message_id, self.media_type)


def result_file_name(message_id: str, media_type: str) -> str:
    """The name a result is saved under: the job id and the suffix of its media type."""
    return f"{message_id}{_SUFFIXES.get(media_type, '.bin')}"


@dataclass(frozen=True)
class _Success:
    """An inline result of the job a worker thread ran, to store with the job's SUCCESS.

    Attributes:
      params: The parameters of the ``store`` query.
      job: The job, as ``JobStatus`` announced it.
    """

    params: dict[str, Any]
    job: RunningJob

    @property
    def message_id(self) -> str:
        return str(self.params["message_id"])


@dataclass(frozen=True)
class ExpiredCounts:
    """What :func:`delete_expired` removed.

    Attributes:
      results: Results (with their chunks) deleted.
      jobs_expired: Finished jobs turned into EXPIRED tombstones.
      tombstones_deleted: Tombstones older than the retention period deleted.
    """

    results: int
    jobs_expired: int
    tombstones_deleted: int


class PostgresBackend(ResultBackend):
    """A result backend for Postgres whose key is the message id alone.

    Parameters:
      database: The connection pool to store results through.
      encoder: Encodes values that are not GeoJSON; Dramatiq's global encoder by default.
      chunk_bytes: Size of the pieces large payloads are stored in.
      spool_dir: Where GeoJSON results read back spool to disk (the system default if ``None``).
    """

    def __init__(
        self,
        *,
        database: Database,
        encoder: Encoder | None = None,
        chunk_bytes: int = CHUNK_BYTES,
        spool_dir: Path | None = None,
    ) -> None:
        super().__init__(namespace="geotasks", encoder=encoder)
        self.database = database
        self.chunk_bytes = chunk_bytes
        self.spool_dir = spool_dir
        self._queries = load_queries("results")
        # On the path of every job: prepared once per connection (planning a statement costs
        # Postgres as much as running it).
        self._store_statement = PreparedStatement("geotasks_result_store", self._queries["store"])
        self._header_statement = PreparedStatement(
            "geotasks_result_header", self._queries["header"]
        )
        self._outcome_statement = PreparedStatement(
            "geotasks_result_outcome", self._queries["outcome"]
        )
        self._successes_statement = PreparedStatement(
            "geotasks_result_store_successes", self._queries["store_successes"]
        )
        # The results (and SUCCESS) of worker threads that finish at the same time share a
        # statement and a commit.
        self._successes: GroupCommit[_Success, None] = GroupCommit(
            database,
            write_one=self._store_success,
            write_many=self._store_successes,
            key=lambda success: success.message_id,
        )

    def build_message_key(self, message: Message[Any]) -> str:
        """Return the message id: an application needs nothing else to find a result."""
        return str(message.message_id)

    def get_result(
        self, message: Message[Any], *, block: bool = False, timeout: int | None = None
    ) -> Any:
        """Get a result, waiting on LISTEN/NOTIFY rather than polling when ``block`` is true.

        Parameters:
          message: The message whose result to get.
          block: Whether to wait until the result is stored.
          timeout: The longest wait, in milliseconds; 10 seconds by default.

        Returns:
          The value, or a :class:`~geotasks.geo.result.GeoJSONResult`.

        Raises:
          ResultMissing: When ``block`` is false and there is no result (yet, or any more).
          ResultTimeout: When waiting timed out.
          JobFailed: When the actor failed; also a :class:`dramatiq.results.ResultFailure`.
        """
        message_id = self.build_message_key(message)
        if block:
            timeout_ms = DEFAULT_TIMEOUT if timeout is None else timeout
            stored = self.wait(message_id, timeout_ms / 1000)
            if stored is None:
                raise ResultTimeout(message)  # type: ignore[no-untyped-call]
        else:
            stored = self.header(message_id)
            if stored is None:
                raise ResultMissing(message)  # type: ignore[no-untyped-call]
        return self.unwrap_result(self.load(stored))

    def unwrap_result(self, res: Any) -> Any:
        """Raise :class:`JobFailed` for a stored failure; return anything else as it is."""
        if isinstance(res, StoredResult):
            error = res.error or JobError("Exception", "unknown")
            raise JobFailed(res.message_id, error.type_name, error.message, error.traceback)
        return res

    def store_exception(self, message: Message[Any], exception: BaseException, ttl: int) -> None:
        """Store what the actor raised: type, message and traceback.

        Parameters:
          message: The failed message.
          exception: What the actor raised.
          ttl: How long to keep it, in milliseconds.
        """
        error = describe_exception(exception, fallback_traceback=message.options.get("traceback"))
        self._write(
            self.build_message_key(message),
            kind=FAILURE,
            media_type="application/json",
            size_bytes=0,
            chunks=lambda: iter(()),
            ttl_ms=ttl,
            error=error,
        )

    def _get(self, message_key: str) -> Any:
        stored = self.header(message_key)
        return Missing if stored is None else self.load(stored)

    def _store(self, message_key: str, result: Any, ttl: int) -> None:
        if isinstance(result, SpooledResult):
            document = result
            self._write(
                message_key,
                kind=GEOJSON if isinstance(document, GeoJSONResult) else FILE,
                media_type=document.media_type,
                size_bytes=document.size_bytes,
                chunks=lambda: _exact_chunks(
                    document.iter_chunks(self.chunk_bytes), self.chunk_bytes
                ),
                ttl_ms=ttl,
            )
            return
        encoded = memoryview(self.encoder.encode(result))
        self._write(
            message_key,
            kind=VALUE,
            media_type=(
                "application/json"
                if isinstance(self.encoder, JSONEncoder)
                else "application/octet-stream"
            ),
            size_bytes=len(encoded),
            chunks=lambda: (
                encoded[start : start + self.chunk_bytes]
                for start in range(0, len(encoded), self.chunk_bytes)
            ),
            ttl_ms=ttl,
        )

    def _write(
        self,
        message_id: str,
        *,
        kind: str,
        media_type: str,
        size_bytes: int,
        chunks: Callable[[], Iterator[bytes | memoryview]],
        ttl_ms: int,
        error: JobError | None = None,
    ) -> None:
        inline = size_bytes <= self.chunk_bytes
        running = running_job()
        # Storing the result of the job this thread runs is its success: record both in one
        # transaction, saving the hot path a commit (JobStatus then has nothing left to write).
        finishing = (
            running
            if running is not None
            and running.message_id == message_id
            and kind != FAILURE
            and running.store.database.url == self.database.url
            else None
        )

        params = {
            "message_id": message_id,
            "kind": kind,
            "media_type": media_type,
            "size_bytes": size_bytes,
            "chunk_bytes": None if inline else self.chunk_bytes,
            "data": b"".join(chunks()) if inline and kind != FAILURE else None,
            "error_type": error.type_name if error else None,
            "error_message": error.message if error else None,
            "error_traceback": error.traceback if error else None,
            "ttl_ms": ttl_ms,
        }

        def finish(cursor: Cursor) -> None:
            if finishing is not None:
                finishing.store.apply(
                    cursor,
                    message_id,
                    actor_name=finishing.actor_name,
                    queue_name=finishing.queue_name,
                    status=JobState.SUCCESS,
                    attempt=finishing.attempt,
                    sent_at_ms=finishing.sent_at_ms,
                    ttl_ms=ttl_ms,
                )

        def write_chunked(cursor: Cursor) -> None:
            cursor.execute(self._queries["store"], params)
            rows = _CopyRows(message_id, chunks())
            cursor.copy_expert(self._queries["copy_chunks"], rows, size=COPY_BUFFER_BYTES)
            if rows.data_bytes != size_bytes:
                raise ValueError(
                    f"result of {message_id} announced {size_bytes} bytes "
                    f"but yielded {rows.data_bytes}"
                )
            finish(cursor)

        started = time.monotonic()
        if inline and finishing is not None:
            success = _Success(params, finishing)
            if size_bytes <= GROUP_MAX_BYTES:
                self._successes.write(success)
            else:
                self.database.transaction(
                    lambda cursor: self._store_success(cursor, success), single_statement=True
                )
        elif inline:
            self.database.transaction(
                lambda cursor: execute_prepared(cursor, self._store_statement, params),
                single_statement=True,
            )
        else:
            self.database.transaction(write_chunked)
        if finishing is not None:
            finishing.success_recorded = True
        logger.debug(
            "Stored %s result of message %s: %d bytes in %.3f s",
            kind,
            message_id,
            size_bytes,
            time.monotonic() - started,
        )

    def _store_success(self, cursor: Cursor, success: _Success) -> None:
        # The header and SUCCESS go in one string: one round trip, one implicit transaction,
        # so the result is durable before the status says SUCCESS.
        job = success.job
        job.store.apply(
            cursor,
            success.message_id,
            actor_name=job.actor_name,
            queue_name=job.queue_name,
            status=JobState.SUCCESS,
            attempt=job.attempt,
            sent_at_ms=job.sent_at_ms,
            ttl_ms=success.params["ttl_ms"],
            preceded_by=bind_prepared(cursor, self._store_statement, success.params),
        )

    def _store_successes(self, cursor: Cursor, many: Sequence[_Success]) -> list[None]:
        arrays = {
            array: [success.params[name] for success in many]
            for array, name in _SUCCESS_RESULT_ARRAYS.items()
        } | {
            array: [getattr(success.job, name) for success in many]
            for array, name in _SUCCESS_JOB_ARRAYS.items()
        }
        execute_prepared(cursor, self._successes_statement, arrays)
        for message_id, status, applied in cursor.fetchall():
            if not applied:
                logger.debug("Job %s: SUCCESS refused, status stays %s", message_id, status)
        return [None] * len(many)

    def header(self, message_id: str) -> StoredResult | None:
        """Return the header of an unexpired result, or ``None`` when there is none."""

        def work(cursor: Cursor) -> StoredResult | None:
            execute_prepared(cursor, self._header_statement, {"message_id": message_id})
            row = cursor.fetchone()
            return None if row is None else _stored_result(message_id, row)

        return self.database.transaction(work, single_statement=True)

    def outcome(self, message_id: str) -> tuple[JobState, StoredResult | None]:
        """Return a job's status and its unexpired result's header, read together (one round
        trip, one snapshot: the status and the result agree).

        Returns:
          The visible status (UNKNOWN for an id never seen) and the header, or ``None`` when
          there is no result (yet, or any more).
        """

        def work(cursor: Cursor) -> tuple[JobState, StoredResult | None]:
            execute_prepared(cursor, self._outcome_statement, {"message_id": message_id})
            row = cursor.fetchone()
            if row is None:
                return JobState.UNKNOWN, None
            status, *header = row
            stored = None if header[0] is None else _stored_result(message_id, header)
            return JobState(status), stored

        return self.database.transaction(work, single_statement=True)

    def wait(self, message_id: str, timeout_s: float) -> StoredResult | None:
        """Wait until a result is stored and return its header, or ``None`` on timeout.

        Sleeps on the process's LISTEN connection: registered before the table is checked, so
        a result stored in between is not missed.
        """
        deadline = time.monotonic() + timeout_s
        with get_listener(self.database).expect(FINISHED_CHANNEL, message_id) as event:
            while True:
                stored = self.header(message_id)
                if stored is not None:
                    return stored
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not event.wait(remaining):
                    return None
                event.clear()

    def open(self, stored: StoredResult) -> BinaryIO:
        """Return a seekable binary stream over a result's payload, read a chunk at a time.

        Raises:
          JobFailed: When the result is a failure: there is nothing to read.
          ResultExpired: While reading, when the result expired or was replaced.
        """
        if stored.kind == FAILURE:
            self.unwrap_result(stored)
        return cast(BinaryIO, io.BufferedReader(_ChunkReader(self, stored), READ_BUFFER_BYTES))

    def load(self, stored: StoredResult) -> Any:
        """Return a result's value: decoded, a :class:`GeoJSONResult`, or ``stored`` for a failure.

        The value is what :meth:`unwrap_result` expects; use :meth:`get_result` for the whole.
        """
        if stored.kind == FAILURE:
            return stored
        with self.open(stored) as stream:
            if stored.kind == GEOJSON:
                return GeoJSONResult.from_stream(stream, dir=self.spool_dir)
            if stored.kind == FILE:
                file = FileResult(stored.media_type, stored.file_name, dir=self.spool_dir)
                file.fill_from(stream)
                return file
            return self.encoder.decode(stream.read())

    def read_chunk(self, stored: StoredResult, seq: int) -> bytes:
        """Return chunk ``seq`` of a result's payload.

        Raises:
          ResultExpired: When the result expired or was replaced since ``stored`` was read.
        """
        if stored.inline is not None:
            return stored.inline

        def work(cursor: Cursor) -> bytes | None:
            statement = cursor.mogrify(
                self._queries["copy_chunk"],
                {"message_id": stored.message_id, "seq": seq, "stored_at": stored.stored_at},
            )
            sink = _CopySink()
            cursor.copy_expert(statement.decode(), sink, size=COPY_BUFFER_BYTES)
            return sink.single_value()

        data = self.database.transaction(work, single_statement=True)
        if data is None:
            raise ResultExpired(
                f"the result of job {stored.message_id} expired or was replaced while being read"
            )
        return data


def _stored_result(message_id: str, row: Sequence[Any]) -> StoredResult:
    # A row of the `header` query, or the header columns of `outcome`.
    (
        kind,
        media_type,
        size_bytes,
        chunk_bytes,
        data,
        error_type,
        error_message,
        error_traceback,
        stored_at,
        expires_at,
    ) = row
    return StoredResult(
        message_id=message_id,
        kind=kind,
        media_type=media_type,
        size_bytes=size_bytes,
        stored_at=stored_at,
        expires_at=expires_at,
        error=(
            JobError(error_type, error_message or "", error_traceback or "")
            if kind == FAILURE
            else None
        ),
        chunk_bytes=chunk_bytes,
        inline=bytes(data) if data is not None else None,
    )


#: The arrays of ``store_successes`` from the ``store`` query's parameters, by parameter.
_SUCCESS_RESULT_ARRAYS = {
    "message_ids": "message_id",
    "kinds": "kind",
    "media_types": "media_type",
    "size_bytes": "size_bytes",
    "data": "data",
    "ttl_ms": "ttl_ms",
}
#: The arrays of ``store_successes`` from the running job, by attribute.
_SUCCESS_JOB_ARRAYS = {
    "actor_names": "actor_name",
    "queue_names": "queue_name",
    "attempts": "attempt",
    "sent_at_ms": "sent_at_ms",
}


def _exact_chunks(pieces: Iterator[bytes], chunk_bytes: int) -> Iterator[bytes]:
    # Readers find byte N in chunk N // chunk_bytes: every chunk but the last must be full,
    # whatever sizes the producer yields.
    pending = bytearray()
    for piece in pieces:
        pending += piece
        while len(pending) >= chunk_bytes:
            yield bytes(pending[:chunk_bytes])
            del pending[:chunk_bytes]
    if pending:
        yield bytes(pending)


#: Signature, flags and header extension length that open PostgreSQL's binary COPY format.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
#: The field count -1 that ends it.
_COPY_TRAILER = struct.pack("!h", -1)


class _CopyRows(io.RawIOBase):
    """Chunks as binary COPY rows ``(message_id, seq, data)``, produced as psycopg2 reads."""

    def __init__(self, message_id: str, chunks: Iterator[bytes | memoryview]) -> None:
        super().__init__()
        self.data_bytes = 0
        self._pieces = self._generate(message_id.encode(), chunks)
        self._piece = memoryview(b"")

    def _generate(
        self, message_id: bytes, chunks: Iterator[bytes | memoryview]
    ) -> Iterator[bytes | memoryview]:
        yield _COPY_HEADER
        for seq, chunk in enumerate(chunks):
            yield (
                struct.pack("!hi", 3, len(message_id))
                + message_id
                + struct.pack("!iii", 4, seq, len(chunk))
            )
            yield chunk
            self.data_bytes += len(chunk)
        yield _COPY_TRAILER

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """Return the next bytes of the COPY stream (at most ``size``), ``b""`` at its end."""
        while not self._piece:
            next_piece = next(self._pieces, None)
            if next_piece is None:
                return b""
            self._piece = memoryview(next_piece)
        count = len(self._piece) if size < 0 else min(size, len(self._piece))
        data = bytes(self._piece[:count])
        self._piece = self._piece[count:]
        return data


class _CopySink:
    """Collects the output of a binary ``COPY … TO STDOUT`` of one ``bytea`` column."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        return len(data)

    def single_value(self) -> bytes | None:
        """Return the first row's value, or ``None`` when the COPY produced no row."""
        view = memoryview(self._buffer)
        if bytes(view[:11]) != _COPY_HEADER[:11]:
            raise DatabaseError("unexpected binary COPY output from PostgreSQL")
        (extension_bytes,) = struct.unpack_from("!i", view, 15)
        offset = 19 + extension_bytes
        (fields,) = struct.unpack_from("!h", view, offset)
        if fields == -1:
            return None
        (length,) = struct.unpack_from("!i", view, offset + 2)
        start = offset + 6
        return bytes(view[start : start + length])


class _ChunkReader(io.RawIOBase):
    """A raw, seekable stream over a stored payload that holds one chunk at a time."""

    def __init__(self, backend: PostgresBackend, stored: StoredResult) -> None:
        self._backend = backend
        self._stored = stored
        self._chunk_bytes = stored.chunk_bytes or max(stored.size_bytes, 1)
        self._position = 0
        self._seq = -1
        self._chunk = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._position >= self._stored.size_bytes:
            return 0
        seq, offset = divmod(self._position, self._chunk_bytes)
        if seq != self._seq:
            self._chunk = self._backend.read_chunk(self._stored, seq)
            self._seq = seq
        count = min(len(buffer), len(self._chunk) - offset)
        buffer[:count] = self._chunk[offset : offset + count]
        self._position += count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence == io.SEEK_END:
            offset += self._stored.size_bytes
        if offset < 0:
            raise ValueError("negative seek position")
        self._position = offset
        return offset

    def tell(self) -> int:
        return self._position


def describe_exception(
    exception: BaseException, *, fallback_traceback: str | None = None
) -> JobError:
    """Return the type, message and traceback of an exception, for storing.

    Parameters:
      exception: What the actor raised.
      fallback_traceback: Used when the exception carries no traceback (Dramatiq's Retries
        records one in ``message.options["traceback"]``).
    """
    if exception.__traceback__ is not None:
        text = "".join(traceback.format_exception(exception))
    else:
        text = fallback_traceback or ""
    if len(text) > MAX_TRACEBACK_CHARS:
        text = "…" + text[-MAX_TRACEBACK_CHARS:]
    return JobError(type(exception).__name__, str(exception) or _explain(exception), text)


def _explain(exception: BaseException) -> str:
    # Dramatiq raises some of its own exceptions without a message; a client reading the job
    # must still learn what happened.
    if isinstance(exception, TimeLimitExceeded):
        return (
            "the job ran longer than its time limit and was stopped (the actor's time_limit "
            "option; GEOTASKS_GEO_TIME_LIMIT_S for the geo actors); it is not retried"
        )
    return f"{type(exception).__name__} (no message)"


def delete_expired(
    database: Database, *, retention_s: int, batch_size: int = 1000
) -> ExpiredCounts:
    """Delete results past their time to live and expire their jobs; for a periodic actor.

    Works in batches of short transactions, and two sweepers running at once share the work.

    Parameters:
      database: The pool to use.
      retention_s: How long an EXPIRED tombstone is kept before its id reads UNKNOWN.
      batch_size: Rows per transaction.

    Returns:
      ExpiredCounts: how many results, jobs and tombstones were affected.

    Raises:
      DatabaseUnavailable: when Postgres cannot be reached.
    """
    queries = load_queries("results")
    jobs = JobStore(database)

    def delete_results(cursor: Cursor) -> int:
        cursor.execute(queries["delete_expired"], {"batch_size": batch_size})
        return int(cursor.rowcount)

    results = jobs_expired = tombstones_deleted = 0
    while True:
        deleted = database.transaction(delete_results)
        tombstoned, purged = jobs.expire(retention_s=retention_s, batch_size=batch_size)
        results += deleted
        jobs_expired += tombstoned
        tombstones_deleted += purged
        if max(deleted, tombstoned, purged) < batch_size:
            break
    if results or jobs_expired or tombstones_deleted:
        logger.info(
            "Expired %d results, %d jobs; deleted %d tombstones",
            results,
            jobs_expired,
            tombstones_deleted,
        )
    return ExpiredCounts(results, jobs_expired, tombstones_deleted)
