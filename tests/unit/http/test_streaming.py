"""Byte ranges and the bounded reader behind ``/jobs/{id}/results``."""

from __future__ import annotations

import io

import pytest

from geotasks.http.problems import Problem
from geotasks.http.streaming import PIECE_BYTES, iter_stream, parse_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=990-5000", (990, 999)),
        ("bytes=0-0", (0, 0)),
        ("bytes=0-1,5-6", None),
        ("items=0-5", None),
    ],
)
def test_ranges_of_a_1000_byte_result(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5-3", "bytes=-0", "bytes=abc", "bytes=-"])
def test_unsatisfiable_ranges_are_416_with_the_size(header: str) -> None:
    with pytest.raises(Problem) as raised:
        parse_range(header, 1000)
    assert raised.value.status == 416
    assert raised.value.headers["Content-Range"] == "bytes */1000"


def test_the_stream_yields_bounded_pieces_of_the_range_and_is_closed() -> None:
    # Given a stream of 3.5 pieces
    data = bytes(range(256)) * (PIECE_BYTES * 7 // 512)
    stream = io.BytesIO(data)
    # When bytes 10 to the end but 5 are streamed
    pieces = list(iter_stream(stream, first=10, length=len(data) - 15))
    # Then each piece is at most PIECE_BYTES, together they are the range, and the stream is closed
    assert max(len(piece) for piece in pieces) <= PIECE_BYTES
    assert b"".join(pieces) == data[10:-5]
    assert stream.closed


def test_a_client_that_goes_away_closes_the_stream() -> None:
    stream = io.BytesIO(b"x" * PIECE_BYTES * 3)
    pieces = iter_stream(stream, first=0, length=PIECE_BYTES * 3)
    next(pieces)
    pieces.close()
    assert stream.closed
