"""parse_cron(): what periodiq would misread or silently never run is refused or repaired."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from geotasks.errors import ConfigurationError
from geotasks.schedule import parse_cron
from geotasks.settings import load_settings

SATURDAY_NOON = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
SUNDAY_3AM = datetime(2024, 6, 2, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize("spec", ["0 3 * * sun", "0 3 * * 0", "0 3 * * 7", "0 3 * * SUN"])
def test_sunday_written_any_way_runs_on_sunday(spec: str) -> None:
    # Given a weekly schedule on Sunday, written as periodiq's 0, cron's 7 or a name
    schedule = parse_cron(spec)

    # Then Sunday 03:00 is a slot, and the scheduler sleeps until tomorrow, not a week more
    assert schedule.matches(SUNDAY_3AM)
    assert schedule.next_slot(SATURDAY_NOON) == SUNDAY_3AM


def test_other_weekdays_are_unchanged() -> None:
    schedule = parse_cron("30 2 * * mon-fri")
    assert schedule.matches(datetime(2024, 6, 3, 2, 30, tzinfo=UTC))
    assert not schedule.matches(datetime(2024, 6, 2, 2, 30, tzinfo=UTC))


@pytest.mark.parametrize("spec", ["*/5 * * * *", "@hourly", "  17  *  * * *  ", "0 0 1 1,7 *"])
def test_ordinary_specs_are_accepted(spec: str) -> None:
    assert parse_cron(spec) is not None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("61 * * * *", "minute must be within 0-59"),
        ("0 24 * * *", "hour must be within 0-23"),
        ("0 0 0 * *", "day of month must be within 1-31"),
        ("0 0 1 13 *", "month must be within 1-12"),
        ("0 0 * * 8", "day of week must be within 0-7"),
        ("* * * *", "has 4 fields; a cron spec needs 5"),
        ("*/30 * * * * *", "has 6 fields; .* use every= for intervals"),
        ("@sometimes", "not a cron spec periodiq understands"),
        ("5-1 * * * *", "not a cron spec periodiq understands"),
        ("x * * * *", "not a cron spec periodiq understands"),
    ],
)
def test_specs_that_would_never_run_are_refused(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_cron(spec)


def test_a_schedule_setting_is_validated_and_names_its_variable() -> None:
    with pytest.raises(ConfigurationError, match="GEOTASKS_DELETE_OLD_PERIODIC_TICKS_SCHEDULE"):
        load_settings({"GEOTASKS_DELETE_OLD_PERIODIC_TICKS_SCHEDULE": "61 * * * *"})
    settings = load_settings({"GEOTASKS_DELETE_OLD_PERIODIC_TICKS_SCHEDULE": " */2  * * * * "})
    assert settings.delete_old_periodic_ticks_schedule == "*/2 * * * *"
