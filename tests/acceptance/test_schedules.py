"""Schedules with real processes: every slot once under several schedulers in two time zones, one
of them SIGKILLed, the last one inside a worker; a long job never piles up.

One test runs everything at once to stay short: two standalone schedulers (``TZ=UTC`` and
``TZ=Asia/Kolkata``) and ``geotasks worker --scheduler`` (a third scheduler, beside the worker
that runs every job). Halfway the Kolkata scheduler is SIGKILLed, then the UTC one is stopped,
and the worker's own scheduler carries on alone.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from geotasks.postgres.pool import Database
from geotasks.schedule import Every
from tests.integration.registry import register
from tests.waiting import wait_until

from .conftest import RunGeotasks, clean_environment
from .processes import Service, running

#: The interval under test, and the long job's: it runs 12 s every 5 s.
EVERY_S = 30
LONG_EVERY_S = 5
LONG_RUN_S = 12
#: How long each phase lasts (three schedulers; after one SIGKILL; the worker's alone), in s.
PHASE_S = (50, 35, 45)
START_TIMEOUT_S = 60
#: A job must start this soon after its slot here (2 shared cores; the benchmark measures).
START_LATENESS_BOUND_S = 5.0

APP = textwrap.dedent(
    f'''
    import time

    import geotasks


    @geotasks.actor(every={EVERY_S})
    def every_30_s() -> str:
        """Returns the slot it was sent for."""
        return geotasks.current_slot().isoformat()


    @geotasks.actor(every={LONG_EVERY_S})
    def long_every_5_s() -> None:
        """Runs longer than its interval."""
        time.sleep({LONG_RUN_S})
    '''
)


def query(database: Database, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
    def fetch(cur: Any) -> list[Any]:
        cur.execute(sql, params)
        return list(cur.fetchall())

    return database.transaction(fetch)


def sent_slots(service: Service, actor: str) -> list[datetime]:
    found = re.findall(rf"Sent slot (\S+) of {actor} as message", service.log())
    return [datetime.fromisoformat(slot) for slot in found]


@pytest.mark.slow
def test_every_slot_runs_once_whatever_the_schedulers_and_a_long_job_never_piles_up(
    database_url: str, database: Database, tmp_path: Path
) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "scheduled_app.py").write_text(APP)
    env = clean_environment(
        GEOTASKS_DATABASE_URL=database_url,
        GEOTASKS_TMP_DIR=str(tmp_path / "tmp"),
        GEOTASKS_MODULES="scheduled_app",
    )
    env["PYTHONPATH"] = f"{tmp_path / 'app'}{os.pathsep}{env['PYTHONPATH']}"
    scheduler = [sys.executable, "-m", "geotasks.scheduler"]
    with running(env, tmp_path) as services:
        # Given a worker with its own scheduler, and two standalone schedulers in two zones
        worker = services.start(
            "worker",
            [sys.executable, "-m", "geotasks.cli", "worker", "--scheduler", "-p", "1", "-t", "4"],
            TZ="Asia/Kolkata",
        )
        utc_scheduler = services.start("scheduler-utc", scheduler, TZ="UTC")
        kolkata_scheduler = services.start("scheduler-kolkata", scheduler, TZ="Asia/Kolkata")
        for service in (worker, utc_scheduler, kolkata_scheduler):
            wait_until(
                lambda s=service: "Scheduling every_30_s" in s.log(),
                START_TIMEOUT_S,
                f"{service.name} scheduling",
            )
        wait_until(lambda: "Worker process is ready" in worker.log(), START_TIMEOUT_S, "worker")
        started = datetime.now(UTC)

        # When the Kolkata scheduler is SIGKILLed, then the UTC one stopped, leaving the worker's
        time.sleep(PHASE_S[0])
        os.kill(kolkata_scheduler.process.pid, signal.SIGKILL)
        killed = datetime.now(UTC)
        time.sleep(PHASE_S[1])
        utc_scheduler.stop()
        alone = datetime.now(UTC)
        time.sleep(PHASE_S[2])
        ended = datetime.now(UTC)
        # (the last slot's job gets time to run before the worker stops)
        time.sleep(3)
    logs = services.logs()

    # Then every 30 s slot from the start to the end was sent by each scheduler alive then
    every = Every(EVERY_S)
    slots = []
    slot = every.next_slot(started)
    while slot <= ended:
        slots.append(slot)
        slot = every.next_slot(slot)
    assert len(slots) >= 4, slots
    sent = {
        service.name: sent_slots(service, "every_30_s")
        for service in (worker, utc_scheduler, kolkata_scheduler)
    }
    for slot in slots:
        senders = {name for name, slots_sent in sent.items() if slot in slots_sent}
        assert "worker" in senders, (slot, sent)
        if slot < killed - timedelta(seconds=1):
            assert senders == {"worker", "scheduler-utc", "scheduler-kolkata"}, (slot, sent)
        elif slot < alone - timedelta(seconds=1):
            assert "scheduler-utc" in senders, (slot, sent)

    # And each slot ran exactly once, as one job that knew its slot, the other copies skipped
    runs = query(
        database,
        "SELECT t.slot, j.status, j.started_at - t.slot, convert_from(r.data, 'UTF8') "
        "FROM geotasks.periodic_tick AS t JOIN geotasks.job AS j USING (message_id) "
        "LEFT JOIN geotasks.result AS r USING (message_id) WHERE t.actor_name = 'every_30_s' "
        "AND t.slot BETWEEN %(first)s AND %(last)s ORDER BY t.slot",
        {"first": slots[0], "last": slots[-1]},
    )
    assert [row[0] for row in runs] == slots, logs
    assert {row[1] for row in runs} == {"SUCCESS"}, runs
    assert max(row[2] for row in runs) < timedelta(seconds=START_LATENESS_BOUND_S), runs
    assert [row[3] for row in runs] == [f'"{slot.isoformat()}"' for slot in slots]
    duplicates = query(
        database,
        "SELECT error_message FROM geotasks.job WHERE actor_name = 'every_30_s' "
        "AND status = 'SKIPPED'",
    )
    assert duplicates and all("already runs as job" in row[0] for row in duplicates)

    # And the long job never ran twice at once: the slots it overlapped were skipped, saying why
    long_runs = query(
        database,
        "SELECT j.started_at, j.finished_at FROM geotasks.periodic_tick AS t "
        "JOIN geotasks.job AS j USING (message_id) WHERE t.actor_name = 'long_every_5_s' "
        "AND j.status = 'SUCCESS' ORDER BY j.started_at",
    )
    assert len(long_runs) >= 4, logs
    for (_, finished), (next_started, _) in itertools.pairwise(long_runs):
        assert finished <= next_started
    overlapping = query(
        database,
        "SELECT count(*) FROM geotasks.job WHERE actor_name = 'long_every_5_s' "
        "AND status = 'SKIPPED' AND error_message LIKE '%%is still STARTED%%'",
    )
    assert overlapping[0][0] >= len(long_runs)


def test_geotasks_schedules_lists_the_schedules_the_schedulers_send(
    database_url: str, database: Database, run_geotasks: RunGeotasks
) -> None:
    # Given a scheduler sending a 30 s schedule and a cron spec
    register(
        database,
        role="scheduler",
        schedules={"refresh_tiles": "every 30s", "summarise": "*/5 * * * *"},
    )
    env = clean_environment(GEOTASKS_DATABASE_URL=database_url)

    # When they are listed, as text and as JSON
    text = run_geotasks("schedules", env=env)
    listed = run_geotasks("schedules", "--json", env=env)

    # Then both show each schedule and its next slot (no slot has run yet)
    assert text.returncode == 0, text.stderr
    assert "refresh_tiles  (every 30s)" in text.stdout
    assert "summarise  (*/5 * * * *)" in text.stdout
    by_actor = {s["actor"]: s for s in json.loads(listed.stdout)}
    assert by_actor["summarise"]["schedule"] == "*/5 * * * *"
    next_slot = datetime.fromisoformat(by_actor["summarise"]["next_slot"])
    assert next_slot.minute % 5 == 0 and next_slot.second == 0
    assert by_actor["refresh_tiles"]["last_job_id"] is None
