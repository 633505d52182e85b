"""A result's payload in chunks: written with one binary COPY, read back a chunk at a time.

Readers find byte N in chunk N // chunk_bytes, so every chunk but the last is full. Neither
side holds more than a chunk or two in memory, and the bytes travel as they are (binary COPY;
INSERT or SELECT would double them into hex text).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import DatabaseError

#: Bytes psycopg2 moves per read or write of a COPY.
COPY_BUFFER_BYTES = 256 * 1024

#: Signature, flags and header extension length that open PostgreSQL's binary COPY format.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
#: The field count -1 that ends it.
_COPY_TRAILER = struct.pack("!h", -1)


def exact_chunks(pieces: Iterator[bytes], chunk_bytes: int) -> Iterator[bytes]:
    """Re-cut ``pieces`` into chunks of ``chunk_bytes`` (the last may be shorter), whatever
    sizes the producer yields."""
    pending = bytearray()
    for piece in pieces:
        pending += piece
        while len(pending) >= chunk_bytes:
            yield bytes(pending[:chunk_bytes])
            del pending[:chunk_bytes]
    if pending:
        yield bytes(pending)


class CopyRows(io.RawIOBase):
    """Chunks as binary COPY rows ``(message_id, seq, data)``, produced as psycopg2 reads.

    Attributes:
      data_bytes: Payload bytes produced so far.
    """

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


class CopySink:
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


class ChunkReader(io.RawIOBase):
    """A raw, seekable stream over a stored payload that holds one chunk at a time.

    Parameters:
      read_chunk: Returns chunk ``seq`` of the payload.
      size_bytes: The payload's length.
      chunk_bytes: The length of every chunk but the last.
    """

    def __init__(
        self, read_chunk: Callable[[int], bytes], size_bytes: int, chunk_bytes: int
    ) -> None:
        self._read_chunk = read_chunk
        self._size_bytes = size_bytes
        self._chunk_bytes = chunk_bytes
        self._position = 0
        self._seq = -1
        self._chunk = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._position >= self._size_bytes:
            return 0
        seq, offset = divmod(self._position, self._chunk_bytes)
        if seq != self._seq:
            self._chunk = self._read_chunk(seq)
            self._seq = seq
        count = min(len(buffer), len(self._chunk) - offset)
        buffer[:count] = self._chunk[offset : offset + count]
        self._position += count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence == io.SEEK_END:
            offset += self._size_bytes
        if offset < 0:
            raise ValueError("negative seek position")
        self._position = offset
        return offset

    def tell(self) -> int:
        return self._position
