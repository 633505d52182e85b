"""The worker registry: every broker's worker processes are listed, alive or lost, in Postgres."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import dramatiq

from geotasks.postgres.workers import WorkerProcess, WorkerStore
from tests.waiting import wait_until

from .conftest import HEARTBEAT_TIMEOUT_S, Broker


def registered(broker: Broker) -> list[WorkerProcess]:
    return WorkerStore(broker.database).workers(HEARTBEAT_TIMEOUT_S)


def test_a_worker_is_listed_while_it_runs_and_removed_when_it_stops(
    broker: Broker, start_worker: Callable[..., dramatiq.Worker]
) -> None:
    # Given a worker on the queue under test, with 3 threads
    broker.broker.declare_queue(broker.queue_name)
    worker = start_worker(worker_threads=3)

    # Then it is listed, alive, with its host, process, queue and threads
    wait_until(lambda: registered(broker), 10, "registration")
    (listed,) = registered(broker)
    assert listed.state == "alive"
    assert (listed.hostname, listed.pid, listed.parent_pid) == (
        socket.gethostname(),
        os.getpid(),
        os.getppid(),
    )
    assert listed.role == "worker"
    assert broker.queue_name in listed.queues
    assert (listed.threads, listed.processes, listed.jobs_in_flight) == (3, 1, 0)

    # When it stops cleanly, Then it is gone (not lost)
    worker.stop(timeout=10_000)
    assert registered(broker) == []
