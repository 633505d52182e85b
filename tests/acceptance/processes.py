"""Long-running commands (workers, schedulers) started by a test and always stopped after it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from .conftest import ROOT

#: Seconds a command gets to stop after SIGTERM before its whole process group is killed.
STOP_TIMEOUT_S = 10


class Service:
    """A command running in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                list(argv),
                cwd=ROOT,
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        """Everything the command printed so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM the command, then SIGKILL its process group if it is still there."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_TIMEOUT_S)
        # Worker processes of a dramatiq command that outlived their parent.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT_S)


class Services:
    """Starts commands for one test; :meth:`stop_all` stops every one of them."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.started: list[Service] = []

    def start(self, name: str, argv: Sequence[str], **env: str) -> Service:
        service = Service(name, argv, {**self.env, **env}, self.log_dir)
        self.started.append(service)
        return service

    def dramatiq(self, name: str, *args: str) -> Service:
        """``dramatiq geotasks.worker ARGS…`` with a short shutdown timeout."""
        return self.start(
            name,
            [
                sys.executable,
                "-m",
                "dramatiq",
                "geotasks.worker",
                *args,
                "--worker-shutdown-timeout",
                "2000",
            ],
        )

    def stop_all(self) -> None:
        for service in reversed(self.started):
            service.stop()

    def logs(self) -> str:
        """Every command's log, for a failure message."""
        return "\n".join(f"--- {s.name}\n{s.log()}" for s in self.started)


@contextlib.contextmanager
def running(env: Mapping[str, str], log_dir: Path) -> Iterator[Services]:
    """Yield a :class:`Services`; everything started through it is stopped afterwards."""
    services = Services(env, log_dir)
    try:
        yield services
    finally:
        services.stop_all()
