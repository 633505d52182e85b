"""Helpers for running the ``geotasks`` command as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

RunGeotasks = Callable[..., subprocess.CompletedProcess[str]]


def clean_environment(**overrides: str) -> dict[str, str]:
    """The test's environment without any GEOTASKS_* variable, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOTASKS_")}
    # Run this checkout's code even when the venv's editable install points elsewhere.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(overrides)
    return env


@pytest.fixture
def run_geotasks(tmp_path: Path) -> RunGeotasks:
    """Run ``geotasks ARGS…`` in ``tmp_path`` (or ``cwd``) and return the completed process.

    A run that starts the embedded PostgreSQL needs ``cwd=embedded_scratch``: see
    :func:`tests.conftest.scratch_directory`.
    """

    def run(
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout_s: float = 120,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "geotasks.cli", *args],
            cwd=cwd or tmp_path,
            env=dict(env) if env is not None else clean_environment(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    return run
