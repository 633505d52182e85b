"""The result of a geo job: a finished GeoJSON document, or a file of another format, as bytes.

This is the contract between the layers. A geo operation writes its GeoJSON into a
:class:`GeoJSONResult` while it streams features; the results backend stores the bytes as they
are, in chunks, with no JSON re-encoding; a client reads them back with :meth:`open`,
:meth:`write_to` or :meth:`to_dict`. A result asked for in another format (a FlatGeobuf, a
GeoPackage, a zipped shapefile) is a :class:`FileResult`: the same bytes, stored and read the
same way, with its media type and file name, but not parsed. The bytes are spooled: kept in
memory up to ``spool_max_bytes``, then moved to an anonymous temporary file, so a result of
hundreds of MB costs little memory.

This module imports only the standard library and orjson: a web application can import it
without loading GDAL.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import threading
from collections.abc import Iterator
from os import PathLike
from types import TracebackType
from typing import Any, BinaryIO, Self

import orjson

from geotasks.errors import InputError

#: Bytes kept in memory before a result moves to a temporary file (4 MiB).
DEFAULT_SPOOL_MAX_BYTES = 4 * 1024 * 1024

#: Size of the chunks :meth:`GeoJSONResult.write_to` and ``iter_chunks`` copy (1 MiB).
DEFAULT_CHUNK_BYTES = 1024 * 1024


class SpooledResult:
    """A document held as bytes, in memory or in a temporary file.

    Writers append with :meth:`write`; readers get independent streams from :meth:`open`, so
    several readers (and :meth:`write_to`) may run one after another or at once. The bytes
    are exposed exactly as written. Close the result (or use it as a context manager) to free
    its temporary file; the operating system removes the file if the process dies.

    Parameters:
      spool_max_bytes: Bytes kept in memory before spilling to a temporary file.
      dir: Directory for the temporary file, or ``None`` for the system default.
    """

    #: The IANA media type of the document, for an HTTP ``Content-Type``.
    media_type = "application/octet-stream"

    def __init__(
        self,
        *,
        spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        dir: str | PathLike[str] | None = None,
    ) -> None:
        if spool_max_bytes < 0:
            raise ValueError(f"spool_max_bytes must be >= 0, not {spool_max_bytes}")
        # Owned for the result's lifetime and released by close(), not by a with block.
        self._file = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=spool_max_bytes, mode="w+b", dir=None if dir is None else str(dir)
        )
        # Readers and the writer share one file position: every access seeks under this lock.
        self._lock = threading.Lock()
        self._size = 0
        self._closed = False

    def fill_from(self, fileobj: BinaryIO) -> None:
        """Append ``fileobj`` to its end, in chunks; close the result if that fails.

        The results store uses this to hand back a stored document without holding it all in
        memory.
        """
        try:
            while chunk := fileobj.read(DEFAULT_CHUNK_BYTES):
                self.write(chunk)
        except BaseException:
            self.close()
            raise

    @property
    def size_bytes(self) -> int:
        """Length of the document in bytes."""
        return self._size

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def write(self, data: bytes) -> None:
        """Append ``data`` to the document (used while building it).

        Parameters:
          data: Bytes to append.

        Raises:
          ValueError: If the result is closed.
        """
        with self._lock:
            self._check_open()
            self._file.seek(0, io.SEEK_END)
            self._file.write(data)
            self._size += len(data)

    def open(self) -> BinaryIO:
        """Return a new binary stream over the document, positioned at its start.

        Each stream has its own position, so streams are independent of each other. Close the
        stream when done; it becomes unusable once the result is closed.

        Returns:
          A readable, seekable binary stream.

        Raises:
          ValueError: If the result is closed.
        """
        self._check_open()
        return io.BufferedReader(_Reader(self), buffer_size=DEFAULT_CHUNK_BYTES)

    def iter_chunks(self, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[bytes]:
        """Yield the document in chunks of at most ``chunk_bytes``.

        Parameters:
          chunk_bytes: Largest chunk to yield.

        Returns:
          An iterator of non-empty byte strings whose concatenation is the document.
        """
        if chunk_bytes <= 0:
            raise ValueError(f"chunk_bytes must be > 0, not {chunk_bytes}")
        with self.open() as stream:
            while chunk := stream.read(chunk_bytes):
                yield chunk

    def write_to(self, fileobj: BinaryIO) -> int:
        """Copy the document into ``fileobj``, in chunks.

        Parameters:
          fileobj: A writable binary stream.

        Returns:
          The number of bytes written.
        """
        with self.open() as stream:
            shutil.copyfileobj(stream, fileobj, DEFAULT_CHUNK_BYTES)
        return self._size

    def close(self) -> None:
        """Free the document's memory or temporary file. Closing twice is harmless."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._size} bytes"
        return f"<{type(self).__name__} {state}>"

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"I/O operation on a closed {type(self).__name__}")

    def _read_at(self, position: int, buffer: memoryview) -> int:
        with self._lock:
            self._check_open()
            self._file.seek(position)
            data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class GeoJSONResult(SpooledResult):
    """A GeoJSON document (RFC 7946) held as bytes, in memory or in a temporary file.

    Parameters:
      spool_max_bytes: Bytes kept in memory before spilling to a temporary file.
      dir: Directory for the temporary file, or ``None`` for the system default.
    """

    media_type = "application/geo+json"

    @classmethod
    def from_bytes(cls, data: bytes) -> GeoJSONResult:
        """Build a result holding ``data``, a complete GeoJSON document.

        Parameters:
          data: The document's bytes (UTF-8 JSON).

        Returns:
          A new result; the caller closes it.
        """
        result = cls()
        result.write(data)
        return result

    @classmethod
    def from_stream(
        cls,
        fileobj: BinaryIO,
        spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        dir: str | PathLike[str] | None = None,
    ) -> GeoJSONResult:
        """Build a result by copying ``fileobj`` (a GeoJSON document) to its end, in chunks.

        Parameters:
          fileobj: A binary stream positioned at the start of the document.
          spool_max_bytes: Bytes kept in memory before spilling to a temporary file.
          dir: Directory for the temporary file, or ``None`` for the system default.

        Returns:
          A new result; the caller closes it.
        """
        result = cls(spool_max_bytes=spool_max_bytes, dir=dir)
        result.fill_from(fileobj)
        return result

    def to_dict(self) -> dict[str, Any]:
        """Parse the document.

        Returns:
          The GeoJSON object as a dict.

        Raises:
          InputError: If the bytes are not a JSON object.
        """
        with self.open() as stream:
            data = stream.read()
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"the result is not valid JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise InputError("the result is not a GeoJSON object")
        return document

    @property
    def __geo_interface__(self) -> dict[str, Any]:
        """The parsed document (see :meth:`to_dict`), for shapely, fiona and friends."""
        return self.to_dict()


class FileResult(SpooledResult):
    """A result file of another format (FlatGeobuf, GeoPackage, zipped shapefile), as bytes.

    It is stored and streamed like a GeoJSON document, but never parsed: read it with
    :meth:`open` or :meth:`write_to` (``job.open()``, ``job.save()`` for a queued job).

    Parameters:
      media_type: Its IANA media type, such as ``application/flatgeobuf``.
      file_name: The name to save it under, such as ``parcels.fgb``.
      spool_max_bytes: Bytes kept in memory before spilling to a temporary file.
      dir: Directory for the temporary file, or ``None`` for the system default.
    """

    def __init__(
        self,
        media_type: str,
        file_name: str,
        *,
        spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        dir: str | PathLike[str] | None = None,
    ) -> None:
        super().__init__(spool_max_bytes=spool_max_bytes, dir=dir)
        self.media_type = media_type
        self.file_name = file_name


class _Reader(io.RawIOBase):
    """An independent read position over a :class:`SpooledResult`."""

    def __init__(self, result: SpooledResult) -> None:
        self._result = result
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._result._read_at(self._position, memoryview(buffer).cast("B"))
        self._position += count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self._result.size_bytes + offset
        else:
            raise ValueError(f"invalid whence: {whence}")
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = position
        return position

    def tell(self) -> int:
        return self._position
