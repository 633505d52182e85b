"""Worker processes that die: real ``dramatiq`` processes, killed and restarted as systemd would.

Redis is left out: Dramatiq's Redis broker hands a dead worker's messages back only during its
randomly scheduled maintenance (``maintenance_chance``), which a test cannot wait for.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dramatiq.message import Message

from geotasks.postgres.workers import WorkerProcess as RegisteredWorker
from geotasks.postgres.workers import WorkerStore
from geotasks.settings import env_name
from tests.processes import ROOT, Process, dramatiq_command
from tests.waiting import wait_until

from .conftest import HEARTBEAT_TIMEOUT_S, MAX_DELIVERIES, Broker

pytestmark = pytest.mark.parametrize("broker_kind", ["postgres", "rabbitmq"])

#: Longest a worker process may take to start and act, in seconds.
WORKER_TIMEOUT_S = 30


def start_worker(broker: Broker, markers: Path, log_path: Path) -> Process:
    """A ``dramatiq`` command running the test actors, with its log in a file."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        env_name("database_url"): broker.settings.database_url or "",
        env_name("broker_url"): broker.settings.broker_url or "",
        env_name("broker_heartbeat_timeout_s"): str(HEARTBEAT_TIMEOUT_S),
        env_name("max_deliveries"): str(MAX_DELIVERIES),
        "GEOTASKS_TEST_QUEUE": broker.queue_name,
        "GEOTASKS_TEST_MARKERS": str(markers),
    }
    argv = dramatiq_command(
        "tests.integration.broker.process_actors",
        *("--processes", "1", "--threads", "1", "--worker-shutdown-timeout", "2000"),
    )
    return Process(argv, env, log_path)


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


@pytest.fixture
def start_process(broker: Broker, markers: Path, tmp_path: Path) -> Iterator[Callable[[], Process]]:
    """Start ``dramatiq`` worker commands; every one still running is killed after the test."""
    started: list[Process] = []

    def start() -> Process:
        worker = start_worker(broker, markers, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.kill()


def deliveries(markers: Path) -> int:
    path = markers / "deliveries"
    return len(path.read_text().splitlines()) if path.exists() else 0


def send(broker: Broker, actor_name: str) -> Message[None]:
    return broker.broker.enqueue(
        Message(queue_name=broker.queue_name, actor_name=actor_name, args=(), kwargs={}, options={})
    )


def test_the_message_of_a_killed_worker_is_redelivered_to_the_next(
    broker: Broker, markers: Path, start_process: Callable[[], Process]
) -> None:
    # Given a worker process busy with a message
    broker.broker.declare_queue(broker.queue_name)
    first = start_process()
    send(broker, "hang_on_first_delivery")
    wait_until(lambda: deliveries(markers) == 1, WORKER_TIMEOUT_S, "first delivery")

    # When the worker is killed outright, and another one starts
    first.kill()
    second = start_process()

    # Then the message is delivered again and finishes, once
    wait_until(lambda: deliveries(markers) == 2, WORKER_TIMEOUT_S, "redelivery")
    wait_until(lambda: broker.waiting() == 0, WORKER_TIMEOUT_S, "queue empty")
    if broker.kind == "postgres":
        wait_until(
            lambda: broker.database.transaction(
                lambda cur: (
                    cur.execute("SELECT count(*) FROM geotasks.broker_messages"),
                    cur.fetchone()[0] == 0,
                )[1]
            ),
            WORKER_TIMEOUT_S,
            "message acked",
        )
    assert broker.dead_letters() == 0
    first_pid, second_pid = (markers / "deliveries").read_text().split()
    assert first_pid != second_pid
    assert second.process.poll() is None, second.log()


def test_a_message_that_keeps_killing_its_worker_is_dead_lettered(
    broker: Broker, markers: Path, start_process: Callable[[], Process]
) -> None:
    # Given a message that aborts the worker process running it
    broker.broker.declare_queue(broker.queue_name)
    send(broker, "abort_worker")

    # When the worker is restarted each time it dies, as systemd's Restart=on-failure does
    exit_codes = []
    for _ in range(MAX_DELIVERIES):
        worker = start_process()
        exit_codes.append(worker.process.wait(timeout=WORKER_TIMEOUT_S))
    survivor = start_process()

    # Then after MAX_DELIVERIES crashes the message is dead-lettered instead of run again,
    # and the worker keeps running
    wait_until(lambda: broker.dead_letters() == 1, WORKER_TIMEOUT_S, "poison dead-lettered")
    assert all(code != 0 for code in exit_codes)
    assert deliveries(markers) == MAX_DELIVERIES
    assert survivor.process.poll() is None, survivor.log()
    survivor.process.send_signal(signal.SIGTERM)
    assert survivor.process.wait(timeout=WORKER_TIMEOUT_S) == 0, survivor.log()


def registered_workers(broker: Broker) -> list[RegisteredWorker]:
    return WorkerStore(broker.database).workers(HEARTBEAT_TIMEOUT_S)


def test_a_killed_worker_is_lost_once_its_heartbeat_is_past_the_timeout(
    broker: Broker, markers: Path, start_process: Callable[[], Process]
) -> None:
    # Given a `dramatiq` worker process busy with a message
    broker.broker.declare_queue(broker.queue_name)
    command = start_process()
    send(broker, "hang_on_first_delivery")
    wait_until(lambda: deliveries(markers) == 1, WORKER_TIMEOUT_S, "first delivery")
    wait_until(
        lambda: [w.jobs_in_flight for w in registered_workers(broker)] == [1],
        WORKER_TIMEOUT_S,
        "one job in flight",
    )
    (alive,) = registered_workers(broker)
    assert alive.state == "alive"
    assert alive.parent_pid == command.process.pid

    # When it is killed with SIGKILL
    command.kill()

    # Then it stays listed, and reads lost once its heartbeat is older than the timeout
    wait_until(lambda: registered_workers(broker)[0].lost, 4 * HEARTBEAT_TIMEOUT_S + 5, "lost")
    (lost,) = registered_workers(broker)
    assert (lost.worker_id, lost.state) == (alive.worker_id, "lost")
