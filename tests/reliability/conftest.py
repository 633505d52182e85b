"""Fixtures of the reliability tests: module-wide databases, real worker processes, a private
Redis server, and the sending side of a run.

Starting a worker costs seconds on a loaded machine, so a module shares one database and one
worker where the tests allow it; every process started here is killed when its fixture ends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name, xq_name
from dramatiq.message import Message

from geotasks.broker import build_broker
from geotasks.jobs import Job
from geotasks.postgres.broker import PostgresBroker
from geotasks.postgres.pool import get_database
from geotasks.settings import Settings, get_settings
from tests import servers
from tests.processes import ROOT, Process, clean_environment, dramatiq_command

SAMPLE_DATA = ROOT / "sample_data"
#: Longest a worker may take to start, or a job to finish, in these tests, in seconds.
WORKER_TIMEOUT_S = 60
#: The poison guard's limit in these tests.
MAX_DELIVERIES = 2
#: Heartbeat timeout of the Postgres and Redis brokers, seconds: short, so that the messages a
#: killed worker held return soon.
HEARTBEAT_TIMEOUT_S = 2


#: This process's environment without GEOTASKS_* variables, running this checkout's code.
worker_environment = clean_environment


class WorkerProcess(Process):
    """A ``dramatiq`` command in its own session, its output in a log file.

    Parameters:
      env: Its environment (see :func:`worker_environment`).
      log_path: Where its output goes (appended).
      modules: The modules it imports, ``geotasks.worker`` first.
      arguments: More ``dramatiq`` options (``-Q geo``, ``-p 2``…).
    """

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        modules: tuple[str, ...] = ("geotasks.worker",),
        arguments: tuple[str, ...] = ("-p", "1", "-t", "2"),
    ) -> None:
        super().__init__(
            dramatiq_command(*modules, *arguments, "--worker-shutdown-timeout", "5000"),
            env,
            log_path,
            stop_timeout_s=30,
        )


@pytest.fixture(scope="module")
def module_client(module_database_url: str) -> Iterator[str]:
    """Point this process's ``GEOTASKS_DATABASE_URL`` at the module's database."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [k for k in os.environ if k.startswith("GEOTASKS_")]:
            patch.delenv(name)
        patch.setenv("GEOTASKS_DATABASE_URL", module_database_url)
        get_settings.cache_clear()
        try:
            yield module_database_url
        finally:
            get_settings.cache_clear()
    get_settings.cache_clear()


class Supervisor:
    """Keeps one worker command running, restarting it when it exits, as systemd's
    ``Restart=always`` would; :meth:`kill` plays the power cut.

    Parameters:
      start: Starts a new worker command.
      restart_delay_s: systemd's ``RestartSec``.
    """

    def __init__(self, start: Callable[[int], WorkerProcess], restart_delay_s: float = 0.1) -> None:
        self._start = start
        self._restart_delay_s = restart_delay_s
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.started: list[WorkerProcess] = [start(0)]
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._thread.start()

    @property
    def current(self) -> WorkerProcess:
        with self._lock:
            return self.started[-1]

    @property
    def restarts(self) -> int:
        with self._lock:
            return len(self.started) - 1

    def exit_codes(self) -> list[int | None]:
        """The exit codes of every worker started so far (``None`` while running)."""
        with self._lock:
            return [worker.process.poll() for worker in self.started]

    def kill(self) -> None:
        """SIGKILL the running worker; the supervisor starts another."""
        self.current.kill()

    def _watch(self) -> None:
        while not self._stopping.wait(0.05):
            worker = self.current
            if worker.process.poll() is None:
                continue
            time.sleep(self._restart_delay_s)
            if self._stopping.is_set():
                return
            with self._lock:
                self.started.append(self._start(len(self.started)))

    def stop(self) -> None:
        """Stop supervising, then stop the running worker."""
        self._stopping.set()
        self._thread.join(timeout=10)
        for worker in self.started:
            worker.stop()

    def log(self) -> str:
        return "\n".join(worker.log()[-3000:] for worker in self.started)


class RedisServer:
    """A private ``redis-server`` on a free port, its files in ``directory``, that a test may
    stop and start again; never the machine's Redis. Snapshots are off (``--save ""``); an
    append-only file, synced at every write, keeps the queues across a restart, as a broker's
    Redis should.

    Parameters:
      directory: Where its append-only file and log go.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it answers."""
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--dir", str(self.directory),
                "--logfile", str(self.directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server did not start: see {self.directory}"
                    ) from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        """Stop it (SIGTERM: it syncs its file and exits), killing it if it takes too long."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=WORKER_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server of the test's own (skips locally, fails in CI, without ``redis-server``)."""
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed"
        if servers.IN_CI:
            pytest.fail(f"{message}, and CI=true requires it", pytrace=False)
        pytest.skip(message)
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def queue_name() -> str:
    return f"reliability-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client_broker(geotasks_env: str, broker_url: str, queue_name: str) -> Iterator[dramatiq.Broker]:
    """The sending side, with geotasks' middleware, on the test's own queue.

    On Redis, the messages of a dead worker come back through the maintenance the surviving
    workers run every quarter of the heartbeat timeout (:mod:`geotasks.redis.broker`); the
    client does nothing to help.
    """
    broker = build_broker(
        Settings(
            database_url=geotasks_env,
            broker_url=broker_url,
            broker_heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S,
        )
    )
    broker.declare_queue(queue_name)
    try:
        yield broker
    finally:
        if broker_url.startswith("amqp"):
            for queue in (queue_name, dq_name(queue_name), xq_name(queue_name)):
                broker.channel.queue_delete(queue)
        broker.close()


def dead_letters(broker: dramatiq.Broker, queue_name: str, database_url: str) -> int:
    """How many messages of the queue the broker dead-lettered."""
    if isinstance(broker, PostgresBroker):

        def count(cur: Any) -> int:
            cur.execute(
                "SELECT count(*) FROM geotasks.broker_dead_letters WHERE queue_name = %s",
                (queue_name,),
            )
            return int(cur.fetchone()[0])

        return get_database(database_url).transaction(count)
    if isinstance(broker, RedisBroker):
        return int(broker.client.zcard(f"{broker.namespace}:{xq_name(queue_name)}"))
    return int(broker.get_queue_message_counts(queue_name)[2])


@pytest.fixture
def supervise(
    geotasks_env: str, broker_url: str, queue_name: str, tmp_path: Path
) -> Iterator[Callable[..., Supervisor]]:
    """Start supervised worker commands on the test's queue; all are stopped afterwards."""
    supervisors: list[Supervisor] = []

    def supervise(processes: int = 1, threads: int = 2, **env: str) -> Supervisor:
        environment = worker_environment(
            GEOTASKS_DATABASE_URL=geotasks_env,
            GEOTASKS_BROKER_URL=broker_url,
            GEOTASKS_DATA_DIR=str(SAMPLE_DATA),
            GEOTASKS_TMP_DIR=str(tmp_path / "tmp"),
            GEOTASKS_MAX_DELIVERIES=str(MAX_DELIVERIES),
            GEOTASKS_BROKER_HEARTBEAT_TIMEOUT_S=str(HEARTBEAT_TIMEOUT_S),
            GEOTASKS_TEST_QUEUE=queue_name,
            **env,
        )

        def start(index: int) -> WorkerProcess:
            return WorkerProcess(
                environment,
                tmp_path / f"worker-{len(supervisors)}-{index}.log",
                modules=("geotasks.worker", "tests.reliability.poison_actors"),
                arguments=("-p", str(processes), "-t", str(threads), "-Q", queue_name),
            )

        supervisor = Supervisor(start)
        supervisors.append(supervisor)
        return supervisor

    try:
        yield supervise
    finally:
        for supervisor in supervisors:
            supervisor.stop()


def send(
    broker: dramatiq.Broker, queue_name: str, actor_name: str, *args: Any, **kwargs: Any
) -> Job:
    message: Message[Any] = Message(
        queue_name=queue_name, actor_name=actor_name, args=args, kwargs=kwargs, options={}
    )
    return Job.from_message(broker.enqueue(message))


def job_rows(database_url: str) -> dict[str, tuple[str, int, int]]:
    """Every job's (status, attempt, runs), by id."""

    def read(cur: Any) -> dict[str, tuple[str, int, int]]:
        cur.execute("SELECT message_id, status, attempt, runs FROM geotasks.job")
        return {row[0]: (row[1], row[2], row[3]) for row in cur.fetchall()}

    return get_database(database_url).transaction(read)


def results_stored(database_url: str) -> dict[str, int]:
    """How many result rows each job id has (the primary key makes it 0 or 1)."""

    def read(cur: Any) -> dict[str, int]:
        cur.execute("SELECT message_id, count(*) FROM geotasks.result GROUP BY message_id")
        return {row[0]: row[1] for row in cur.fetchall()}

    return get_database(database_url).transaction(read)
