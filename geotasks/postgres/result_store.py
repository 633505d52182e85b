"""The result store: every statement on ``geotasks.result`` and ``geotasks.result_chunk``.

A result is a header row plus, when its payload is larger than one chunk (1 MiB),
``result_chunk`` rows (:mod:`geotasks.postgres.result_chunks`). The result of the job a worker
thread ran is stored together with the job's SUCCESS (:meth:`ResultStore.write` with
``success``, :mod:`geotasks.postgres.result_success`): one transaction, so no status says
SUCCESS before its result is stored.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, cast

from psycopg2.extensions import cursor as Cursor

from ..errors import ResultExpired
from ..job_model import JobError, JobState
from .job_status import JobRun
from .pool import Database, PreparedStatement, execute_prepared
from .queries import load_queries
from .result_chunks import COPY_BUFFER_BYTES, ChunkReader, CopyRows, CopySink
from .result_success import SuccessWriter

logger = logging.getLogger(__name__)

#: Payloads up to this size are stored inline in the header row; larger ones in chunks of it.
CHUNK_BYTES = 1024 * 1024
#: Buffer of the streams :meth:`ResultStore.open` returns, in bytes.
READ_BUFFER_BYTES = 64 * 1024

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


class ResultStore:
    """Reads and writes results through a connection pool; the one owner of ``results.sql``.

    Parameters:
      database: The pool to use.
      chunk_bytes: Size of the pieces large payloads are stored in.
    """

    def __init__(self, database: Database, *, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.database = database
        self.chunk_bytes = chunk_bytes
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
        #: Stores results with their job's SUCCESS.
        self.successes = SuccessWriter(database, self._store_statement)

    def write(
        self,
        message_id: str,
        *,
        kind: str,
        media_type: str,
        size_bytes: int,
        chunks: Callable[[], Iterator[bytes | memoryview]],
        ttl_ms: int,
        error: JobError | None = None,
        success: JobRun | None = None,
    ) -> None:
        """Store (or replace) a result; rings the doorbell of clients waiting for it.

        Parameters:
          message_id: The job's id.
          kind: ``value``, ``geojson``, ``file`` or ``failure``.
          media_type: The payload's media type.
          size_bytes: The payload's length; ``chunks`` must yield exactly as many bytes.
          chunks: Returns the payload in chunks of :attr:`chunk_bytes` (the last may be
            shorter); called once.
          ttl_ms: How long the result is kept, in milliseconds.
          error: For a failure, what the actor raised.
          success: The attempt that produced the result, when its SUCCESS is to be recorded in
            the same transaction (never for a failure).

        Raises:
          ValueError: When ``chunks`` did not yield ``size_bytes``, or ``success`` is another
            job's or comes with a failure.
          DatabaseUnavailable: When Postgres cannot be reached.
        """
        if success is not None and (success.message_id != message_id or kind == FAILURE):
            raise ValueError(f"SUCCESS of {success.message_id} cannot go with this result")
        inline = size_bytes <= self.chunk_bytes
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

        def write_chunked(cursor: Cursor) -> None:
            cursor.execute(self._queries["store"], params)
            rows = CopyRows(message_id, chunks())
            cursor.copy_expert(self._queries["copy_chunks"], rows, size=COPY_BUFFER_BYTES)
            if rows.data_bytes != size_bytes:
                raise ValueError(
                    f"result of {message_id} announced {size_bytes} bytes "
                    f"but yielded {rows.data_bytes}"
                )
            if success is not None:
                self.successes.record(cursor, success, ttl_ms)

        started = time.monotonic()
        if inline and success is not None:
            self.successes.write(params, success)
        elif inline:
            self.database.transaction(
                lambda cursor: execute_prepared(cursor, self._store_statement, params),
                single_statement=True,
            )
        else:
            self.database.transaction(write_chunked)
        logger.debug(
            "Stored %s result of message %s: %d bytes in %.3f s",
            kind,
            message_id,
            size_bytes,
            time.monotonic() - started,
        )

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

    def open(self, stored: StoredResult) -> BinaryIO:
        """Return a seekable binary stream over a result's payload, read a chunk at a time.

        Raises:
          ResultExpired: While reading, when the result expired or was replaced.
        """
        reader = ChunkReader(
            lambda seq: self.read_chunk(stored, seq),
            stored.size_bytes,
            stored.chunk_bytes or max(stored.size_bytes, 1),
        )
        return cast(BinaryIO, io.BufferedReader(reader, READ_BUFFER_BYTES))

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
            sink = CopySink()
            cursor.copy_expert(statement.decode(), sink, size=COPY_BUFFER_BYTES)
            return sink.single_value()

        data = self.database.transaction(work, single_statement=True)
        if data is None:
            raise ResultExpired(
                f"the result of job {stored.message_id} expired or was replaced while being read"
            )
        return data

    def delete_expired(self, *, batch_size: int) -> int:
        """Delete one batch of results past their time to live (chunks with them).

        Returns:
          int: results deleted; call again while it equals ``batch_size``.
        """

        def work(cursor: Cursor) -> int:
            cursor.execute(self._queries["delete_expired"], {"batch_size": batch_size})
            return int(cursor.rowcount)

        return self.database.transaction(work)


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
