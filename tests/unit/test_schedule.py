"""geotasks.schedule and @geotasks.actor(every=, cron=): slots on the clock, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

import geotasks
from geotasks.schedule import Cron, Every, parse_cron, parse_every, parse_schedule


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_every_30_s_runs_at_00_and_30_whatever_the_start_and_zone() -> None:
    every = parse_every(timedelta(seconds=30))
    # Given schedulers starting at odd moments, in two zones
    kolkata = datetime(2024, 6, 1, 17, 30, 7, 250_000, tzinfo=ZoneInfo("Asia/Kolkata"))
    assert every.next_slot(kolkata) == utc(2024, 6, 1, 12, 0, 30)
    assert every.next_slot(utc(2024, 6, 1, 12, 0, 29, 999_999)) == utc(2024, 6, 1, 12, 0, 30)
    # Then a slot is never its own successor, and a stamp maps to its slot
    assert every.next_slot(utc(2024, 6, 1, 12, 0, 30)) == utc(2024, 6, 1, 12, 1)
    assert every.slot_of(utc(2024, 6, 1, 12, 0, 30)) == utc(2024, 6, 1, 12, 0, 30)


@given(
    period_s=st.integers(min_value=1, max_value=86_400),
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
def test_interval_slots_are_multiples_of_the_period_since_the_epoch(
    period_s: int, moment: datetime
) -> None:
    slot = Every(period_s).next_slot(moment)
    assert slot > moment
    assert slot - timedelta(seconds=period_s) <= moment
    assert slot.timestamp() % period_s == 0


@pytest.mark.parametrize("value", [30, 30.0, timedelta(seconds=30), timedelta(minutes=0.5)])
def test_every_takes_seconds_or_a_timedelta(value: timedelta | int) -> None:
    assert parse_every(value) == Every(30)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (0, ValueError, "at least 1 s"),
        (timedelta(milliseconds=500), ValueError, "whole number of seconds"),
        (1.5, ValueError, "whole number of seconds"),
        (-30, ValueError, "at least 1 s"),
        ("30", TypeError, "timedelta or a number"),
        (True, TypeError, "timedelta or a number"),
    ],
)
def test_bad_intervals_are_refused(value: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        parse_every(value)  # type: ignore[arg-type]


def test_cron_is_read_in_utc_so_dst_neither_adds_nor_removes_a_slot() -> None:
    # Given a daily 01:30 UTC spec, and the nights Paris springs forward and falls back
    daily = parse_cron("30 1 * * *")
    for night in (utc(2024, 3, 30, 12, 0), utc(2024, 10, 26, 12, 0)):
        # Then exactly one slot falls in the next 24 h, at 01:30 UTC
        slot = daily.next_slot(night)
        assert slot == night.replace(day=night.day + 1, hour=1, minute=30)
        assert daily.next_slot(slot) == slot + timedelta(days=1)
    # And an aware datetime in any zone finds the same next slot
    paris = datetime(2024, 3, 31, 2, 59, tzinfo=ZoneInfo("Europe/Paris")).replace(hour=1)
    assert daily.next_slot(paris) == utc(2024, 3, 31, 1, 30)


def test_schedules_print_and_parse_back() -> None:
    for schedule in (Every(30), parse_cron("*/5  * * * *"), parse_cron("@hourly")):
        assert parse_schedule(str(schedule)) == schedule
    assert str(parse_cron(" */5  * * * * ")) == "*/5 * * * *"


def test_a_spec_that_never_runs_is_refused_and_29_february_is_not() -> None:
    with pytest.raises(ValueError, match="no slot within four years"):
        parse_cron("0 0 30 2 *")
    assert parse_cron("0 0 29 2 *").next_slot(utc(2024, 3, 1)) == utc(2028, 2, 29)


def test_every_and_cron_are_declaration_options() -> None:
    # When actors are declared with a schedule
    @geotasks.actor(actor_name="schedule_test_every", every=timedelta(seconds=30), public=False)
    def every_30s() -> None: ...

    @geotasks.actor(
        actor_name="schedule_test_cron", cron="*/5 * * * *", skip_late_s=5, overlap=True
    )
    def every_5min(limit: int = 3) -> None: ...

    # Then the middleware get the schedule (and periodiq its spec), and the catalogue shows it
    assert every_30s.options["schedule"] == Every(30)
    assert "periodic" not in every_30s.options
    cron = every_5min.options["schedule"]
    assert isinstance(cron, Cron) and every_5min.options["periodic"] is cron.periodiq_spec
    assert (every_5min.options["skip_late_s"], every_5min.options["overlap"]) == (5, True)
    assert every_5min.spec.options["schedule"] == "*/5 * * * *"


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"cron": "*/30 * * * * *"}, ValueError, "6 fields.*every="),
        ({"cron": "0 0 * * 8"}, ValueError, "day of week must be within 0-7"),
        ({"cron": "0 24 * * *"}, ValueError, "hour must be within 0-23"),
        ({"every": 0.5}, ValueError, "whole number of seconds"),
        ({"every": 30, "cron": "* * * * *"}, ValueError, "not both"),
        ({"skip_late_s": 5}, ValueError, "periodic actors only"),
        ({"every": 30, "skip_late_s": -1}, ValueError, "skip_late_s must be"),
        ({"every": 30, "periodic": "* * * * *"}, ValueError, "every= or cron="),
    ],
)
def test_bad_schedules_are_refused_at_declaration(
    options: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):

        @geotasks.actor(actor_name="schedule_test_refused", **options)  # type: ignore[call-overload]
        def refused() -> None: ...


def test_a_periodic_actor_needs_no_argument() -> None:
    with pytest.raises(TypeError, match="requires name: give them defaults"):

        @geotasks.actor(actor_name="schedule_test_needs_args", every=30)
        def needs_args(name: str) -> None: ...
