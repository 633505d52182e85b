"""Scheduled maintenance with real processes: a maintenance worker keeps its slots on time while
every geo thread is busy. (Schedulers themselves: ``test_schedules.py``.)"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest
from dramatiq.message import Message

from geotasks.postgres.broker import PostgresBroker
from geotasks.postgres.pool import Database
from tests.waiting import wait_until

from .conftest import clean_environment
from .processes import Services, running

#: Longest a command may take to start (imports, first connection), in seconds.
START_TIMEOUT_S = 30
#: How soon a maintenance tick must run once sent, in seconds, while the geo threads are busy.
ON_TIME_S = 5.0
EVERY_MINUTE = "* * * * *"
#: A schedule that does not fire during a test (01 January, 00:00).
NEVER_DURING_A_TEST = "0 0 1 1 *"
WORKER_READY = "Worker process is ready for action."


@pytest.fixture
def services(database_url: str, tmp_path: Path) -> Iterator[Services]:
    env = clean_environment(
        GEOTASKS_DATABASE_URL=database_url,
        GEOTASKS_TMP_DIR=str(tmp_path / "tmp"),
        GEOTASKS_DELETE_EXPIRED_RESULTS_SCHEDULE=EVERY_MINUTE,
        GEOTASKS_DELETE_OLD_BROKER_ROWS_SCHEDULE=NEVER_DURING_A_TEST,
        GEOTASKS_DELETE_OLD_PERIODIC_TICKS_SCHEDULE=NEVER_DURING_A_TEST,
    )
    with running(env, tmp_path) as started:
        yield started


def query(database: Database, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
    def fetch(cur: Any) -> list[Any]:
        cur.execute(sql, params)
        return list(cur.fetchall())

    return database.transaction(fetch)


def insert_expired_result(database: Database, message_id: str) -> None:
    database.transaction(
        lambda cur: cur.execute(
            "INSERT INTO geotasks.result (message_id, kind, media_type, size_bytes, data, "
            "expires_at) VALUES (%s, 'value', 'application/json', 2, '42', "
            "now() - interval '1 minute')",
            (message_id,),
        )
    )


def result_exists(database: Database, message_id: str) -> bool:
    return bool(
        query(
            database, "SELECT 1 FROM geotasks.result WHERE message_id = %(id)s", {"id": message_id}
        )
    )


def test_maintenance_runs_on_time_while_every_geo_thread_is_busy(
    services: Services, database: Database
) -> None:
    # Given a stale temporary folder that a killed worker left on this host, and a fresh one
    tmp_dir = Path(services.env["GEOTASKS_TMP_DIR"])
    stale, fresh = tmp_dir / "geotasks-stale", tmp_dir / "geotasks-fresh"
    for folder in (stale, fresh):
        folder.mkdir(parents=True)
        (folder / "input.geojson").write_text("{}")
    two_days_ago = time.time() - 2 * 86_400
    for path in (stale / "input.geojson", stale):
        os.utime(path, (two_days_ago, two_days_ago))

    # And a geo worker with two threads and a maintenance worker, as the deployment runs them
    geo = services.dramatiq(
        "geo-worker", "tests.acceptance.busy_actors", "-Q", "geo", "-p", "1", "-t", "2"
    )
    maintenance = services.dramatiq("maintenance-worker", "-Q", "maintenance", "-p", "1", "-t", "1")
    for worker in (geo, maintenance):
        wait_until(lambda w=worker: WORKER_READY in w.log(), START_TIMEOUT_S, f"{worker.name} up")

    # Then starting them swept the stale folder and kept the fresh one
    assert not stale.exists() and fresh.exists()

    # Given both geo threads held by long jobs, with more geo work queued behind them
    sender = PostgresBroker(database=database, middleware=[])
    for _ in range(6):
        sender.enqueue(Message("geo", "occupy_geo_thread", (120,), {}, {}))
    wait_until(
        lambda: geo.log().count("occupy_geo_thread started") == 2,
        START_TIMEOUT_S,
        "both geo threads busy",
    )
    # And an expired result for the maintenance job to delete
    insert_expired_result(database, "expired")

    # When the scheduler sends a delete_expired_results tick, stamped as periodiq stamps it
    stamp = str(pendulum.now().replace(microsecond=0))
    sent_at = time.monotonic()
    sender.enqueue(
        Message("maintenance", "delete_expired_results", (), {}, {"scheduled_at": stamp})
    )

    # Then it runs at once: the expired result is gone within seconds
    wait_until(lambda: not result_exists(database, "expired"), ON_TIME_S, "maintenance ran")
    assert time.monotonic() - sent_at < ON_TIME_S
    wait_until(
        lambda: "delete_expired_results (message" in maintenance.log(), ON_TIME_S, "its report"
    )
    # While the geo threads are still busy and no geo job has finished
    assert geo.log().count("occupy_geo_thread started") == 2
    assert query(
        database, "SELECT count(*) FROM geotasks.broker_messages WHERE queue_name = 'geo'"
    ) == [(6,)]
