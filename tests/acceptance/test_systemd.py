"""The units in systemd/ pass systemd's own checks, and do what they promise when run.

systemd is not running here (nor in CI): ``systemd-analyze verify`` and ``security --offline``
check the files, ``systemd-sysusers``/``systemd-tmpfiles --root`` apply the install files to a
scratch root, and the units' commands are run exactly as written (install prefix substituted)
and stopped the way systemd stops them.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dramatiq
import pytest
from dramatiq.message import Message

from geotasks.broker import build_broker
from geotasks.demo_actors import add_numbers_slowly
from geotasks.job_model import JobState
from geotasks.jobs import Job, submit_with_options
from geotasks.postgres.pool import get_database
from geotasks.settings import Settings, load_settings
from tests import servers
from tests.acceptance.systemd_service import (
    CLEAN_EXIT_STATUSES,
    ROOT,
    InstalledService,
    RunningService,
)
from tests.integration.broker.conftest import release_process_resources
from tests.waiting import wait_until

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
    for program in ("dramatiq", "python", "geotasks"):
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


# --- The units run: stop, reload and restart a real worker the way systemd does. ---

#: The instance that serves the slow demo actor's queue.
DEMO_QUEUE = add_numbers_slowly.queue_name
#: How long each slow demo job takes, in seconds: long enough to still run when the stop comes.
JOB_DELAY_S = 2.0
#: Longest wait for a job to reach a state, in seconds.
JOB_TIMEOUT_S = 60.0


@dataclass
class Deployment:
    """The test's stand-in for one host's /etc/geotasks, and a client of the same services."""

    config_dir: Path
    work_dir: Path
    settings: Settings
    broker: dramatiq.Broker

    def service(self, unit_path: Path, instance: str | None = None) -> InstalledService:
        return InstalledService(unit_path, self.config_dir, self.work_dir, instance)

    def send(self, x: int, delay_s: float = JOB_DELAY_S) -> Job:
        """Send one slow demo job computing ``x + 1``."""
        job = submit_with_options("add_numbers_slowly", args=(x, 1, delay_s), broker=self.broker)
        return self.job(job.id)

    def send_message(self, queue_name: str, actor_name: str) -> Job:
        """Send a message with no arguments, as a scheduler does at a slot."""
        self.broker.declare_queue(queue_name)
        message = self.broker.enqueue(
            Message(queue_name=queue_name, actor_name=actor_name, args=(), kwargs={}, options={})
        )
        return self.job(message.message_id)

    def job(self, job_id: str) -> Job:
        return Job(
            job_id,
            database=get_database(self.settings.require_database_url()),
            settings=self.settings,
        )


def write_environment_file(config_dir: Path, settings: dict[str, str]) -> None:
    """Install the example geotasks.env, with ``settings`` replacing or adding lines."""
    example = (SYSTEMD_DIR / "geotasks.env.example").read_text().splitlines()
    kept = [line for line in example if line.partition("=")[0] not in settings]
    lines = [*kept, *(f"{name}={value}" for name, value in settings.items())]
    path = config_dir / "geotasks.env"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


@pytest.fixture
def rabbitmq_vhost_url(rabbitmq_url: str) -> Iterator[str]:
    """A RabbitMQ virtual host of this test's own: the demo queue name is fixed, the server is
    shared, and another test's worker must never take this test's messages."""
    rabbitmqctl = require_program("rabbitmqctl")
    vhost = f"geotasks-test-{uuid.uuid4().hex[:12]}"
    subprocess.run([rabbitmqctl, "-q", "add_vhost", vhost], check=True, timeout=60)
    try:
        subprocess.run(
            [rabbitmqctl, "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
            check=True,
            timeout=60,
        )
        yield urlunsplit(urlsplit(rabbitmq_url)._replace(path="/" + vhost))
    finally:
        subprocess.run([rabbitmqctl, "-q", "delete_vhost", vhost], check=True, timeout=60)


@pytest.fixture(params=["postgres", "rabbitmq"])
def deployment(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> Iterator[Deployment]:
    """A deployment on this test's database, with the Postgres broker or RabbitMQ.

    Not Redis: the worker's Redis keys live under Dramatiq's fixed namespace, which a test cannot
    make its own without changing the unit's command, on a server other tests share; and CI's
    Redis keeps nothing across its own restart (no persistence), the case the issue exempts.
    """
    broker_url = (
        database_url
        if request.param == "postgres"
        else request.getfixturevalue("rabbitmq_vhost_url")
    )
    config_dir, work_dir = tmp_path / "etc", tmp_path / "work"
    config_dir.mkdir()
    work_dir.mkdir()
    values = {
        "GEOTASKS_DATABASE_URL": database_url,
        "GEOTASKS_BROKER_URL": broker_url,
        # The units' own paths (/srv/geotasks/data, /var/lib/geotasks/tmp) do not exist here.
        "GEOTASKS_DATA_DIR": str(ROOT / "sample_data"),
        "GEOTASKS_TMP_DIR": str(tmp_path / "tmp"),
        # The slow demo actor, loaded as an application's module is.
        "GEOTASKS_MODULES": "geotasks.demo_actors",
    }
    write_environment_file(config_dir, values)
    shutil.copy(SYSTEMD_DIR / "worker-maintenance.env", config_dir)
    settings = load_settings(values)
    broker = build_broker(settings)
    try:
        yield Deployment(config_dir, work_dir, settings, broker)
    finally:
        broker.close()
        release_process_resources(database_url)


@pytest.fixture
def start_unit(deployment: Deployment) -> Iterator[Callable[..., RunningService]]:
    """Start a unit (ExecStartPre, then ExecStart) and wait until it is ready: every worker
    process of a worker, the scheduler's list of actors, the API's listening socket. Whatever
    still runs after the test is killed."""
    started: list[RunningService] = []

    def start(unit: str, instance: str | None = None) -> RunningService:
        service = deployment.service(SYSTEMD_DIR / unit, instance)
        running = service.start()
        started.append(running)
        if unit == WORKER_UNIT:
            running.wait_for_log(READY, count=worker_processes(service))
        else:
            running.wait_for_log(READY_LINES[unit])
        return running

    try:
        yield start
    finally:
        for running in started:
            running.kill()


@pytest.fixture
def start_worker(start_unit: Callable[..., RunningService]) -> Callable[[], RunningService]:
    """Start ``geotasks-worker@<the slow demo actor's queue>``."""
    return lambda: start_unit(WORKER_UNIT, DEMO_QUEUE)


WORKER_UNIT = "geotasks-worker@.service"
#: What Dramatiq logs once per worker process, when it consumes.
READY = "Worker process is ready for action."
#: What the other units log once they are ready.
READY_LINES = {
    "geotasks-scheduler.service": "Scheduling ",
    "geotasks-api.service": "Uvicorn running on",
}


def worker_processes(service: InstalledService) -> int:
    argv = service.unit.command("ExecStart", service.environment())
    return int(argv[argv.index("--processes") + 1])


def wait_for_state(jobs: list[Job], states: set[JobState], count: int | None = None) -> None:
    """Wait until ``count`` (default: all) of ``jobs`` are in one of ``states``."""
    wanted = len(jobs) if count is None else count
    wait_until(
        lambda: sum(job.status in states for job in jobs) >= wanted,
        timeout_s=JOB_TIMEOUT_S,
        what=f"{wanted} of {len(jobs)} jobs in {sorted(s.value for s in states)}",
    )


def assert_results_stored(jobs: list[Job], xs: list[int]) -> None:
    assert [job.get(timeout=JOB_TIMEOUT_S) for job in jobs] == [x + 1 for x in xs]


def test_stopping_the_worker_drains_it_and_loses_nothing(
    deployment: Deployment, start_worker: Callable[[], RunningService]
) -> None:
    # Given the worker unit running, busy with slow jobs, with more jobs waiting behind them
    worker = start_worker()
    xs = list(range(10))
    jobs = [deployment.send(x) for x in xs]
    wait_for_state(jobs, {JobState.STARTED}, count=1)
    in_flight = [job for job in jobs if job.status is JobState.STARTED]

    # When systemd stops it (KillMode=mixed: SIGTERM to the main process only)
    status = worker.stop()

    # Then it exits cleanly once the jobs in flight are done, leaving no process behind
    assert status == 0, worker.log()
    assert not worker.group_alive()
    # And every job it had started finished and has its result stored; none was abandoned
    assert {job.status for job in in_flight} == {JobState.SUCCESS}
    assert {job.status for job in jobs} <= {JobState.SUCCESS, JobState.PENDING}

    # When more jobs are sent while no worker runs
    more_xs = [100, 101]
    more = [deployment.send(x, delay_s=0) for x in more_xs]
    time.sleep(1)
    assert {job.status for job in more} == {JobState.PENDING}

    # Then the worker, started again, runs every job that was waiting: nothing is lost
    restarted = start_worker()
    assert_results_stored(jobs + more, xs + more_xs)
    assert restarted.stop() == 0


def test_reloading_the_worker_loses_no_message(
    deployment: Deployment, start_worker: Callable[[], RunningService]
) -> None:
    # Given the worker unit running, busy with slow jobs, with more waiting
    worker = start_worker()
    processes = worker_processes(worker.service)
    xs = list(range(10))
    jobs = [deployment.send(x) for x in xs]
    wait_for_state(jobs, {JobState.STARTED}, count=1)

    # When systemd reloads it (ExecReload: HUP to $MAINPID)
    worker.reload()

    # Then the same main process comes back with fresh worker processes
    worker.wait_for_log(READY, count=2 * processes)
    assert worker.process.poll() is None

    # And every job, the ones in flight during the reload and a new one, finishes with its result
    late = deployment.send(1000, delay_s=0)
    assert_results_stored([*jobs, late], [*xs, 1000])
    assert worker.stop() == 0
    assert worker.log().count("Sending signal 'SIGHUP' to subprocesses") == 1


#: The queue of the periodic actors, and the one they all run on.
MAINTENANCE_QUEUE = "maintenance"
#: The scheduler's line for each periodic actor: "Scheduling actor (queue name): schedule".
PERIODIC_ACTOR_LINE = re.compile(r"Scheduling (\w+) \(queue (\w+)\): ")


def test_the_scheduler_and_the_maintenance_instance_run_the_periodic_actors(
    deployment: Deployment, start_unit: Callable[..., RunningService]
) -> None:
    # Given the scheduler unit and the geotasks-worker@maintenance instance started
    scheduler = start_unit("geotasks-scheduler.service")
    maintenance = start_unit(WORKER_UNIT, MAINTENANCE_QUEUE)

    # Then the scheduler has periodic actors to send, every one of them on the maintenance queue
    scheduler.wait_for_log(f"(queue {MAINTENANCE_QUEUE})")
    listed = PERIODIC_ACTOR_LINE.findall(scheduler.log())
    assert listed, scheduler.log()
    assert {queue for _actor, queue in listed} == {MAINTENANCE_QUEUE}
    # And the maintenance instance is the small one its environment file asks for
    assert maintenance.log().count(READY) == 1

    # When each periodic actor's message arrives, as at a tick
    jobs = [deployment.send_message(MAINTENANCE_QUEUE, actor) for actor, _queue in listed]

    # Then the maintenance instance runs every one and stores what it removed
    for job in jobs:
        assert isinstance(job.get(timeout=JOB_TIMEOUT_S), dict)

    # And both stop at once when systemd stops them (the scheduler exits on SIGTERM)
    assert maintenance.stop() == 0
    assert scheduler.stop() in CLEAN_EXIT_STATUSES
    assert not scheduler.group_alive()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_api_unit_answers_on_loopback_and_stops_at_once(
    deployment: Deployment, start_unit: Callable[..., RunningService]
) -> None:
    # Given the API unit, moved off 8080 (which the test machine may use) by /etc/geotasks/api.env
    port = free_port()
    (deployment.config_dir / "api.env").write_text(f"API_PORT={port}\n")
    api = start_unit("geotasks-api.service")

    # Then it answers OGC API - Processes requests on loopback
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/conformance", headers={"Accept": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert "conformsTo" in json.loads(response.read())

    # And it shuts down gracefully at once when systemd stops it (uvicorn then re-raises the
    # SIGTERM it caught, which systemd counts as a clean stop)
    assert api.stop() in CLEAN_EXIT_STATUSES
    assert "Application shutdown complete." in api.log()
    assert not api.group_alive()
