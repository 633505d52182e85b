"""``geotasks demo`` end to end: a real worker process on the Postgres broker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

EXPECTED_RESULTS = [
    "add_numbers(1, 1) = 2",
    "add_numbers(2, 4) = 6",
    "add_numbers(3, 9) = 12",
    "add_numbers(4, 16) = 20",
    "add_numbers(1000, 1) = 1001",
]


def run_demo(cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "geotasks.cli", "demo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def assert_demo_succeeded(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    results = sorted(
        line.strip() for line in result.stdout.splitlines() if line.startswith("  add_numbers(")
    )
    assert results == sorted(EXPECTED_RESULTS)
    assert "worker stopped with SIGTERM (exit code 0)" in result.stdout
    # No process is left behind
    match = re.search(r"pid (\d+)", result.stdout)
    assert match is not None
    with pytest.raises(ProcessLookupError):
        os.kill(int(match.group(1)), 0)


def environment_without_geotasks() -> dict[str, str]:
    repo = str(Path(__file__).resolve().parents[2])
    env = {name: value for name, value in os.environ.items() if not name.startswith("GEOTASKS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
    return env


def test_the_demo_runs_a_worker_on_a_configured_database(
    empty_database_url: str, tmp_path: Path
) -> None:
    env = {**environment_without_geotasks(), "GEOTASKS_DATABASE_URL": empty_database_url}
    assert_demo_succeeded(run_demo(tmp_path, env))


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    """A directory outside any home, where the embedded PostgreSQL may live (even as root)."""
    with tempfile.TemporaryDirectory(prefix="geotasks-demo-", dir="/tmp") as path:
        yield Path(path)


def test_the_demo_runs_on_the_embedded_postgresql_by_default(scratch_dir: Path) -> None:
    result = run_demo(scratch_dir, environment_without_geotasks())
    assert_demo_succeeded(result)
    assert "embedded PostgreSQL stopped" in result.stdout
