"""Helpers for running the ``geotasks`` command as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.processes import ROOT, clean_environment

# The helpers tests import from here; they live in tests.processes, shared with other suites.
__all__ = ["ROOT", "RunGeotasks", "clean_environment"]

RunGeotasks = Callable[..., subprocess.CompletedProcess[str]]


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
