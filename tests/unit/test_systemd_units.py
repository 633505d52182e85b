"""The shipped systemd units keep the deployment decisions of DESIGN.md (read, not run)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from geotasks.settings import Settings, env_name
from tests.unitfile import UnitFile, parse_environment_file, parse_timespan_s

SYSTEMD_DIR = Path(__file__).resolve().parents[2] / "systemd"
#: The one install prefix every unit names; tests substitute their own virtualenv for it.
PREFIX = "/opt/geotasks/venv"
ENV_FILE = "/etc/geotasks/geotasks.env"
WORKER = SYSTEMD_DIR / "geotasks-worker@.service"
SCHEDULER = SYSTEMD_DIR / "geotasks-scheduler.service"
API = SYSTEMD_DIR / "geotasks-api.service"


def shipped_units() -> list[UnitFile]:
    return [
        UnitFile.read(WORKER, "geo"),
        UnitFile.read(WORKER, "maintenance"),
        UnitFile.read(SCHEDULER),
        UnitFile.read(API),
    ]


def environment_files() -> dict[str, str]:
    """The files a fresh install puts in /etc/geotasks."""
    maintenance = SYSTEMD_DIR / "worker-maintenance.env"
    return {
        ENV_FILE: (SYSTEMD_DIR / "geotasks.env.example").read_text(),
        "/etc/geotasks/worker-maintenance.env": maintenance.read_text(),
    }


def unit_environment(unit: UnitFile) -> dict[str, str]:
    return {"MAINPID": "1", **unit.environment(environment_files())}


def unit_path(unit: UnitFile) -> Path:
    return WORKER if unit.name.startswith("geotasks-worker@") else SYSTEMD_DIR / unit.name


def option_value(argv: list[str], option: str) -> list[str]:
    """The words after ``option`` up to the next option."""
    start = argv.index(option) + 1
    end = next((i for i in range(start, len(argv)) if argv[i].startswith("-")), len(argv))
    return argv[start:end]


@pytest.mark.parametrize("unit", shipped_units(), ids=lambda u: u.name)
def test_every_command_runs_from_the_one_prefix_as_the_service_user(unit: UnitFile) -> None:
    env = unit_environment(unit)
    for key in ("ExecStartPre", "ExecStart"):
        for argv in unit.commands(key, env):
            assert argv[0].startswith(PREFIX + "/bin/"), argv
    assert unit.command("ExecStartPre", env)[1:] == ["db", "init"]
    assert unit.value("Service", "User") == unit.value("Service", "Group") == "geotasks"


@pytest.mark.parametrize("unit", shipped_units(), ids=lambda u: u.name)
def test_credentials_come_only_from_the_environment_file(unit: UnitFile) -> None:
    # The shared file is mandatory (a unit without its database must not start)…
    assert unit.values("Service", "EnvironmentFile")[0] == ENV_FILE
    # …and no URL, password or token is written into the unit itself
    text = unit_path(unit).read_text()
    assert "://" not in text.replace("file:///", "")
    assert not {"GEOTASKS_DATABASE_URL", "GEOTASKS_BROKER_URL"} & set(
        unit.environment({ENV_FILE: ""})
    )


@pytest.mark.parametrize("unit", shipped_units(), ids=lambda u: u.name)
def test_a_crash_loop_never_stops_the_unit_for_good(unit: UnitFile) -> None:
    # Given the restart policy
    assert unit.value("Service", "Restart") == "on-failure"
    restart_s = parse_timespan_s(unit.value("Service", "RestartSec"))
    interval_s = parse_timespan_s(unit.value("Unit", "StartLimitIntervalSec"))
    burst = int(unit.value("Unit", "StartLimitBurst"))

    # Then a process that fails at once is restarted fewer times per interval than the burst
    # systemd tolerates, so the start limit is never reached by automatic restarts
    most_starts_per_interval = interval_s // restart_s + 1
    assert restart_s >= 1
    assert most_starts_per_interval < burst


@pytest.mark.parametrize("unit", shipped_units(), ids=lambda u: u.name)
def test_stop_signals_only_the_main_process_first(unit: UnitFile) -> None:
    assert unit.value("Service", "KillMode") == "mixed"


@pytest.mark.parametrize(
    "unit", [u for u in shipped_units() if "worker" in u.name], ids=lambda u: u.name
)
def test_the_worker_drains_before_systemd_kills_and_reloads_on_hup(unit: UnitFile) -> None:
    argv = unit.command("ExecStart", unit_environment(unit))

    # The drain waits as long as a geo job may run (Dramatiq counts in ms), and the SIGKILL after
    # TimeoutStopSec comes later than that
    (shutdown_ms,) = option_value(argv, "--worker-shutdown-timeout")
    stop_s = parse_timespan_s(unit.value("Service", "TimeoutStopSec"))
    assert int(shutdown_ms) >= Settings().geo_time_limit_s * 1000
    assert stop_s >= int(shutdown_ms) / 1000 + 30

    # `systemctl reload` sends HUP to Dramatiq's main process, which re-executes in place
    assert unit.command("ExecReload", unit_environment(unit)) == ["/bin/kill", "-HUP", "1"]


def test_the_instance_name_selects_the_queue_and_the_instance_file_its_size() -> None:
    geo = UnitFile.read(WORKER, "geo")
    maintenance = UnitFile.read(WORKER, "maintenance")

    geo_argv = geo.command("ExecStart", unit_environment(geo))
    maintenance_argv = maintenance.command("ExecStart", unit_environment(maintenance))

    assert geo_argv[1] == "geotasks.worker"
    assert option_value(geo_argv, "--queues") == ["geo"]
    assert option_value(geo_argv, "--processes") == ["2"]
    assert option_value(maintenance_argv, "--queues") == ["maintenance"]
    assert option_value(maintenance_argv, "--processes") == ["1"]
    assert option_value(maintenance_argv, "--threads") == ["2"]


def test_one_worker_instance_may_serve_several_queues() -> None:
    unit = UnitFile.read(WORKER, "light")
    files = {ENV_FILE: "", "/etc/geotasks/worker-light.env": "WORKER_QUEUES=thumbnails  reports\n"}

    argv = unit.command("ExecStart", unit.environment(files))

    assert option_value(argv, "--queues") == ["thumbnails", "reports"]


def test_the_scheduler_runs_geotasks_scheduler() -> None:
    unit = UnitFile.read(SCHEDULER)
    argv = unit.command("ExecStart", unit_environment(unit))
    # On geotasks.worker, which loads the maintenance actors and GEOTASKS_MODULES
    assert argv == [PREFIX + "/bin/python", "-m", "geotasks.scheduler"]
    # It dies of SIGHUP, so the scheduler offers no reload
    assert unit.values("Service", "ExecReload") == []


def test_the_api_listens_on_loopback() -> None:
    unit = UnitFile.read(API)
    argv = unit.command("ExecStart", unit_environment(unit))
    assert argv[1:] == ["serve", "--host", "127.0.0.1", "--port", "8080"]


@pytest.mark.parametrize(
    "unit", [u for u in shipped_units() if "scheduler" not in u.name], ids=lambda u: u.name
)
def test_the_sandbox_matches_the_data_and_temp_dirs(unit: UnitFile) -> None:
    env = unit.environment(environment_files())

    # The data dir is read-only and (a network mount) mounted first; only the temp dir is writable
    assert unit.values("Service", "ReadOnlyPaths") == [env["GEOTASKS_DATA_DIR"]]
    assert unit.values("Unit", "RequiresMountsFor") == [env["GEOTASKS_DATA_DIR"]]
    assert unit.values("Service", "ReadWritePaths") == [env["GEOTASKS_TMP_DIR"]]
    assert unit.value("Service", "ProtectSystem") == "strict"

    # And tmpfiles.d creates that temp dir for the service user, with an age for stale files
    tmpfiles = (SYSTEMD_DIR / "geotasks.tmpfiles.conf").read_text().splitlines()
    entries = [line.split() for line in tmpfiles if line and not line.startswith("#")]
    kind, _path, mode, user, group, age = next(
        e for e in entries if e[1] == env["GEOTASKS_TMP_DIR"]
    )
    assert (kind, mode, user, group) == ("d", "0700", "geotasks", "geotasks")
    # with the age after which each worker's own sweep at start removes its files
    assert parse_timespan_s(age) == Settings().tmp_max_age_s


def test_the_scheduler_may_write_nowhere() -> None:
    unit = UnitFile.read(SCHEDULER)
    assert unit.value("Service", "ProtectSystem") == "strict"
    assert unit.values("Service", "ReadWritePaths") == []


@pytest.mark.parametrize("unit", shipped_units(), ids=lambda u: u.name)
def test_the_units_are_hardened(unit: UnitFile) -> None:
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "UMask": "0077",
    }
    assert {key: unit.value("Service", key, "") for key in expected} == expected
    assert unit.values("Service", "SystemCallFilter")[0] == "@system-service"
    # An empty CapabilityBoundingSet= is the empty set: no capabilities at all
    assert ("Service", "CapabilityBoundingSet", "") in unit.assignments


def test_the_environment_example_sets_only_known_settings() -> None:
    # Given the example /etc/geotasks/geotasks.env, commented-out lines included
    text = (SYSTEMD_DIR / "geotasks.env.example").read_text()
    uncommented = "\n".join(line.lstrip("#") for line in text.splitlines() if "=" in line)
    example = parse_environment_file(
        "\n".join(line for line in uncommented.splitlines() if line.startswith("GEOTASKS_"))
    )

    # Then every variable it names is a real setting (a typo would be silently ignored)
    known = {env_name(f.name) for f in fields(Settings)}
    assert set(example) <= known
    assert {"GEOTASKS_DATABASE_URL", "GEOTASKS_BROKER_URL"} <= set(example)
    # And the paths tied to the units' sandbox are left to the units
    assert not {"GEOTASKS_DATA_DIR", "GEOTASKS_TMP_DIR"} & set(parse_environment_file(text))
