"""``geotasks health`` as a command, with a real scheduler registered (``geotasks.scheduler``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dramatiq.message import Message

from geotasks.cli.services import scheduler_command
from geotasks.postgres.broker import PostgresBroker
from geotasks.postgres.pool import Database
from geotasks.postgres.workers import WorkerStore
from tests.waiting import wait_until

from .conftest import RunGeotasks, clean_environment
from .processes import Services, running

#: Longest the scheduler may take to start and register, in seconds.
START_TIMEOUT_S = 30
#: A schedule that does not fire during a test (01 January, 00:00): no tick waits for a worker.
NEVER_DURING_A_TEST = "0 0 1 1 *"


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return clean_environment(
        GEOTASKS_DATABASE_URL=database_url,
        GEOTASKS_DELETE_EXPIRED_RESULTS_SCHEDULE=NEVER_DURING_A_TEST,
        GEOTASKS_DELETE_OLD_BROKER_ROWS_SCHEDULE=NEVER_DURING_A_TEST,
        GEOTASKS_DELETE_OLD_PERIODIC_TICKS_SCHEDULE=NEVER_DURING_A_TEST,
    )


@pytest.fixture
def services(env: dict[str, str], tmp_path: Path) -> Iterator[Services]:
    with running(env, tmp_path) as started:
        yield started


def schedulers(database: Database) -> list[dict[str, str]]:
    return [
        {actor: spec.cron for actor, spec in w.schedules.items()}
        for w in WorkerStore(database).workers(60)
        if w.role == "scheduler" and not w.lost
    ]


def test_health_passes_with_a_scheduler_and_names_an_unserved_queue(
    services: Services, run_geotasks: RunGeotasks, env: dict[str, str], database: Database
) -> None:
    # Given a running scheduler: it registers with the schedules it sends
    scheduler = services.start("scheduler", scheduler_command())
    wait_until(lambda: schedulers(database), START_TIMEOUT_S, "scheduler registered")
    (sent,) = schedulers(database)
    assert sent["delete_expired_results"] == NEVER_DURING_A_TEST, scheduler.log()

    # When the health is checked, Then it passes and says what it checked
    healthy = run_geotasks("health", "--require-scheduler", env=env)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "pass  scheduler: 1 scheduler(s) running" in healthy.stdout
    assert "pass  schedules: no schedule is late" in healthy.stdout

    # When a message waits on a queue that no worker serves
    PostgresBroker(database=database).enqueue(
        Message(queue_name="nobody", actor_name="a", args=(), kwargs={}, options={})
    )

    # Then the health fails, naming the queue
    unwell = run_geotasks("health", env=env)
    assert unwell.returncode == 1
    assert "fail  workers: no alive worker serves 'nobody' (1 ready)" in unwell.stdout

    # And a scheduler stopped cleanly leaves the registry
    scheduler.stop()
    assert scheduler.process.returncode == 0, scheduler.log()
    assert schedulers(database) == []
