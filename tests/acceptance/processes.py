"""Long-running commands (workers, schedulers) started by a test and always stopped after it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tests.processes import Process, dramatiq_command


class Service(Process):
    """A named command in its own process group, its output in ``<log_dir>/<name>.log``."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path):
        self.name = name
        super().__init__(argv, env, log_dir / f"{name}.log")


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
            dramatiq_command("geotasks.worker", *args, "--worker-shutdown-timeout", "2000"),
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
