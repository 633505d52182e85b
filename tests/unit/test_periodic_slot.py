"""Cron.slot_of(): periodiq's local, rounded stamps map to one cron slot in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pendulum
import pytest
from hypothesis import given
from hypothesis import strategies as st

from geotasks.middleware.periodic import parse_scheduled_at
from geotasks.schedule import EARLY_TOLERANCE_S, Cron, parse_cron

EVERY_MINUTE = parse_cron("* * * * *")
EVERY_FIVE_MINUTES = parse_cron("*/5 * * * *")
HOURLY = parse_cron("0 * * * *")


def periodiq_stamp(woke_at_utc: datetime, tz: str) -> str:
    """The ``scheduled_at`` periodiq sends when it wakes at ``woke_at_utc`` in zone ``tz``.

    Exactly periodiq 0.14's ``Scheduler.schedule``: local time plus half a second, truncated to
    the second, and ``str()`` of the pendulum datetime.
    """
    local = pendulum.instance(woke_at_utc).in_timezone(tz)
    return str((local + timedelta(seconds=0.5)).replace(microsecond=0))


def slot_of(stamp: str, schedule: Cron = EVERY_MINUTE) -> datetime:
    scheduled_at = parse_scheduled_at(stamp)
    assert scheduled_at is not None
    return schedule.slot_of(scheduled_at)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("woke_at", "tz"),
    [
        # On time, and the usual sub-second wake-up after the slot.
        (utc(2024, 6, 1, 12, 0, 0), "UTC"),
        (utc(2024, 6, 1, 12, 0, 0, 700_000), "UTC"),
        # A busy scheduler, seconds late.
        (utc(2024, 6, 1, 12, 0, 4), "UTC"),
        # A clock or a wake-up a few seconds early.
        (utc(2024, 6, 1, 11, 59, 57), "UTC"),
        (utc(2024, 6, 1, 11, 59, 59, 400_000), "UTC"),
        # Other time zones, east and west, whole and half hours.
        (utc(2024, 6, 1, 12, 0, 1), "Europe/Paris"),
        (utc(2024, 6, 1, 11, 59, 58), "America/New_York"),
        (utc(2024, 6, 1, 12, 0, 2), "Asia/Kolkata"),
        (utc(2024, 6, 1, 12, 0, 0), "Australia/Adelaide"),
    ],
)
def test_stamps_of_one_tick_from_any_scheduler_give_one_utc_slot(
    woke_at: datetime, tz: str
) -> None:
    # Given a scheduler in zone `tz` that woke at `woke_at` for the 12:00 UTC tick
    stamp = periodiq_stamp(woke_at, tz)

    # When the stamp is normalised
    slot = slot_of(stamp, EVERY_FIVE_MINUTES)

    # Then it is the 12:00 UTC slot, whatever the zone and jitter
    assert slot == utc(2024, 6, 1, 12, 0)
    assert slot.tzinfo is UTC


def test_stamp_late_in_a_sparse_schedule_stays_in_its_own_slot() -> None:
    # Given a five-minute schedule and a scheduler that stamped 12:00:57 (57 s late): the next
    # minute is close, but 12:01 is not a slot of the schedule
    stamp = "2024-06-01 12:00:57+00:00"

    # Then the stamp belongs to 12:00, where the other schedulers' stamps went
    assert slot_of(stamp, EVERY_FIVE_MINUTES) == utc(2024, 6, 1, 12, 0)


def test_stamp_just_before_a_minute_belongs_to_the_next_slot_only_within_the_tolerance() -> None:
    # Given an every-minute schedule
    inside = f"2024-06-01 11:59:{60 - int(EARLY_TOLERANCE_S):02d}+00:00"
    outside = f"2024-06-01 11:59:{60 - int(EARLY_TOLERANCE_S) - 1:02d}+00:00"

    # Then a stamp within the early tolerance of 12:00 belongs to 12:00, one second more to 11:59
    assert slot_of(inside) == utc(2024, 6, 1, 12, 0)
    assert slot_of(outside) == utc(2024, 6, 1, 11, 59)


def test_spring_forward_in_paris_agrees_with_a_utc_scheduler() -> None:
    # Given 2024-03-31 in Paris, where 02:00 local does not exist (01:59+01:00 → 03:00+02:00),
    # a Paris scheduler that woke early (still 01:59 local) and one that woke on time,
    # and a UTC scheduler, all for the 01:00 UTC tick of an hourly schedule
    early_paris = periodiq_stamp(utc(2024, 3, 31, 0, 59, 58), "Europe/Paris")
    on_time_paris = periodiq_stamp(utc(2024, 3, 31, 1, 0, 0, 300_000), "Europe/Paris")
    utc_scheduler = periodiq_stamp(utc(2024, 3, 31, 1, 0, 1), "UTC")
    assert early_paris == "2024-03-31 01:59:58+01:00"
    assert on_time_paris == "2024-03-31 03:00:00+02:00"

    # Then all three are the same slot
    assert {slot_of(s, HOURLY) for s in (early_paris, on_time_paris, utc_scheduler)} == {
        utc(2024, 3, 31, 1, 0)
    }


def test_fall_back_in_paris_keeps_the_two_0230_ticks_apart() -> None:
    # Given 2024-10-27 in Paris, where 02:30 local happens twice (+02:00, then +01:00): a
    # scheduler there runs a "30 * * * *" schedule at both, an hour apart
    first = periodiq_stamp(utc(2024, 10, 27, 0, 30, 0), "Europe/Paris")
    second = periodiq_stamp(utc(2024, 10, 27, 1, 30, 0), "Europe/Paris")
    assert first == "2024-10-27 02:30:00+02:00"
    assert second == "2024-10-27 02:30:00+01:00"

    # Then they are two slots, each equal to a UTC scheduler's stamp of the same instant
    half_past = parse_cron("30 * * * *")
    assert slot_of(first, half_past) == utc(2024, 10, 27, 0, 30)
    assert slot_of(second, half_past) == utc(2024, 10, 27, 1, 30)
    assert slot_of(periodiq_stamp(utc(2024, 10, 27, 1, 30, 2), "UTC"), half_past) == utc(
        2024, 10, 27, 1, 30
    )


def test_an_aware_datetime_in_a_zone_with_dst_is_read_on_its_offset() -> None:
    # Given the stamp as a datetime in a zone (not at a fixed offset) just before spring forward,
    # where stdlib arithmetic would land on the non-existent 02:00 local
    for scheduled_at in (
        datetime(2024, 3, 31, 1, 59, 58, tzinfo=ZoneInfo("Europe/Paris")),
        pendulum.datetime(2024, 3, 31, 1, 59, 58, tz="Europe/Paris"),
    ):
        # Then the next minute is computed in absolute time: 01:00 UTC
        assert EVERY_MINUTE.slot_of(scheduled_at) == utc(2024, 3, 31, 1, 0)


def test_a_naive_stamp_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        EVERY_MINUTE.slot_of(datetime(2024, 6, 1, 12, 0))


@pytest.mark.parametrize(
    "value", [None, 1_717_243_200, "", "yesterday", "2024-06-01 12:00:00", "2024-13-01T00:00Z"]
)
def test_malformed_or_naive_scheduled_at_parses_to_none(value: object) -> None:
    assert parse_scheduled_at(value) is None


@given(
    tick=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ).map(lambda d: d.replace(second=0, microsecond=0)),
    jitter_ms=st.integers(
        min_value=-int(EARLY_TOLERANCE_S * 1000) + 500,
        max_value=(60 - int(EARLY_TOLERANCE_S)) * 1000 - 501,
    ),
    tz=st.sampled_from(
        ["UTC", "Europe/Paris", "America/Sao_Paulo", "Asia/Tokyo", "Pacific/Chatham"]
    ),
)
def test_every_minute_any_zone_and_jitter_within_tolerance_finds_the_tick(
    tick: datetime, jitter_ms: int, tz: str
) -> None:
    # Given an every-minute tick and a scheduler in any zone that woke within the tolerances
    stamp = periodiq_stamp(tick + timedelta(milliseconds=jitter_ms), tz)

    # Then the stamp maps back to the tick
    assert slot_of(stamp) == tick
