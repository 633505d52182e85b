"""The suite's helper for commands it starts: ready when its log says so, stopped with its group."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tests.processes import Process, clean_environment, started
from tests.waiting import wait_until

#: A main process that starts a child in its group, says it is ready, and exits 0 on SIGTERM
#: (the child ignores SIGTERM, as a stuck worker process would).
PARENT = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    child = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
         "signal.SIG_IGN); print('child up', flush=True); time.sleep(60)"],
    )
    print("child", child.pid, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    time.sleep(0.2)
    print("ready", flush=True)
    time.sleep(60)
    """
)


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a killed orphan may stay a zombie until its new parent reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_command_is_ready_on_its_log_line_and_stopped_with_its_whole_group(
    tmp_path: Path,
) -> None:
    # Given a command that starts a child which ignores SIGTERM
    with started([sys.executable, "-c", PARENT], clean_environment(), tmp_path / "log") as command:
        # When it is waited for, Then its log shows it ready
        command.wait_for_log("ready")
        child_pid = int(command.log().split("child ", 1)[1].split()[0])
        assert running(child_pid)

        # When it is stopped, Then the main process exited on SIGTERM and the child is gone too
        assert command.stop() == 0
    wait_until(lambda: not running(child_pid), 5, "the child killed")


def test_a_command_that_exits_before_it_is_ready_fails_the_wait_with_its_log(
    tmp_path: Path,
) -> None:
    # Given a command that fails at start
    command = Process(
        [sys.executable, "-c", "print('no such module: tasks'); raise SystemExit(3)"],
        clean_environment(),
        tmp_path / "log",
    )

    # When it is waited for, Then the wait fails at once, showing why
    with pytest.raises(pytest.fail.Exception, match=r"exited with 3 (?s:.*)no such module: tasks"):
        command.wait_for_log("ready", timeout_s=30)
    command.stop()
