"""Redis restarts in the middle of a run: workers and clients reconnect on their own.

The test runs its worker and client on a private ``redis-server`` it starts on a free port (see
:class:`~tests.reliability.conftest.RedisServer`), and restarts that one; the machine's Redis is
never touched. The queues survive the restart in the server's append-only file, as they must on
a broker's Redis; what the worker held when the server went away comes back to the queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import dramatiq
import pytest

from tests.waiting import wait_until

from .conftest import (
    WORKER_TIMEOUT_S,
    RedisServer,
    Supervisor,
    job_rows,
    results_stored,
    send,
)

#: Jobs sent before the restart, and after it.
JOBS_EACH_SIDE = 40
#: Seconds the server stays down.
DOWN_S = 2


@pytest.fixture
def broker_url(private_redis: RedisServer) -> str:
    return private_redis.url


def test_a_redis_restart_mid_run_loses_nothing(
    geotasks_env: str,
    private_redis: RedisServer,
    client_broker: dramatiq.Broker,
    queue_name: str,
    supervise: Callable[..., Supervisor],
) -> None:
    # Given a worker and a client on the private Redis, in the middle of a run
    supervisor = supervise(GEOTASKS_TEST_TIME_LIMIT_MS="60000")
    before = [send(client_broker, queue_name, "sleep_for", 0.05) for _ in range(JOBS_EACH_SIDE)]
    wait_until(
        lambda: [s for s, _, _ in job_rows(geotasks_env).values()].count("SUCCESS") >= 5,
        WORKER_TIMEOUT_S,
        "the run under way",
    )

    # When Redis stops, stays down a moment, and starts again on the same port
    private_redis.stop()
    time.sleep(DOWN_S)
    private_redis.start()

    # Then the client sends again without being told to reconnect
    after = [send(client_broker, queue_name, "sleep_for", 0.05) for _ in range(JOBS_EACH_SIDE)]
    # And every job, from before and after, ends SUCCESS with its result stored once
    ids = {job.id for job in before + after}
    wait_until(
        lambda: all(job_rows(geotasks_env).get(i, ("",))[0] == "SUCCESS" for i in ids),
        WORKER_TIMEOUT_S * 2,
        "every job SUCCESS",
    )
    assert [job.get(timeout=WORKER_TIMEOUT_S) for job in before + after] == ["woke up"] * len(ids)
    assert results_stored(geotasks_env) == dict.fromkeys(ids, 1)
    # And the worker rode it out: it reconnected, it was not restarted
    assert supervisor.restarts == 0, supervisor.log()
    rows = job_rows(geotasks_env)
    duplicates = sum(rows[i][2] - 1 for i in ids)
    print(f"\n{len(ids)} jobs, Redis down {DOWN_S} s: 0 lost, {duplicates} duplicate executions")
