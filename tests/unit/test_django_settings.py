"""geotasks' settings in a Django project: DATABASES["default"], GEOTASKS = {...}, environment."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from geotasks.contrib.django.conf import configure, database_url_from_django, merged_environ
from geotasks.errors import ConfigurationError
from geotasks.settings import load_settings

PSYCOPG2_DATABASE = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": "gis",
    "USER": "app",
    "PASSWORD": "p@ss/word",
    "HOST": "db.internal",
    "PORT": 5433,
}


def test_psycopg2_settings_become_a_libpq_url() -> None:
    assert (
        database_url_from_django(PSYCOPG2_DATABASE)
        == "postgresql://app:p%40ss%2Fword@db.internal:5433/gis"
    )


def test_psycopg3_settings_keep_libpq_options_and_drop_djangos_own() -> None:
    # Given: psycopg 3 settings with a connection pool, a socket directory and TLS
    database = {
        "ENGINE": "django.contrib.gis.db.backends.postgis",
        "NAME": "gis",
        "USER": "app",
        "HOST": "/var/run/postgresql",
        "OPTIONS": {"pool": {"min_size": 2}, "sslmode": "require", "server_side_binding": True},
    }
    # Then: the pool and binding are Django's; sslmode and the socket are libpq's
    assert (
        database_url_from_django(database)
        == "postgresql://app@/gis?sslmode=require&host=%2Fvar%2Frun%2Fpostgresql"
    )


def test_a_database_that_is_not_postgresql_is_a_clear_error() -> None:
    with pytest.raises(
        ConfigurationError, match=r"needs PostgreSQL.*django\.db\.backends\.sqlite3"
    ):
        merged_environ(
            {}, {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}, {}
        )


def test_any_database_will_do_when_geotasks_is_given_its_own() -> None:
    merged = merged_environ(
        {"DATABASE_URL": "postgresql://jobs@pg/jobs"},
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}},
        {},
    )
    assert merged["GEOTASKS_DATABASE_URL"] == "postgresql://jobs@pg/jobs"


def test_the_geotasks_dict_is_read_and_the_environment_wins() -> None:
    merged = merged_environ(
        {
            "result_ttl_s": 60,
            "GEOTASKS_MAX_DELIVERIES": 9,
            "MODULES": ["a.tasks", "b.tasks"],
            "API_METRICS": True,
            "DATA_DIR": Path("/srv/data"),
        },
        {"default": PSYCOPG2_DATABASE},
        {
            "GEOTASKS_RESULT_TTL_S": "120",
            "GEOTASKS_DATABASE_URL": "postgresql://env@h/db",
            "PATH": "/usr/bin",
        },
    )
    settings = load_settings(merged)
    assert settings.result_ttl_s == 120
    assert settings.max_deliveries == 9
    assert settings.modules == ("a.tasks", "b.tasks")
    assert settings.api_metrics is True
    assert settings.data_dir == Path("/srv/data")
    assert settings.database_url == "postgresql://env@h/db"
    assert "PATH" not in merged


def test_an_unknown_key_names_itself() -> None:
    with pytest.raises(ConfigurationError, match=r"GEOTASKS\['RESULT_TTL'\] is not a geotasks"):
        merged_environ({"RESULT_TTL": 5}, {"default": PSYCOPG2_DATABASE}, {})


def test_a_bad_value_fails_with_the_usual_error_and_touches_nothing() -> None:
    environ: dict[str, str] = {}
    django_settings = SimpleNamespace(
        GEOTASKS={"RESULT_TTL_S": 0}, DATABASES={"default": PSYCOPG2_DATABASE}
    )
    with pytest.raises(ConfigurationError, match=r"GEOTASKS_RESULT_TTL_S='0' must be at least 1"):
        configure(django_settings, environ)
    assert environ == {}


def test_configure_puts_the_settings_into_the_environment_under_what_is_set() -> None:
    environ = {"GEOTASKS_MAX_DELIVERIES": "2", "GEOTASKS_BROKER_URL": ""}
    django_settings = SimpleNamespace(
        GEOTASKS={"MAX_DELIVERIES": 7, "BROKER_URL": "redis://r:6379/0"},
        DATABASES={"default": PSYCOPG2_DATABASE},
    )
    settings = configure(django_settings, environ)
    assert settings.max_deliveries == 2
    assert environ == {
        "GEOTASKS_MAX_DELIVERIES": "2",
        "GEOTASKS_BROKER_URL": "redis://r:6379/0",
        "GEOTASKS_DATABASE_URL": "postgresql://app:p%40ss%2Fword@db.internal:5433/gis",
    }


def test_a_stored_errors_class_path_is_read_from_its_traceback() -> None:
    pytest.importorskip("django")
    from geotasks.contrib.django.backend import exception_class_path

    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\nmyapp.errors.Late: oh\n'
    assert exception_class_path("Late", traceback) == "myapp.errors.Late"
    assert exception_class_path("KeyError", "KeyError: 'a'\n") == "builtins.KeyError"
    assert exception_class_path("Gone", "") == "builtins.Gone"
