"""Run a shipped unit's commands the way systemd runs them, without systemd.

:class:`InstalledService` is a unit "installed" for a test: the install prefix replaced by the
test virtualenv, ``/etc/geotasks/`` by a directory of the test's own environment files, and
nothing else changed. :meth:`InstalledService.start` runs ``ExecStartPre=`` then ``ExecStart=``
with the environment systemd would build; :meth:`RunningService.stop` follows the unit's
``KillMode=mixed`` (SIGTERM to the main process only, SIGKILL to whatever is left after
``TimeoutStopSec=``); :meth:`RunningService.reload` runs ``ExecReload=`` with ``$MAINPID``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.processes import Process
from tests.unitfile import UnitFile, parse_timespan_s

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD_DIR = ROOT / "systemd"
#: The install prefix the units name, and the virtualenv that stands in for it.
PREFIX = "/opt/geotasks/venv"
TEST_PREFIX = sys.prefix
#: Where the units read their environment files.
CONFIG_DIR = "/etc/geotasks"
#: The PATH systemd gives services.
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Longest a test lets a stop take before it fails (the unit's TimeoutStopSec may be longer).
STOP_BOUND_S = 60.0
#: Exit statuses systemd counts as a clean stop (systemd.service(5), SuccessExitStatus=): exit 0,
#: or death by SIGHUP, SIGINT, SIGTERM or SIGPIPE (as subprocess reports it: minus the signal).
CLEAN_EXIT_STATUSES = frozenset(
    {0, -signal.SIGHUP, -signal.SIGINT, -signal.SIGTERM, -signal.SIGPIPE}
)


def installed_text(text: str) -> str:
    """A unit's text as the tests install it: only the prefix substituted."""
    return text.replace(PREFIX, TEST_PREFIX)


@dataclass
class InstalledService:
    """A unit with its environment files, ready to run.

    Parameters:
      unit_path: The shipped unit file (``systemd/…``).
      config_dir: The test's stand-in for ``/etc/geotasks``.
      work_dir: Working directory, home, and where the service's output (its journal) goes.
      instance: The instance, for a template.
    """

    unit_path: Path
    config_dir: Path
    work_dir: Path
    instance: str | None = None
    unit: UnitFile = field(init=False)

    def __post_init__(self) -> None:
        installed = self.work_dir / self.unit_path.name
        installed.write_text(installed_text(self.unit_path.read_text()))
        self.unit = UnitFile.read(installed, self.instance)

    @property
    def journal(self) -> Path:
        return self.work_dir / f"{self.unit.name}.log"

    def environment(self) -> dict[str, str]:
        """The environment systemd would give the service's processes."""
        files = {
            f"{CONFIG_DIR}/{path.name}": path.read_text()
            for path in self.config_dir.iterdir()
            if path.suffix == ".env"
        }
        base = {
            "PATH": SYSTEMD_PATH,
            "LANG": "C.UTF-8",
            "HOME": str(self.work_dir),
            # The one addition: run this checkout, which the virtualenv may not have installed.
            "PYTHONPATH": str(ROOT),
        }
        return {**base, **self.unit.environment(files)}

    def start(self) -> RunningService:
        """Run every ``ExecStartPre=`` (each must succeed), then start ``ExecStart=``."""
        env = self.environment()
        for argv in self.unit.commands("ExecStartPre", env):
            pre = subprocess.run(
                argv, env=env, cwd=self.work_dir, capture_output=True, text=True, timeout=120
            )
            assert pre.returncode == 0, f"{argv} failed:\n{pre.stdout}{pre.stderr}"
        return RunningService(self, self.unit.command("ExecStart", env), env)


class RunningService(Process):
    """A started service: its main process and the process group it leads, which stands in for
    the unit's control group; its output goes to the service's journal."""

    def __init__(self, service: InstalledService, argv: list[str], env: dict[str, str]) -> None:
        self.service = service
        super().__init__(argv, env, service.journal, cwd=service.work_dir)

    def group_alive(self) -> bool:
        """Whether any process of the service's "control group" is still running."""
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def reload(self) -> None:
        """Run ``ExecReload=`` with ``$MAINPID``, as ``systemctl reload`` does."""
        env = {**self.service.environment(), "MAINPID": str(self.pid)}
        for argv in self.service.unit.commands("ExecReload", env):
            subprocess.run(argv, env=env, check=True, timeout=30)

    def stop(self) -> int:
        """Stop as systemd does for this unit's ``KillMode=``; return the exit status.

        Raises:
          AssertionError: when the main process outlives ``TimeoutStopSec=`` (bounded for tests
            by :data:`STOP_BOUND_S`) and had to be killed.
        """
        unit = self.service.unit
        assert unit.value("Service", "KillMode") == "mixed", "only KillMode=mixed is modelled"
        timeout_s = min(parse_timespan_s(unit.value("Service", "TimeoutStopSec")), STOP_BOUND_S)
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"still running {timeout_s} s after SIGTERM:\n{self.log()}"
            ) from None
