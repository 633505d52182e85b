"""The maintenance actors against real rows: what is past its retention goes, the rest stays."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import dramatiq.broker
import pytest
from psycopg2.extensions import cursor as Cursor

from geotasks.postgres.maintenance import delete_old_dead_letters
from geotasks.postgres.pool import Database

DAY_S = 86_400


@pytest.fixture
def maintenance(geotasks_env: str) -> Iterator[ModuleType]:
    """``geotasks.maintenance``, imported with a database configured.

    Its actors read the settings (so this test's database) each time they run; importing it
    sets Dramatiq's global broker, which is put back afterwards.
    """
    previous = dramatiq.broker.global_broker
    import geotasks.maintenance

    yield geotasks.maintenance
    dramatiq.broker.global_broker = previous


def execute(database: Database, sql: str, params: dict[str, Any] | None = None) -> None:
    database.transaction(lambda cur: cur.execute(sql, params))


def column(database: Database, sql: str) -> list[Any]:
    def fetch(cur: Cursor) -> list[Any]:
        cur.execute(sql)
        return [row[0] for row in cur.fetchall()]

    return database.transaction(fetch)


def test_expired_results_and_job_statuses_are_removed_fresh_ones_kept(
    maintenance: ModuleType, database: Database
) -> None:
    # Given an expired and a fresh result, a finished job past its TTL, a fresh finished job,
    # and an EXPIRED tombstone past the 7-day retention
    for message_id, expires in (
        ("old", "now() - interval '1 minute'"),
        ("new", "now() + interval '1 hour'"),
    ):
        execute(
            database,
            "INSERT INTO geotasks.result (message_id, kind, media_type, size_bytes, data, "
            f"expires_at) VALUES (%(id)s, 'value', 'application/json', 2, '42', {expires})",
            {"id": message_id},
        )
    execute(
        database,
        """
        INSERT INTO geotasks.job (message_id, actor_name, queue_name, status, expires_at) VALUES
            ('old', 'a', 'geo', 'SUCCESS', now() - interval '1 minute'),
            ('new', 'a', 'geo', 'SUCCESS', now() + interval '1 hour'),
            ('ancient', 'a', 'geo', 'EXPIRED', now() - interval '8 days')
        """,
    )

    # When the periodic actor runs
    removed = maintenance.delete_expired_results.fn()

    # Then it reports and did exactly that
    assert removed == {"results": 1, "jobs_expired": 1, "tombstones_deleted": 1}
    assert column(database, "SELECT message_id FROM geotasks.result") == ["new"]
    assert sorted(column(database, "SELECT message_id || ':' || status FROM geotasks.job")) == [
        "new:SUCCESS",
        "old:EXPIRED",
    ]


def test_old_dead_letters_and_stale_delivery_counts_are_removed(
    maintenance: ModuleType, database: Database
) -> None:
    # Given dead letters 8 days and 1 day old, and poison-guard counts as old
    execute(
        database,
        """
        INSERT INTO geotasks.broker_dead_letters
            (message_id, queue_name, body, error, enqueued_at, dead_at)
        VALUES
            ('old', 'geo', '{}', 'boom', now() - interval '8 days', now() - interval '8 days'),
            ('new', 'geo', '{}', 'boom', now() - interval '1 day', now() - interval '1 day')
        """,
    )
    execute(
        database,
        """
        INSERT INTO geotasks.message_deliveries (message_id, attempt, last_delivered_at) VALUES
            ('old', 0, now() - interval '8 days'),
            ('new', 0, now() - interval '1 day')
        """,
    )

    # When the periodic actor runs (default retention: 7 days)
    removed = maintenance.delete_old_broker_rows.fn()

    # Then only the 8-day-old rows are gone
    assert removed == {"dead_letters": 1, "delivery_counts": 1}
    assert column(database, "SELECT message_id FROM geotasks.broker_dead_letters") == ["new"]
    assert column(database, "SELECT message_id FROM geotasks.message_deliveries") == ["new"]


def test_dead_letters_are_deleted_in_batches(database: Database) -> None:
    # Given 25 old dead letters
    execute(
        database,
        """
        INSERT INTO geotasks.broker_dead_letters
            (message_id, queue_name, body, error, enqueued_at, dead_at)
        SELECT 'm' || n, 'geo', '{}', 'boom', now() - interval '9 days', now() - interval '9 days'
        FROM generate_series(1, 25) AS n
        """,
    )

    # When deleted ten at a time
    deleted = delete_old_dead_letters(database, older_than_s=7 * DAY_S, batch_size=10)

    # Then every batch ran until none was left
    assert deleted == 25
    assert column(database, "SELECT count(*) FROM geotasks.broker_dead_letters") == [0]


def test_old_periodic_ticks_are_removed(maintenance: ModuleType, database: Database) -> None:
    # Given ticks two days and one minute old
    execute(
        database,
        """
        INSERT INTO geotasks.periodic_tick (actor_name, slot, message_id) VALUES
            ('a', date_trunc('minute', now()) - interval '2 days', 'old'),
            ('a', date_trunc('minute', now()) - interval '1 minute', 'new')
        """,
    )

    # When the periodic actor runs
    removed = maintenance.delete_old_periodic_ticks.fn()

    # Then only the old tick is gone
    assert removed == {"periodic_ticks": 1}
    assert column(database, "SELECT message_id FROM geotasks.periodic_tick") == ["new"]


def test_maintenance_actors_are_periodic_on_their_own_queue(maintenance: ModuleType) -> None:
    actors = [
        maintenance.delete_expired_results,
        maintenance.delete_old_broker_rows,
        maintenance.delete_old_periodic_ticks,
    ]
    assert {actor.queue_name for actor in actors} == {"maintenance"}
    assert all("periodic" in actor.options for actor in actors)
    assert all(actor.options["max_retries"] == 0 for actor in actors)
