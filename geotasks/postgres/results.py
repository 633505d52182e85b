"""A Dramatiq result backend on Postgres, keyed by message id, for results of any size.

The backend turns what an actor returned into a payload and back: a
:class:`~geotasks.geo.result.GeoJSONResult` (or another spooled file) is stored as the bytes it
holds, never re-encoded; other values go through the Dramatiq encoder; a failure stores the
exception's type, message and traceback. :class:`~geotasks.postgres.result_store.ResultStore`
runs the statements. A blocking get registers with the process's LISTEN connection, checks the
table, and sleeps until the storing transaction's NOTIFY (payload: the message id) wakes it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from dramatiq.broker import MessageProxy
from dramatiq.encoder import Encoder, JSONEncoder
from dramatiq.message import Message
from dramatiq.results import ResultBackend, ResultMissing, ResultTimeout
from dramatiq.results.backend import DEFAULT_TIMEOUT, Missing

from ..errors import JobFailed
from ..failures import MAX_TRACEBACK_CHARS, describe_exception
from ..geo.result import FileResult, GeoJSONResult, SpooledResult
from ..job_model import JobError, JobState
from .job_status import FINISHED_CHANNEL, JobRun
from .listener import get_listener
from .maintenance import ExpiredCounts, delete_expired
from .pool import Database
from .result_chunks import exact_chunks
from .result_store import (
    CHUNK_BYTES,
    FAILURE,
    FILE,
    GEOJSON,
    VALUE,
    ResultStore,
    StoredResult,
    result_file_name,
)

__all__ = [
    "CHUNK_BYTES",
    "FAILURE",
    "FILE",
    "GEOJSON",
    "MAX_TRACEBACK_CHARS",
    "VALUE",
    "ExpiredCounts",
    "PostgresBackend",
    "StoredResult",
    "delete_expired",
    "describe_exception",
    "result_file_name",
]


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
        self.spool_dir = spool_dir
        self.store = ResultStore(database, chunk_bytes=chunk_bytes)

    @property
    def chunk_bytes(self) -> int:
        """Size of the pieces large payloads are stored in, in bytes."""
        return self.store.chunk_bytes

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

    def store_success(
        self, message: Message[Any] | MessageProxy, result: Any, ttl: int, *, job: JobRun
    ) -> None:
        """Store the result of the job this worker thread ran, and its SUCCESS, in one
        transaction (one commit instead of two on the hot path).

        Parameters:
          message: The message that ran.
          result: What the actor returned.
          ttl: How long to keep the result and the job, in milliseconds.
          job: The attempt that ran, as ``JobStatus`` recorded it STARTED.
        """
        self._store_value(str(message.message_id), result, ttl, success=job)

    def store_exception(self, message: Message[Any], exception: BaseException, ttl: int) -> None:
        """Store what the actor raised: type, message and traceback.

        Parameters:
          message: The failed message.
          exception: What the actor raised.
          ttl: How long to keep it, in milliseconds.
        """
        error = describe_exception(exception, fallback_traceback=message.options.get("traceback"))
        self.store.write(
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
        self._store_value(message_key, result, ttl, success=None)

    def _store_value(
        self, message_key: str, result: Any, ttl_ms: int, *, success: JobRun | None
    ) -> None:
        chunk_bytes = self.chunk_bytes
        if isinstance(result, SpooledResult):
            document = result
            kind = GEOJSON if isinstance(document, GeoJSONResult) else FILE
            media_type, size_bytes = document.media_type, document.size_bytes

            def chunks() -> Iterator[bytes | memoryview]:
                return exact_chunks(document.iter_chunks(chunk_bytes), chunk_bytes)

        else:
            encoded = memoryview(self.encoder.encode(result))
            kind, size_bytes = VALUE, len(encoded)
            media_type = (
                "application/json"
                if isinstance(self.encoder, JSONEncoder)
                else "application/octet-stream"
            )

            def chunks() -> Iterator[bytes | memoryview]:
                return (
                    encoded[start : start + chunk_bytes]
                    for start in range(0, len(encoded), chunk_bytes)
                )

        self.store.write(
            message_key,
            kind=kind,
            media_type=media_type,
            size_bytes=size_bytes,
            chunks=chunks,
            ttl_ms=ttl_ms,
            success=success,
        )

    def header(self, message_id: str) -> StoredResult | None:
        """Return the header of an unexpired result, or ``None`` when there is none."""
        return self.store.header(message_id)

    def outcome(self, message_id: str) -> tuple[JobState, StoredResult | None]:
        """Return a job's status and its unexpired result's header, read in one snapshot (see
        :meth:`ResultStore.outcome`)."""
        return self.store.outcome(message_id)

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
        return self.store.open(stored)

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
