"""Worker processes that die, on the Postgres broker, RabbitMQ and Redis (a private server).

Real ``dramatiq`` commands run the geo actors and the test actors of
:mod:`tests.reliability.poison_actors`; a :class:`~tests.reliability.conftest.Supervisor`
restarts each one when it exits, as systemd does. Nothing may be lost: every job ends in one
final state, with its result stored once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import dramatiq
import pytest

from geotasks.errors import JobFailed
from geotasks.job_model import JobState
from tests.waiting import wait_until

from .conftest import (
    MAX_DELIVERIES,
    WORKER_TIMEOUT_S,
    RedisServer,
    Supervisor,
    dead_letters,
    job_rows,
    results_stored,
    send,
)

#: Geo jobs in the SIGKILL test (the benchmark runs 1,000).
KILL_JOBS = 150
#: Times the worker is killed during that run.
KILLS = 3


@pytest.fixture(params=["postgres", "rabbitmq", "redis"])
def broker_url(request: pytest.FixtureRequest, geotasks_env: str) -> str:
    if request.param == "postgres":
        return geotasks_env
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("private_redis")
        return server.url
    return str(request.getfixturevalue("rabbitmq_url"))


def test_killing_the_worker_mid_run_loses_no_job_and_stores_each_result_once(
    geotasks_env: str,
    client_broker: dramatiq.Broker,
    queue_name: str,
    supervise: Callable[..., Supervisor],
) -> None:
    # Given a run of geo jobs, and a supervised worker busy with them
    jobs = [
        send(client_broker, queue_name, "shapefile_to_geojson", "naturalearth_cities", limit=20)
        for _ in range(KILL_JOBS)
    ]
    supervisor = supervise()

    # When the worker is killed outright several times during the run
    for kill in range(KILLS):
        done = KILL_JOBS * (kill + 1) // (KILLS + 2)
        wait_until(
            lambda done=done: (
                sum(s == "SUCCESS" for s, _, _ in job_rows(geotasks_env).values()) >= done
            ),
            WORKER_TIMEOUT_S * 2,
            f"{done} jobs done",
        )
        supervisor.kill()

    # Then every job ends SUCCESS, exactly once, with its result stored once
    ids = {job.id for job in jobs}
    wait_until(
        lambda: all(job_rows(geotasks_env).get(i, ("",))[0] == "SUCCESS" for i in ids),
        WORKER_TIMEOUT_S * 3,
        "every job SUCCESS",
    )
    rows = job_rows(geotasks_env)
    stored = results_stored(geotasks_env)
    assert {i: rows[i][0] for i in ids} == dict.fromkeys(ids, "SUCCESS")
    assert stored == dict.fromkeys(ids, 1)
    assert len(jobs[-1].result["features"]) == 20
    # And a job re-run after a kill is a duplicate of work (at-least-once), never a retry
    duplicates = sum(rows[i][2] - 1 for i in ids)
    assert all(rows[i][1] == 0 for i in ids)
    assert supervisor.restarts >= KILLS
    print(f"\n{KILL_JOBS} jobs, {KILLS} kills: 0 lost, {duplicates} duplicate executions")


def test_a_poison_message_is_dead_lettered_and_every_other_job_completes(
    geotasks_env: str,
    broker_url: str,
    client_broker: dramatiq.Broker,
    queue_name: str,
    supervise: Callable[..., Supervisor],
) -> None:
    # Given a message that aborts its worker process, among ordinary jobs
    poison = send(client_broker, queue_name, "abort_worker")
    others = [send(client_broker, queue_name, "add", i, 1) for i in range(20)]

    # When the worker (one thread: see the test below) is restarted every time it dies
    supervisor = supervise(threads=1)

    # Then the poison fails for good after MAX_DELIVERIES crashes, saying why
    with pytest.raises(JobFailed) as failed:
        poison.get(timeout=WORKER_TIMEOUT_S * 2)
    assert f"killed its worker {MAX_DELIVERIES} times" in failed.value.error_message
    assert poison.status is JobState.FAILURE
    # And it is dead-lettered, not run again
    wait_until(
        lambda: dead_letters(client_broker, queue_name, geotasks_env) == 1,
        WORKER_TIMEOUT_S,
        "poison dead-lettered",
    )
    # And every other job completed, and the last worker keeps running
    assert [job.get(timeout=WORKER_TIMEOUT_S) for job in others] == [i + 1 for i in range(20)]
    codes = supervisor.exit_codes()
    assert codes[-1] is None, supervisor.log()
    assert len(codes) - 1 == MAX_DELIVERIES
    assert all(code not in (None, 0) for code in codes[:-1])


def test_a_job_over_its_time_limit_fails_once_with_the_reason(
    geotasks_env: str,
    client_broker: dramatiq.Broker,
    queue_name: str,
    supervise: Callable[..., Supervisor],
) -> None:
    # Given a worker whose slow actor has a one-second time limit
    supervisor = supervise(GEOTASKS_TEST_TIME_LIMIT_MS="1000")

    # When a job runs past it
    started = time.monotonic()
    job = send(client_broker, queue_name, "sleep_for", 30)

    # Then it is stopped and fails on its first attempt, not retried, saying why
    with pytest.raises(JobFailed) as failed:
        job.get(timeout=WORKER_TIMEOUT_S)
    assert time.monotonic() - started < 25
    assert failed.value.type_name == "TimeLimitExceeded"
    assert "time limit" in failed.value.error_message.lower(), failed.value.error_message
    info = job.info()
    assert (info.status, info.runs) == (JobState.FAILURE, 1)
    # And the worker carries on
    assert (
        send(client_broker, queue_name, "sleep_for", 0).get(timeout=WORKER_TIMEOUT_S) == "woke up"
    )
    assert supervisor.restarts == 0, supervisor.log()


def test_a_job_running_beside_a_poison_message_is_not_dead_lettered_with_it(
    geotasks_env: str,
    client_broker: dramatiq.Broker,
    queue_name: str,
    supervise: Callable[..., Supervisor],
) -> None:
    # Given a poison message that aborts its process a second after it starts, and a slower
    # innocent job, on a worker with two threads: the process dies while both run
    poison = send(client_broker, queue_name, "abort_worker", 1.0)
    innocent = send(client_broker, queue_name, "sleep_for", 3.0)

    # When the worker is restarted every time it dies
    supervisor = supervise(threads=2, GEOTASKS_TEST_TIME_LIMIT_MS="30000")

    # Then the poison fails for good: it died beside the innocent job once (which made both
    # suspects), then alone MAX_DELIVERIES times
    with pytest.raises(JobFailed) as failed:
        poison.get(timeout=WORKER_TIMEOUT_S * 3)
    assert f"{MAX_DELIVERIES} of them running alone" in failed.value.error_message
    # And the innocent job succeeds, having died with the poison once, and run again alone
    assert innocent.get(timeout=WORKER_TIMEOUT_S) == "woke up"
    assert job_rows(geotasks_env)[innocent.id][2] == 2
    codes = supervisor.exit_codes()
    assert codes[-1] is None, supervisor.log()
    assert len(codes) - 1 == MAX_DELIVERIES + 1
