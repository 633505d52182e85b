"""The admin in headless Chromium: log in, filter, search a job by id, cancel one, see a map.

The project is served by ``manage.py runserver`` (``--insecure`` serves the admin's own static
files), its jobs run by the package's ``manage.py geotasks worker``.
"""

from __future__ import annotations

import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import geotasks
from geotasks.job_model import JobState
from tests.processes import Process, started

from .conftest import PROJECT, project_env

pytest.importorskip("playwright.sync_api")

from tests.integration.http.test_browser import (
    CHROMIUM_ARGS,
    DRAW_TIMEOUT_MS,
    chromium_path,
    free_port,
)

__all__ = ["chromium_path"]  # the fixture, shared with the HTTP API's browser test

PASSWORD = "correct horse battery staple"


@pytest.fixture
def admin_url(django_here: str, django_worker: Process, tmp_path: Path) -> Iterator[str]:
    """The project served on a free loopback port, with a superuser ``admin``."""
    from django.contrib.auth.models import User

    if not User.objects.filter(username="admin").exists():
        User.objects.create_superuser("admin", "admin@example.org", PASSWORD)
    port = free_port()
    argv = [sys.executable, str(PROJECT / "manage.py"), "runserver", "--noreload", "--insecure"]
    url = f"http://127.0.0.1:{port}/admin/"
    with started(
        [*argv, f"127.0.0.1:{port}"], project_env(django_here), tmp_path / "runserver.log"
    ) as server:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}login/", timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.alive(), server.log()
                time.sleep(0.1)
        yield url


def test_staff_log_in_filter_search_cancel_and_see_a_result_on_the_map(
    chromium_path: str, admin_url: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    # Given: a finished job with a GeoJSON result, a failed one and one waiting an hour
    mapped = geotasks.submit("square", 7.0, 46.0)
    failed = geotasks.submit("parcels.tasks.divide", 1, 0)
    waiting = geotasks.submit_with_options("parcel_areas", args=([2.0],), delay_ms=3_600_000)
    mapped.wait(timeout=30)
    failed.wait(timeout=30)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            # When: staff log in
            page.goto(f"{admin_url}login/?next=/admin/geotasks/job/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            expect(page.locator("#result_list")).to_be_visible()
            # And filter by status
            page.click("#changelist-filter a:text-is('Failure')")
            page.click("#changelist-filter a:text-is('parcels.tasks.divide')")
            assert "status__exact=FAILURE" in page.url and "actor=parcels.tasks.divide" in page.url
            rows = page.locator("#result_list tbody tr")
            assert failed.id in (page.text_content("#result_list") or "")
            assert mapped.id not in (page.text_content("#result_list") or "")
            # And search a job by its id
            page.goto(f"{admin_url}geotasks/job/")
            page.fill("#searchbar", mapped.id)
            page.press("#searchbar", "Enter")
            expect(rows).to_have_count(1)
            assert mapped.id in (rows.first.text_content() or "")
            assert rows.first.locator("td.field-shown_status").text_content() == "SUCCESS"
            # And cancel the waiting job
            page.fill("#searchbar", waiting.id)
            page.press("#searchbar", "Enter")
            expect(rows).to_have_count(1)
            rows.first.locator("input.action-select").check()
            page.select_option("select[name=action]", "cancel_jobs")
            page.click("button[name=index]")
            expect(page.locator("ul.messagelist")).to_contain_text("1 job(s) cancelled")
            assert waiting.status is JobState.CANCELLED
            # And open the finished job's map preview
            page.goto(f"{admin_url}geotasks/job/{mapped.id}/change/")
            page.click("a.result-map")
            page.wait_for_selector("#map[data-ready='true']", timeout=DRAW_TIMEOUT_MS)
            page.screenshot(path=str(tmp_path / "admin-map.png"), full_page=True)
            # Then: its square is drawn over the land outline
            assert page.get_attribute("#map", "data-features-drawn") == "1"
            assert page.locator("path.geotasks-result").count() == 1
            assert errors == []
        finally:
            browser.close()
    assert (tmp_path / "admin-map.png").stat().st_size > 10_000
