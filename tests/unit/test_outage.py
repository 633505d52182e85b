"""An outage is logged when it starts, once a minute while it lasts, and when it ends."""

from __future__ import annotations

import logging

import pytest

from geotasks.postgres.outage import Outage


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_a_long_outage_is_logged_at_its_start_once_a_minute_and_at_its_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a database that fails every attempt, twice a second, for 150 s
    clock = Clock()
    outage = Outage("PostgreSQL at db", clock=clock)
    caplog.set_level(logging.WARNING, logger="geotasks.postgres.outage")
    for _ in range(300):
        outage.failed("Connection refused")
        clock.now_s += 0.5

    # When it answers again (and keeps answering)
    outage.recovered()
    outage.recovered()

    # Then four lines were logged: the start, two reminders, and the end with its length
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "PostgreSQL at db is unavailable: Connection refused",
        "PostgreSQL at db still unavailable after 60 s (121 failed attempts): Connection refused",
        "PostgreSQL at db still unavailable after 120 s (241 failed attempts): Connection refused",
        "PostgreSQL at db is available again after an outage of 150.0 s (300 failed attempts)",
    ]


def test_a_second_outage_is_logged_as_a_new_one(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    outage = Outage("PostgreSQL at db", clock=clock)
    caplog.set_level(logging.WARNING, logger="geotasks.postgres.outage")
    outage.failed("gone")
    outage.recovered()
    clock.now_s += 5
    outage.failed("gone again")
    assert outage.ongoing
    assert [r.getMessage() for r in caplog.records][
        -1
    ] == "PostgreSQL at db is unavailable: gone again"
