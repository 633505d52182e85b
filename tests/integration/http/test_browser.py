"""The job page in a real browser: headless Chromium draws the result on the Leaflet map.

Debian's ``chromium`` is driven by Playwright through ``executable_path`` (no browser download).
The app is served by uvicorn on a free loopback port, since the page fetches its scripts, the
land outline and the result over HTTP. A screenshot is saved in the test's tmp directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import orjson
import pytest
import uvicorn
from starlette.types import ASGIApp

from geotasks.broker import build_broker
from geotasks.demo_actors import add_numbers
from geotasks.geo.result import GeoJSONResult
from geotasks.http.app import create_app
from geotasks.http.store import JobAccess
from geotasks.job_model import JobState
from geotasks.postgres.job_status import JobStore
from geotasks.postgres.listener import close_listeners
from geotasks.postgres.pool import Database, get_database
from geotasks.postgres.workers import WorkerStore
from geotasks.settings import Settings, env_name
from tests import servers
from tests.integration.http.conftest import (
    TOKEN,
    feature_collection,
    finished_job,
    make_settings,
    record_job,
)
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = "/usr/bin/chromium"
#: Flags for a sandbox-less container, and no traffic beyond the page's own server.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Longest the page may take to draw, in milliseconds.
DRAW_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def chromium_path() -> str:
    """Debian's Chromium (skips locally, fails in CI, when it is not installed)."""
    path = shutil.which(CHROMIUM) or shutil.which("chromium")
    if path is None:
        message = f"{CHROMIUM} is not installed (apt-get install -y chromium)"
        if servers.IN_CI:
            pytest.fail(f"{message}, and CI=true requires it", pytrace=False)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(app: ASGIApp, database: Database) -> Iterator[str]:
    """Serve ``app`` with uvicorn on loopback in a thread of this process; yield its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise AssertionError("uvicorn did not start within 10 s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        close_listeners(database.url)


@pytest.fixture
def server_url(database: Database, settings: Settings) -> Iterator[str]:
    """The app, served by uvicorn on loopback in a thread of this process."""
    with serving(create_app(settings, access=JobAccess(database, settings)), database) as url:
        yield url


def test_a_finished_jobs_page_draws_its_features_on_the_map(
    chromium_path: str, server_url: str, database: Database, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    # Given a finished job whose GeoJSON result holds 12 squares and a point
    job_id = finished_job(database, GeoJSONResult.from_bytes(feature_collection(12)))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            # When its page is opened
            page.goto(f"{server_url}jobs/{job_id}?f=html")
            page.wait_for_selector("#map[data-ready='true']", timeout=DRAW_TIMEOUT_MS)
            page.screenshot(path=str(tmp_path / "job.png"), full_page=True)
            # Then every feature is drawn as an SVG path over the land outline
            assert page.get_attribute("#map", "data-features-drawn") == "13"
            assert page.locator("path.geotasks-result").count() == 13
            assert page.locator("path.geotasks-land").count() == 1  # one MultiPolygon
            assert page.get_attribute("#download", "href") == f"{server_url}jobs/{job_id}/results"
            assert page.text_content("#job-status") == "successful"
            assert errors == []
        finally:
            browser.close()
    assert (tmp_path / "job.png").stat().st_size > 10_000


#: A result spanning the world: a square near each corner of the Web Mercator map.
WORLD_RESULT = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"corner": corner},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[x, y], [x + 10, y], [x + 10, y + 10], [x, y + 10], [x, y]]],
            },
        }
        for corner, (x, y) in enumerate([(-180, -80), (170, 70), (-180, 70), (170, -80)])
    ],
}


def test_the_map_is_fitted_to_a_world_wide_result(
    chromium_path: str, server_url: str, database: Database, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    # Given a finished job whose result spans the whole world
    job_id = finished_job(database, GeoJSONResult.from_bytes(orjson.dumps(WORLD_RESULT)))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            # When its page is drawn
            page.goto(f"{server_url}jobs/{job_id}?f=html")
            page.wait_for_selector("#map[data-ready='true']", timeout=DRAW_TIMEOUT_MS)
            page.screenshot(path=str(tmp_path / "world.png"), full_page=True)
            # Then the result fills the map in one direction at least (whole zoom levels left
            # a world dataset in a quarter of the map)
            fill = page.evaluate(
                """() => {
                  const map = document.getElementById("map").getBoundingClientRect();
                  const boxes = [...document.querySelectorAll("path.geotasks-result")]
                    .map((path) => path.getBoundingClientRect());
                  const width = Math.max(...boxes.map((b) => b.right)) -
                    Math.min(...boxes.map((b) => b.left));
                  const height = Math.max(...boxes.map((b) => b.bottom)) -
                    Math.min(...boxes.map((b) => b.top));
                  return Math.max(width / map.width, height / map.height);
                }"""
            )
            assert fill > 0.9
        finally:
            browser.close()


def test_the_jobs_page_lists_jobs_and_refreshes_itself(
    chromium_path: str, server_url: str, database: Database, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    # Given one job, and the jobs page open
    first = record_job(database, [JobState.PENDING])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{server_url}jobs?f=html")
            assert page.locator("#jobs tbody tr").count() == 1
            # When a second job appears and the first one starts
            second = record_job(database, [JobState.PENDING])
            record_job_start = [JobState.PENDING, JobState.STARTED]
            third = record_job(database, record_job_start)
            # Then the table shows them without a reload
            expect(page.locator("#jobs tbody tr")).to_have_count(3, timeout=DRAW_TIMEOUT_MS)
            text = page.text_content("#jobs") or ""
            assert first in text and second in text and third in text
            assert page.locator("#jobs .status-running").count() == 1
            page.screenshot(path=str(tmp_path / "jobs.png"), full_page=True)
        finally:
            browser.close()


#: Heartbeat timeout of the dashboard test's workers and server, in seconds: a killed worker
#: reads lost within about a second.
DASHBOARD_HEARTBEAT_TIMEOUT_S = 1
#: Where the dashboard's screenshot is copied for the docs when this is set (a directory).
SCREENSHOT_DIR_VARIABLE = "GEOTASKS_SCREENSHOT_DIR"


@contextlib.contextmanager
def killed_worker_process(settings: Settings, tmp_path: Path) -> Iterator[None]:
    """A real ``dramatiq`` worker process on its own queue, killed with SIGKILL once registered."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        env_name("database_url"): settings.database_url or "",
        env_name("broker_heartbeat_timeout_s"): str(DASHBOARD_HEARTBEAT_TIMEOUT_S),
        "GEOTASKS_TEST_QUEUE": "doomed",
        "GEOTASKS_TEST_MARKERS": str(tmp_path),
    }
    argv = [sys.executable, "-m", "dramatiq", "tests.integration.broker.process_actors"]
    with (tmp_path / "doomed-worker.log").open("ab") as log:
        process = subprocess.Popen(
            [*argv, "-p", "1", "-t", "1"], cwd=REPO, env=env, stdout=log, stderr=log,
            start_new_session=True,
        )  # fmt: skip
    try:
        store = WorkerStore(get_database(settings.database_url or ""))
        wait_until(
            lambda: any("doomed" in w.queues for w in store.workers(60)), 30, "doomed worker up"
        )
        os.killpg(process.pid, signal.SIGKILL)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def test_the_dashboard_shows_real_workers_a_lost_one_and_a_failure_that_leads_to_its_job(
    chromium_path: str, database: Database, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    # Given a real worker running a job that fails and jobs that succeed
    settings = Settings(
        database_url=database.url, broker_heartbeat_timeout_s=DASHBOARD_HEARTBEAT_TIMEOUT_S
    )
    broker = build_broker(settings)
    broker.emit_after("process_boot")

    @dramatiq.actor(broker=broker, queue_name="geo", max_retries=0, actor_name="clip_parcels")
    def clip_parcels(fail: bool) -> int:
        if fail:
            raise ValueError("no such layer: parcels")
        return 1

    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        messages = [clip_parcels.send(fail) for fail in (False, False, False, True)]
        store = JobStore(database)

        def finished() -> bool:
            infos = [store.get(m.message_id) for m in messages]
            return all(info is not None and info.status.finished for info in infos)

        wait_until(finished, 30, "jobs finished")
        failed_id = messages[-1].message_id
        # And another worker process, killed outright
        with (
            killed_worker_process(settings, tmp_path),
            serving(create_app(settings, access=JobAccess(database, settings)), database) as url,
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                # When the dashboard is opened
                page.goto(f"{url}dashboard?f=html")
                page.wait_for_selector("#chart[data-ready='true']", timeout=DRAW_TIMEOUT_MS)

                # Then the killed worker shows as lost (the page refreshes itself) beside the
                # alive one, and the chart draws the actor's finished and failed series
                expect(page.locator("#workers tr.worker-lost")).to_have_count(
                    1, timeout=DRAW_TIMEOUT_MS
                )
                expect(page.locator("#workers tr.worker-alive")).to_have_count(1)
                page.wait_for_selector("#chart[data-ready='true']", timeout=DRAW_TIMEOUT_MS)
                assert page.get_attribute("#chart", "data-series-drawn") == "2"
                assert page.locator("#chart canvas").count() == 1
                actors = page.text_content("#actors") or ""
                assert "clip_parcels" in actors
                # And the failure is listed with its error
                failure = page.locator("#failures a.failure")
                expect(failure).to_have_count(1)
                assert failed_id in (failure.text_content() or "")
                assert "no such layer: parcels" in (page.text_content("#failures") or "")
                shot = tmp_path / "dashboard.png"
                page.screenshot(path=str(shot), full_page=True)
                if os.environ.get(SCREENSHOT_DIR_VARIABLE):
                    shutil.copy(shot, Path(os.environ[SCREENSHOT_DIR_VARIABLE]) / shot.name)

                # When the failure is clicked, Then its job's page opens, failed
                failure.click()
                page.wait_for_url(f"{url}jobs/{failed_id}?f=html")
                assert page.text_content("#job-status") == "failed"
                assert errors == []
            finally:
                browser.close()
    finally:
        worker.stop()
        broker.close()
    assert shot.stat().st_size > 10_000


def test_the_process_page_runs_the_process_and_follows_the_job_to_its_map(
    chromium_path: str,
    production_broker: dramatiq.Broker,
    worker_process: subprocess.Popen[bytes],
    database: Database,
    settings: Settings,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import sync_playwright

    # Given the process page of a geo process, served with a worker behind it
    app = create_app(settings, access=JobAccess(database, settings, broker=production_broker))
    with serving(app, database) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{url}processes/simplify_features?f=html")
            # Then its form offers the data directory's datasets and a field per input
            options = page.eval_on_selector_all(
                "#datasets-name option", "options => options.map((o) => o.value)"
            )
            assert "naturalearth_lowres" in options
            assert page.get_attribute("#input-tolerance_m", "type") == "number"
            assert page.get_attribute("#input-tolerance_m", "min") == "0"
            assert page.eval_on_selector("#input-preserve_topology", "e => e.tagName") == "SELECT"
            assert page.eval_on_selector("#input-bbox", "e => e.tagName") == "TEXTAREA"
            # When a bad input is given, the API's own error is shown next to the form
            page.fill("#input-name", "naturalearth_lowres")
            page.fill("#input-tolerance_m", "0.5")
            page.fill("#input-bbox", "[-20, 30, 40]")
            page.click("#execute")
            page.wait_for_selector("#execute-errors li", timeout=DRAW_TIMEOUT_MS)
            page.screenshot(path=str(tmp_path / "form.png"), full_page=True)
            assert "bbox" in (page.text_content("#execute-errors") or "")
            assert page.get_attribute("#input-bbox", "aria-invalid") == "true"
            # When the form is filled in correctly and run
            page.fill("#input-bbox", "[-20, 30, 40, 70]")
            page.select_option("#input-preserve_topology", "true")
            page.click("#execute")
            # Then the browser follows the new job to its page, which draws its result
            page.wait_for_url(f"{url}jobs/*?f=html", timeout=DRAW_TIMEOUT_MS)
            page.wait_for_selector("#map[data-ready='true']", timeout=DRAW_TIMEOUT_MS)
            page.screenshot(path=str(tmp_path / "executed.png"), full_page=True)
            assert page.text_content("#job-status") == "successful"
            assert int(page.get_attribute("#map", "data-features-drawn") or 0) > 10
            assert errors == []
        finally:
            browser.close()


def test_the_form_sends_the_token_a_secured_server_asks_for(
    chromium_path: str,
    production_broker: dramatiq.Broker,
    database: Database,
    geotasks_env: str,
) -> None:
    from playwright.sync_api import sync_playwright

    # Given a server that asks for a bearer token, offering the demo's add_numbers (declared in
    # this process, as in a worker that serves it)
    assert add_numbers.actor_name == "add_numbers"
    secured = make_settings(geotasks_env, api_tokens=TOKEN)
    app = create_app(secured, access=JobAccess(database, secured, broker=production_broker))
    with serving(app, database) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{url}processes/add_numbers?f=html")
            page.fill("#input-x", "2")
            page.fill("#input-y", "3")
            # When the form is run with a wrong token, it is refused as over the API
            page.fill("#token", "not-the-token-0123456789")
            page.click("#execute")
            page.wait_for_selector("#execute-errors li", timeout=DRAW_TIMEOUT_MS)
            assert "token" in (page.text_content("#execute-errors") or "")
            # When it is run with the right one
            page.fill("#token", TOKEN)
            page.click("#execute")
            # Then the job is created and its page opened
            page.wait_for_url(f"{url}jobs/*?f=html", timeout=DRAW_TIMEOUT_MS)
            job_id = page.url.rsplit("/", 1)[1].split("?")[0]
            info = JobStore(database).get(job_id)
            assert info is not None and info.actor_name == "add_numbers"
        finally:
            browser.close()
