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

#: What each demo job must end as, in the order the demo prints them.
EXPECTED_OUTCOMES = [
    ('shapefile_to_geojson("naturalearth_lowres")', "SUCCESS: 177 features"),
    ('clip_features("naturalearth_lowres"', "SUCCESS: "),
    ('buffer_features("job:', "SUCCESS: "),
    ('measure_features("naturalearth_cities", limit=3)', "SUCCESS: 3 features"),
    ('shapefile_to_geojson("no_such_dataset")', "FAILURE after 1 run: InputError: "),
    ("delete_expired_results()", "SUCCESS: removed {'results': "),
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
    lines = result.stdout.splitlines()
    outcomes = {}
    for call, expected in EXPECTED_OUTCOMES:
        index = next(i for i, line in enumerate(lines) if line.strip().startswith(call))
        outcomes[call] = lines[index + 1].strip()
        assert outcomes[call].startswith(expected), outcomes[call]
    # The chained buffer read the clip's result: same features, larger geometries
    clip = re.match(
        r"SUCCESS: (\d+) features, ([\d,]+) bytes", outcomes['clip_features("naturalearth_lowres"']
    )
    buffer = re.match(r"SUCCESS: (\d+) features, ([\d,]+) bytes", outcomes['buffer_features("job:'])
    assert clip is not None and buffer is not None
    assert int(clip.group(1)) == int(buffer.group(1)) > 10
    assert int(buffer.group(2).replace(",", "")) > int(clip.group(2).replace(",", ""))
    assert "scheduler and worker stopped with SIGTERM (worker exit code 0)" in result.stdout
    # No process is left behind: neither the worker nor the scheduler
    pids = re.findall(r"pid (\d+)", result.stdout)
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)


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
