"""Test runs sharing a server drop their template database when the last one ends (issue 25)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2 import sql

from tests import templates
from tests.conftest import admin_connection, with_database


@pytest.fixture
def names(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A stand-in template and a stand-in copy of it, named apart from real ones."""
    tag = uuid.uuid4().hex[:8]
    template, copy = f"geotasks_tplcheck_{tag}", f"geotasks_tplcopy_{tag}"
    conn = admin_connection(postgres_url)
    with conn.cursor() as cur:
        for name in (template, copy):
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield template, copy
    with conn.cursor() as cur:
        for name in (template, copy):
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    conn.close()


def exists(cur: psycopg2.extensions.cursor, name: str) -> bool:
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
    return cur.fetchone() is not None


def wait_until_disconnected(cur: psycopg2.extensions.cursor, name: str) -> None:
    # A closed connection's backend leaves pg_stat_activity a moment later.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,))
        if cur.fetchone() == (0,):
            return
        time.sleep(0.02)
    raise AssertionError(f"a connection to {name} is still open")


def test_a_template_is_dropped_only_once_no_run_uses_it(
    postgres_url: str, names: tuple[str, str]
) -> None:
    template, copy = names
    patterns = {
        "template_pattern": templates.like_literal(template),
        "old_copy_patterns": [templates.like_literal(copy)],
    }
    running, ending = admin_connection(postgres_url), admin_connection(postgres_url)
    try:
        with running.cursor() as run, ending.cursor() as end:
            # Given a run that uses the template
            templates.use(run, template)

            # When another run ends, Then the template stays
            with templates.build_lock(end):
                assert templates.drop_unused(end, **patterns) == []
            assert exists(end, template)

            # Given the run has stopped using it, but a test of an older conftest (which does
            # not announce its template) is connected to a copy
            templates.stop_using(run, template)
            old_style_test = psycopg2.connect(with_database(postgres_url, copy))
            with templates.build_lock(end):
                assert templates.drop_unused(end, **patterns) == []
            old_style_test.close()
            wait_until_disconnected(end, copy)

            # When nobody uses it any more, Then the run that ends drops it
            with templates.build_lock(end):
                assert templates.drop_unused(end, **patterns) == [template]
            assert not exists(end, template)
    finally:
        running.close()
        ending.close()
