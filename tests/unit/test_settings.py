"""Settings are read once, validated, and a bad value names its variable."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from geotasks.errors import ConfigurationError
from geotasks.settings import DEFAULT_DATA_DIR, checkout_data_dir, load_settings


def test_defaults_when_nothing_is_set() -> None:
    settings = load_settings({})
    assert settings.database_url is None
    assert settings.effective_broker_url is None
    assert settings.data_dir == DEFAULT_DATA_DIR
    assert settings.result_ttl_s == 86_400


def test_values_are_parsed_with_their_units() -> None:
    settings = load_settings(
        {
            "GEOTASKS_DATABASE_URL": "postgresql://app@db.internal/geo",
            "GEOTASKS_RESULT_TTL_S": "3_600",
            "GEOTASKS_DATA_DIR": "/srv/data",
        }
    )
    assert settings.database_url == "postgresql://app@db.internal/geo"
    assert settings.result_ttl_s == 3600
    assert settings.data_dir == Path("/srv/data")


def test_broker_url_defaults_to_the_database_url_and_can_be_overridden() -> None:
    db = "postgresql://app@db/geo"
    assert load_settings({"GEOTASKS_DATABASE_URL": db}).effective_broker_url == db
    settings = load_settings(
        {"GEOTASKS_DATABASE_URL": db, "GEOTASKS_BROKER_URL": "redis://r:6379/0"}
    )
    assert settings.effective_broker_url == "redis://r:6379/0"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("GEOTASKS_RESULT_TTL_S", "ten", "GEOTASKS_RESULT_TTL_S='ten' is not a whole number"),
        ("GEOTASKS_RESULT_TTL_S", "0", "must be at least 1"),
        ("GEOTASKS_POOL_MAX_CONNECTIONS", "-3", "GEOTASKS_POOL_MAX_CONNECTIONS"),
        ("GEOTASKS_DATABASE_URL", "mysql://x@y/z", "GEOTASKS_DATABASE_URL must start with"),
        ("GEOTASKS_BROKER_URL", "sqs://queue", "GEOTASKS_BROKER_URL must start with"),
    ],
)
def test_a_bad_value_is_a_clear_error_naming_the_variable(
    variable: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings({variable: value})


def test_credentials_are_not_in_the_repr() -> None:
    settings = load_settings({"GEOTASKS_DATABASE_URL": "postgresql://app:s3cret@db/geo"})
    assert "s3cret" not in repr(settings)


def test_require_database_url_explains_what_to_do() -> None:
    with pytest.raises(
        ConfigurationError, match=r"GEOTASKS_DATABASE_URL is not set.*geotasks worker"
    ):
        load_settings({}).require_database_url()


def test_rate_limit_settings_have_defaults_and_a_guard_has_a_floor() -> None:
    settings = load_settings({"GEOTASKS_RATE_LIMIT_URL": "redis://cache:6379/2"})
    assert settings.rate_limit_url == "redis://cache:6379/2"
    assert (settings.rate_limit_guard_ms, settings.rate_limit_hold_ms) == (50, 2_000)
    with pytest.raises(ConfigurationError, match="GEOTASKS_RATE_LIMIT_GUARD_MS"):
        load_settings({"GEOTASKS_RATE_LIMIT_GUARD_MS": "0"})
    with pytest.raises(ConfigurationError, match="GEOTASKS_RATE_LIMIT_URL"):
        load_settings({"GEOTASKS_RATE_LIMIT_URL": "amqp://rabbit"})


def test_the_data_dir_defaults_to_sample_data_only_in_a_checkout(tmp_path: Path) -> None:
    # Given a checkout (pyproject.toml and sample_data beside the package) and an installed
    # package (its parent is site-packages, with neither)
    checkout = tmp_path / "checkout"
    (checkout / "geotasks").mkdir(parents=True)
    (checkout / "sample_data").mkdir()
    (checkout / "pyproject.toml").write_text("[project]\n")
    installed = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "geotasks"
    installed.mkdir(parents=True)

    # Then only the checkout has a default data directory
    assert checkout_data_dir(checkout / "geotasks") == checkout / "sample_data"
    assert checkout_data_dir(installed) is None


@pytest.mark.parametrize(
    ("data_dir", "expected"),
    [
        (None, "GEOTASKS_DATA_DIR is not set"),
        ("missing", "GEOTASKS_DATA_DIR=.*missing does not exist"),
        ("file", "GEOTASKS_DATA_DIR=.*file is not a directory"),
    ],
)
def test_a_data_dir_that_is_unusable_is_named_in_a_clear_error(
    tmp_path: Path, data_dir: str | None, expected: str
) -> None:
    (tmp_path / "file").write_text("")
    settings = replace(
        load_settings({}), data_dir=None if data_dir is None else tmp_path / data_dir
    )
    with pytest.raises(ConfigurationError, match=expected):
        settings.require_data_dir()
    assert replace(settings, data_dir=tmp_path).require_data_dir() == tmp_path
