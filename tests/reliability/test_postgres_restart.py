"""Postgres restarts in the middle of a run: workers and clients reconnect on their own.

The test runs the whole stack on a private embedded PostgreSQL it starts in a scratch directory, and
restarts that one; the machine's shared server is never touched.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dramatiq.message import Message

from geotasks.broker import build_broker
from geotasks.embedded import EmbeddedPostgres
from geotasks.jobs import Job
from geotasks.postgres.listener import close_listeners
from geotasks.postgres.migrate import migrate
from geotasks.postgres.pool import Database
from geotasks.settings import Settings
from tests.conftest import release_connections
from tests.waiting import wait_until

from .conftest import WORKER_TIMEOUT_S, WorkerProcess, worker_environment

#: Jobs sent before the restart, and after it.
JOBS_EACH_SIDE = 40


@pytest.fixture
def embedded(embedded_scratch: Path) -> Iterator[tuple[EmbeddedPostgres, str]]:
    server = EmbeddedPostgres(embedded_scratch / "pg")
    url = server.start()
    try:
        database = Database(url, max_connections=1)
        try:
            migrate(database)
        finally:
            database.close()
        yield server, url
    finally:
        server.stop()


def statuses(database: Database) -> dict[str, str]:
    def read(cur: Any) -> dict[str, str]:
        cur.execute("SELECT message_id, status FROM geotasks.job")
        return dict(cur.fetchall())

    return database.transaction(read)


def test_a_postgres_restart_mid_run_loses_nothing(
    embedded: tuple[EmbeddedPostgres, str], tmp_path: Path
) -> None:
    # Given a worker and a client on the private Postgres, in the middle of a run
    server, url = embedded
    queue_name = f"reliability-{uuid.uuid4().hex[:12]}"
    env = worker_environment(
        GEOTASKS_DATABASE_URL=url,
        GEOTASKS_TEST_QUEUE=queue_name,
        GEOTASKS_BROKER_HEARTBEAT_TIMEOUT_S="5",
        # Storing the result counts against the time limit, and waits for Postgres to return.
        GEOTASKS_TEST_TIME_LIMIT_MS="60000",
    )
    worker = WorkerProcess(
        env,
        tmp_path / "worker.log",
        modules=("geotasks.worker", "tests.reliability.poison_actors"),
        arguments=("-p", "1", "-t", "2", "-Q", queue_name),
    )
    broker = build_broker(Settings(database_url=url))
    database = Database(url, max_connections=2)
    try:
        broker.declare_queue(queue_name)

        def send(x: int) -> Job:
            message: Message[Any] = Message(
                queue_name=queue_name, actor_name="sleep_for", args=(0.05,), kwargs={}, options={}
            )
            return Job.from_message(broker.enqueue(message), database=database)

        before = [send(i) for i in range(JOBS_EACH_SIDE)]
        wait_until(
            lambda: list(statuses(database).values()).count("SUCCESS") >= 5,
            WORKER_TIMEOUT_S,
            "the run under way",
        )

        # When Postgres stops, stays down a moment, and starts again
        server.stop()
        time.sleep(2)
        assert server.start() == url

        # Then the client sends again without being told to reconnect
        after = [send(i) for i in range(JOBS_EACH_SIDE)]
        # And every job, from before and after, ends SUCCESS with its result
        jobs = before + after
        wait_until(
            lambda: (
                all(s == "SUCCESS" for s in statuses(database).values())
                and len(statuses(database)) == len(jobs)
            ),
            WORKER_TIMEOUT_S * 2,
            "every job SUCCESS",
        )
        assert [job.get(timeout=WORKER_TIMEOUT_S) for job in jobs] == ["woke up"] * len(jobs)
        assert worker.alive(), worker.log()
    finally:
        worker.stop()
        broker.close()
        close_listeners(database.url)
        database.close()
        release_connections(url)


def test_a_result_that_finds_postgres_away_is_stored_once_it_is_back(
    embedded: tuple[EmbeddedPostgres, str], tmp_path: Path, redis_url: str
) -> None:
    # Given a job on the Redis broker (which stays up) whose results and status live in the
    # private Postgres, running
    server, url = embedded
    queue_name = f"reliability-{uuid.uuid4().hex[:12]}"
    env = worker_environment(
        GEOTASKS_DATABASE_URL=url,
        GEOTASKS_BROKER_URL=redis_url,
        GEOTASKS_TEST_QUEUE=queue_name,
        GEOTASKS_TEST_TIME_LIMIT_MS="60000",
    )
    worker = WorkerProcess(
        env,
        tmp_path / "worker.log",
        modules=("geotasks.worker", "tests.reliability.poison_actors"),
        arguments=("-p", "1", "-t", "2", "-Q", queue_name),
    )
    broker = build_broker(Settings(database_url=url, broker_url=redis_url))
    database = Database(url, max_connections=2)
    try:
        message: Message[Any] = Message(
            queue_name=queue_name, actor_name="sleep_for", args=(2.0,), kwargs={}, options={}
        )
        job = Job.from_message(broker.enqueue(message), database=database)
        wait_until(
            lambda: statuses(database).get(job.id) == "STARTED", WORKER_TIMEOUT_S, "the job started"
        )

        # When Postgres stops before the job ends, and stays away longer than the pool retries
        # (about 3 s), then starts again
        server.stop()
        time.sleep(6)
        assert server.start() == url

        # Then the job ran again and its result is there: not acked with its result lost
        assert job.get(timeout=WORKER_TIMEOUT_S) == "woke up"
        info = job.info()
        assert (info.status.value, info.attempt, info.runs) == ("SUCCESS", 1, 2)
        assert "Could not store the result of message" in worker.log()
        assert worker.alive(), worker.log()
    finally:
        worker.stop()
        broker.close()
        close_listeners(database.url)
        database.close()
        release_connections(url)
