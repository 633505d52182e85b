"""The units in systemd/ pass systemd's own checks, and do what they promise when run.

systemd is not running here (nor in CI): ``systemd-analyze verify`` and ``security --offline``
check the files, ``systemd-sysusers``/``systemd-tmpfiles --root`` apply the install files to a
scratch root, and the units' commands are run exactly as written (install prefix substituted)
and stopped the way systemd stops them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import servers

SYSTEMD_DIR = Path(__file__).resolve().parents[2] / "systemd"
#: The install prefix the units name, and the virtualenv the tests run instead.
PREFIX = "/opt/geotasks/venv"
TEST_PREFIX = sys.prefix
#: Every unit as systemd would load it: templates through an instance of theirs.
UNITS = [
    "geotasks-worker@geo.service",
    "geotasks-worker@maintenance.service",
    "geotasks-scheduler.service",
    "geotasks-api.service",
]
#: DESIGN.md: each unit's exposure must rate below 5.0 ("OK"); systemd's threshold is in tenths.
MAX_EXPOSURE = 4.9


def require_program(name: str) -> str:
    """Path of ``name``; skip locally, fail in CI, when it is not installed."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (Debian: apt-get install -y systemd)"
    if servers.IN_CI:
        pytest.fail(f"{message}, and CI=true requires it", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    return require_program("systemd-analyze")


@pytest.fixture(scope="module")
def installed_units(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unit files with the install prefix replaced by the test virtualenv, nothing else."""
    target = tmp_path_factory.mktemp("units")
    for source in SYSTEMD_DIR.glob("*.service"):
        (target / source.name).write_text(source.read_text().replace(PREFIX, TEST_PREFIX))
    return target


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def verify(systemd_analyze: str, unit: Path) -> subprocess.CompletedProcess[str]:
    # --recursive-errors=no: only this unit counts (postgresql.service & co. are not installed);
    # it also turns warnings such as an unknown key into a failure.
    return run([systemd_analyze, "verify", "--man=no", "--recursive-errors=no", str(unit)])


def test_the_test_virtualenv_has_every_program_the_units_run() -> None:
    # The substitution is only meaningful if the test venv is laid out like the install prefix
    for program in ("dramatiq", "periodiq", "geotasks"):
        assert Path(TEST_PREFIX, "bin", program).is_file()


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify_accepts_the_unit(
    systemd_analyze: str, installed_units: Path, unit: str
) -> None:
    result = verify(systemd_analyze, installed_units / unit)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""


def test_systemd_analyze_verify_would_catch_a_mistake(
    systemd_analyze: str, installed_units: Path, tmp_path: Path
) -> None:
    # Given the scheduler with a misspelt key and one without the prefix substituted
    text = (installed_units / "geotasks-scheduler.service").read_text()
    (tmp_path / "typo.service").write_text(text.replace("KillMode=", "KilMode="))
    (tmp_path / "uninstalled.service").write_text(text.replace(TEST_PREFIX, "/nonexistent"))

    # Then verify fails on both, so a passing verify above means something
    for name in ("typo.service", "uninstalled.service"):
        assert verify(systemd_analyze, tmp_path / name).returncode != 0, name


@pytest.mark.parametrize("unit", UNITS)
def test_the_exposure_of_each_unit_is_below_five(systemd_analyze: str, unit: str) -> None:
    result = run(
        [
            systemd_analyze,
            "security",
            "--offline=true",
            "--no-pager",
            f"--threshold={round(MAX_EXPOSURE * 10)}",
            str(SYSTEMD_DIR / unit),
        ]
    )

    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE
    assert result.returncode == 0, result.stderr


def test_sysusers_and_tmpfiles_create_the_user_and_directories(tmp_path: Path) -> None:
    sysusers = require_program("systemd-sysusers")
    tmpfiles = require_program("systemd-tmpfiles")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)

    # When the two install files are applied to an empty root, as a package's postinst would
    users = run([sysusers, f"--root={root}", str(SYSTEMD_DIR / "geotasks.sysusers.conf")])
    dirs = run(
        [tmpfiles, f"--root={root}", "--create", str(SYSTEMD_DIR / "geotasks.tmpfiles.conf")]
    )

    # Then the system user exists, with no login, and owns only its own directories
    assert users.returncode == 0, users.stderr
    assert dirs.returncode == 0, dirs.stderr
    entries = [line.split(":") for line in (root / "etc/passwd").read_text().splitlines()]
    _, _, uid, gid, _, home, shell = next(e for e in entries if e[0] == "geotasks")
    assert int(uid) < 1000
    assert (home, shell) == ("/var/lib/geotasks", "/usr/sbin/nologin")
    expected = {
        "etc/geotasks": (0o700, 0, 0),
        "var/lib/geotasks": (0o750, int(uid), int(gid)),
        "var/lib/geotasks/tmp": (0o700, int(uid), int(gid)),
    }
    for path, (mode, owner, group) in expected.items():
        stat = (root / path).stat()
        assert (stat.st_mode & 0o7777, stat.st_uid, stat.st_gid) == (mode, owner, group), path
