"""The job page in a real browser: headless Chromium draws the result on the Leaflet map.

Debian's ``chromium`` is driven by Playwright through ``executable_path`` (no browser download).
The app is served by uvicorn on a free loopback port, since the page fetches its scripts, the
land outline and the result over HTTP. A screenshot is saved in the test's tmp directory.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import uvicorn

from geotasks.geo.result import GeoJSONResult
from geotasks.http.app import create_app
from geotasks.http.store import JobAccess
from geotasks.postgres.job_status import JobState
from geotasks.postgres.listener import close_listeners
from geotasks.postgres.pool import Database
from geotasks.settings import Settings
from tests import servers
from tests.integration.http.conftest import feature_collection, finished_job, record_job

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


@pytest.fixture
def server_url(database: Database, settings: Settings) -> Iterator[str]:
    """The app, served by uvicorn on loopback in a thread of this process."""
    port = free_port()
    app = create_app(settings, access=JobAccess(database, settings))
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
