"""Commands a test starts and must always stop: ``dramatiq geotasks.worker …``, schedulers.

:class:`Process` runs one in its own session (so that its worker processes can be killed with
it), its output appended to a log file; it waits until the command is ready (a log line, or an
actor it published) and stops it as systemd does with ``KillMode=mixed``: SIGTERM to the main
process, which lets Dramatiq drain, then SIGKILL to the whole group. (A SIGTERM to the group
would reach each Dramatiq worker process twice, directly and forwarded, and the second one
kills it mid-drain.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import actor_published

#: The checkout, where commands run and whose code they import.
ROOT = Path(__file__).resolve().parents[1]
#: Seconds a command gets to stop after SIGTERM before its whole process group is killed.
STOP_TIMEOUT_S = 10
#: Seconds a command gets to be ready: Python, Dramatiq and geotasks start slowly on a loaded CI.
START_TIMEOUT_S = 60
#: What Dramatiq logs once per worker process that has started consuming.
READY_LINE = "ready for action"


def clean_environment(**overrides: str) -> dict[str, str]:
    """The test's environment without any GEOTASKS_* variable, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOTASKS_")}
    # Run this checkout's code even when the venv's editable install points elsewhere.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(overrides)
    return env


def dramatiq_command(*arguments: str) -> list[str]:
    """``dramatiq ARGUMENTS…`` (modules, then options) with this interpreter."""
    return [sys.executable, "-m", "dramatiq", *arguments]


class Process:
    """A command running in its own session, its output appended to a log file.

    Parameters:
      argv: The command line.
      env: Its whole environment (see :func:`clean_environment`).
      log_path: Where its output goes.
      cwd: Where it runs.
      stop_timeout_s: How long :meth:`stop` waits after SIGTERM.
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        *,
        cwd: Path = ROOT,
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        self.log_path = log_path
        self.stop_timeout_s = stop_timeout_s
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        """The main process's id, which is also its process group's."""
        return self.process.pid

    def alive(self) -> bool:
        """Whether the main process is still running."""
        return self.process.poll() is None

    def log(self) -> str:
        """Everything the command printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, count: int = 1, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until ``text`` appears ``count`` times in the log (``READY_LINE``: once per
        worker process); fail with the log if the command exits first or time runs out."""
        self._wait(lambda: self.log().count(text) >= count, timeout_s, f"{count} x {text!r}")

    def wait_for_actors(
        self, database_url: str, *actor_names: str, timeout_s: float = START_TIMEOUT_S
    ) -> None:
        """Wait until the worker has published ``actor_names`` to the catalogue (it booted)."""

        def published() -> bool:
            return all(actor_published(database_url, name) for name in actor_names)

        self._wait(published, timeout_s, f"a worker publishing {', '.join(actor_names)}")

    def _wait(self, ready: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if not self.alive():
                pytest.fail(f"exited with {self.process.returncode} before {what}:\n{self.log()}")
            if time.monotonic() >= deadline:
                pytest.fail(f"{what} not seen within {timeout_s} s:\n{self.log()}")
            time.sleep(0.05)

    def stop(self) -> int:
        """SIGTERM the main process, then SIGKILL its group; return the main process's exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=self.stop_timeout_s)
        self.kill()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the main process and every process of its group at once, as a power cut would."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT_S)


@contextlib.contextmanager
def started(
    argv: Sequence[str], env: Mapping[str, str], log_path: Path, **options: Any
) -> Iterator[Process]:
    """Start a :class:`Process` (``options`` as its own), and stop it when the block ends."""
    process = Process(argv, env, log_path, **options)
    try:
        yield process
    finally:
        process.stop()
