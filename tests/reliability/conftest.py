"""Fixtures of the reliability tests: module-wide databases and real worker processes.

Starting a worker costs seconds on a loaded machine, so a module shares one database and one
worker where the tests allow it; every process started here is killed when its fixture ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from psycopg2 import sql

from geotasks.postgres import pool as pool_module
from geotasks.postgres.listener import close_listeners
from geotasks.settings import get_settings
from tests.conftest import admin_connection, with_database

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DATA = ROOT / "sample_data"
#: Longest a worker may take to start, or a job to finish, in these tests, in seconds.
WORKER_TIMEOUT_S = 60


def worker_environment(**overrides: str) -> dict[str, str]:
    """This process's environment without GEOTASKS_* variables, running this checkout's code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOTASKS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(overrides)
    return env


class WorkerProcess:
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
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dramatiq",
                    *modules,
                    *arguments,
                    "--worker-shutdown-timeout",
                    "5000",
                ],
                cwd=ROOT,
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        """Whether the main process is still running."""
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the main process and its worker processes at once, as a power loss would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=WORKER_TIMEOUT_S)

    def stop(self) -> int:
        """Stop it as systemd does (SIGTERM, then SIGKILL); return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def create_database(postgres_url: str, template: str) -> str:
    """Create a database from the schema template; return its URL."""
    name = f"geotasks_rel_{uuid.uuid4().hex[:12]}"
    conn = admin_connection(postgres_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
    finally:
        conn.close()
    return with_database(postgres_url, name)


def release_connections(url: str) -> None:
    """Close this process's pool and LISTEN connection on ``url``."""
    close_listeners(url)
    database = pool_module._databases.pop((os.getpid(), url), None)
    if database is not None:
        database.close()


def drop_database(postgres_url: str, url: str) -> None:
    """Release this process's connections to ``url`` and drop its database."""
    release_connections(url)
    conn = admin_connection(postgres_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(url.rsplit("/", 1)[1])
                )
            )
    finally:
        conn.close()


@pytest.fixture(scope="module")
def module_database_url(postgres_url: str, template_database: str) -> Iterator[str]:
    """A fresh database shared by the tests of one module, dropped after it."""
    url = create_database(postgres_url, template_database)
    try:
        yield url
    finally:
        drop_database(postgres_url, url)


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
