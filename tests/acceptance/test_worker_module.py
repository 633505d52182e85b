"""``geotasks.worker``, the module the worker commands load, without configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-c", "import geotasks.worker"],
        [sys.executable, "-m", "dramatiq", "geotasks.worker", "--processes", "1"],
    ],
    ids=["import", "dramatiq"],
)
def test_without_a_database_it_fails_with_a_clear_message(command: list[str]) -> None:
    # Given an environment with no GEOTASKS_* variable
    env = {name: value for name, value in os.environ.items() if not name.startswith("GEOTASKS_")}

    # When the worker module is loaded
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    # Then it fails, saying how to configure the database (never trying a local RabbitMQ)
    assert result.returncode != 0
    assert "ConfigurationError: GEOTASKS_DATABASE_URL is not set" in result.stderr
    assert "5672" not in result.stderr


def test_a_worker_refuses_to_boot_without_its_data_directory(
    geotasks_env: str, tmp_path: Path
) -> None:
    # Given a configured database but a data directory that does not exist (a pip install
    # with no GEOTASKS_DATA_DIR used to default to a sample_data inside site-packages)
    env = {**os.environ, "GEOTASKS_DATA_DIR": str(tmp_path / "missing")}
    command = [sys.executable, "-m", "dramatiq", "geotasks.worker", "-p", "1", "-t", "1"]

    # When a worker is started
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    # Then it stops at once, naming the setting, instead of failing every geo job
    assert result.returncode != 0
    assert f"DataDirUnusable: GEOTASKS_DATA_DIR={tmp_path / 'missing'} does not exist" in (
        result.stderr
    )
