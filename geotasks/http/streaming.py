"""Streaming a stored result over HTTP: byte ranges, bounded memory.

A result may be hundreds of megabytes. It is read from the results store through a seekable
stream that holds one stored chunk at a time, and handed to the server in pieces of
:data:`PIECE_BYTES`, so a download costs the same memory whatever its size. One byte range
(``bytes=a-b``, ``bytes=a-``, ``bytes=-n``) is honoured; several ranges in one request are
answered with the whole result, which RFC 9110 allows.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import BinaryIO

from .problems import Problem

#: Size of the pieces a result is sent in, in bytes.
PIECE_BYTES = 64 * 1024

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size_bytes: int) -> tuple[int, int] | None:
    """Return the inclusive ``(first, last)`` byte positions a ``Range`` header asks for.

    Parameters:
      header: The ``Range`` header, or ``None``.
      size_bytes: The size of the whole result.

    Returns:
      The range, or ``None`` to send the whole result (no header, several ranges, or a unit
      other than bytes).

    Raises:
      Problem: 416 when the range lies outside the result or is malformed.
    """
    if header is None:
        return None
    header = header.strip()
    if not header.startswith("bytes=") or "," in header:
        return None
    match = _RANGE.match(header.replace(" ", ""))
    unsatisfiable = Problem(
        416,
        f"range {header!r} is not within the result's {size_bytes} bytes",
        headers={"Content-Range": f"bytes */{size_bytes}"},
    )
    if match is None:
        raise unsatisfiable
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text or int(last_text) == 0 or size_bytes == 0:
            raise unsatisfiable
        return max(size_bytes - int(last_text), 0), size_bytes - 1
    first = int(first_text)
    last = int(last_text) if last_text else size_bytes - 1
    if first >= size_bytes or last < first:
        raise unsatisfiable
    return first, min(last, size_bytes - 1)


def iter_stream(stream: BinaryIO, *, first: int, length: int) -> Iterator[bytes]:
    """Yield ``length`` bytes of ``stream`` from position ``first``, and close it.

    The server calls ``next()`` in its thread pool, so the blocking reads from Postgres never
    run on the event loop; a client that disconnects closes the generator, and the stream.
    """
    with contextlib.closing(stream):
        if first:
            stream.seek(first)
        remaining = length
        while remaining > 0:
            piece = stream.read(min(PIECE_BYTES, remaining))
            if not piece:
                break
            remaining -= len(piece)
            yield piece
