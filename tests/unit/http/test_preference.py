"""The ``Prefer`` header of execute requests (RFC 7240)."""

from __future__ import annotations

import pytest

from geotasks.http.process_routes import Preference
from geotasks.humanize import human_size


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, Preference()),
        ("respond-async", Preference(respond_async=True)),
        ("respond-sync", Preference(respond_sync=True)),
        ("respond-sync, wait=5", Preference(respond_sync=True, wait_s=5)),
        ('Respond-Sync; foo=bar, wait="3"', Preference(respond_sync=True, wait_s=3)),
        ("handling=lenient, wait=soon", Preference()),
    ],
)
def test_preferences_are_parsed_and_unknown_ones_ignored(
    header: str | None, expected: Preference
) -> None:
    assert Preference.parse(header) == expected


@pytest.mark.parametrize(
    ("size", "text"),
    [(812, "812 B"), (20_480, "20.5 kB"), (104_857_600, "104.9 MB"), (5 * 10**12, "5000.0 GB")],
)
def test_sizes_for_people(size: int, text: str) -> None:
    assert human_size(size) == text
