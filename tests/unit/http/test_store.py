"""The job list's cursors and ``datetime`` filter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from geotasks.http.problems import Problem
from geotasks.http.store import Position, parse_cursor, parse_datetime_filter

T0 = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_a_cursor_round_trips() -> None:
    position = Position(T0, "0f8fad5b-d9cb-469f-a165-70867728950e", newer=True)
    assert parse_cursor(position.encode()) == position


@pytest.mark.parametrize("cursor", ["garbage", "WzEsMl0", "eyJhIjoxfQ"])
def test_a_cursor_not_made_here_is_a_400(cursor: str) -> None:
    with pytest.raises(Problem) as raised:
        parse_cursor(cursor)
    assert raised.value.status == 400


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, (None, None)),
        ("2026-05-01T12:00:00Z", (datetime(2026, 5, 1, 12, tzinfo=UTC),) * 2),
        ("2026-05-01T12:00:00Z/..", (datetime(2026, 5, 1, 12, tzinfo=UTC), None)),
        ("../2026-05-01T12:00:00+02:00", (None, datetime(2026, 5, 1, 10, tzinfo=UTC))),
        ("/2026-05-01T12:00:00Z", (None, datetime(2026, 5, 1, 12, tzinfo=UTC))),
        (
            "2026-05-01T00:00:00Z/2026-05-02T00:00:00Z",
            (datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 5, 2, tzinfo=UTC)),
        ),
        ("2026-05-01T12:00:00", (datetime(2026, 5, 1, 12, tzinfo=UTC),) * 2),
    ],
)
def test_datetime_filters(
    text: str | None, expected: tuple[datetime | None, datetime | None]
) -> None:
    assert parse_datetime_filter(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-05-02T00:00:00Z/2026-05-01T00:00:00Z"])
def test_bad_datetime_filters_are_400(text: str) -> None:
    with pytest.raises(Problem) as raised:
        parse_datetime_filter(text)
    assert raised.value.status == 400
