"""The GeoJSON document a geo actor returns: bytes spooled to a temporary file, never a dict.

A geo actor writes its FeatureCollection into a :class:`GeoJSONResult` piece by piece; the
results backend stores those bytes as they are, in chunks, and hands a :class:`GeoJSONResult`
back to the client. Only :meth:`GeoJSONResult.to_dict` parses it, so a result of hundreds of
megabytes can travel from the worker to a file or an HTTP response in bounded memory.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO, cast

import orjson

#: Results up to this size stay in memory; larger ones roll over to a temporary file.
DEFAULT_SPOOL_MAX_BYTES = 8 * 1024 * 1024
#: Size of the pieces :meth:`GeoJSONResult.iter_chunks` yields by default.
DEFAULT_CHUNK_BYTES = 1024 * 1024


class GeoJSONResult:
    """A binary GeoJSON document, spooled to disk past ``spool_max_bytes``.

    Parameters:
      spool_max_bytes: Size above which the bytes move from memory to a temporary file.
      dir: Directory of that temporary file (the system default when ``None``).
    """

    #: The IANA media type of GeoJSON (RFC 7946).
    media_type = "application/geo+json"

    def __init__(
        self, *, spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES, dir: str | Path | None = None
    ) -> None:
        if dir is not None:
            Path(dir).mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (closed in close())
            max_size=spool_max_bytes, mode="w+b", dir=None if dir is None else str(dir)
        )
        self._size_bytes = 0

    @classmethod
    def from_bytes(cls, data: bytes) -> GeoJSONResult:
        """Return a result holding ``data``, an encoded GeoJSON document."""
        result = cls(spool_max_bytes=max(len(data), DEFAULT_SPOOL_MAX_BYTES))
        result.write(data)
        return result

    @classmethod
    def from_stream(
        cls,
        fileobj: BinaryIO,
        spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        dir: str | Path | None = None,
    ) -> GeoJSONResult:
        """Return a result holding everything read from ``fileobj``, copied in chunks."""
        result = cls(spool_max_bytes=spool_max_bytes, dir=dir)
        while chunk := fileobj.read(DEFAULT_CHUNK_BYTES):
            result.write(chunk)
        return result

    @property
    def size_bytes(self) -> int:
        """The document's length in bytes."""
        return self._size_bytes

    def write(self, data: bytes) -> int:
        """Append ``data`` to the document; returns the number of bytes written."""
        self._file.seek(0, 2)
        written = self._file.write(data)
        self._size_bytes += written
        return written

    def open(self) -> BinaryIO:
        """Return a binary stream over the document, from its first byte.

        Each stream keeps its own position; closing it leaves the result open.
        """
        return cast(BinaryIO, io.BufferedReader(_View(self._file), DEFAULT_CHUNK_BYTES))

    def iter_chunks(self, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[bytes]:
        """Yield the document in pieces of ``chunk_bytes`` (the last may be shorter)."""
        self._file.seek(0)
        while chunk := self._file.read(chunk_bytes):
            yield chunk

    def write_to(self, fileobj: IO[bytes]) -> int:
        """Copy the document into ``fileobj``; returns the number of bytes copied."""
        self._file.seek(0)
        shutil.copyfileobj(self._file, fileobj, DEFAULT_CHUNK_BYTES)
        return self._size_bytes

    def to_dict(self) -> dict[str, Any]:
        """Parse the document (this holds all of it in memory)."""
        self._file.seek(0)
        document = orjson.loads(self._file.read())
        if not isinstance(document, dict):
            raise ValueError("a GeoJSON document must be a JSON object")
        return document

    @property
    def __geo_interface__(self) -> dict[str, Any]:
        return self.to_dict()

    def close(self) -> None:
        """Release the memory or temporary file."""
        self._file.close()

    def __enter__(self) -> GeoJSONResult:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<GeoJSONResult {self._size_bytes} bytes>"


class _View(io.RawIOBase):
    """A read-only, seekable window on a shared file, with its own position."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._file.seek(self._position)
        data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            self._file.seek(0, io.SEEK_END)
            offset += self._file.tell()
        elif whence == io.SEEK_CUR:
            offset += self._position
        if offset < 0:
            raise ValueError("negative seek position")
        self._position = offset
        return offset

    def tell(self) -> int:
        return self._position
