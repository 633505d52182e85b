"""Every error the HTTP API can return: a problem document for programs, an HTML page for
browsers, and no server path in either.

A worker's error is written for its operator and may name files (a missing data directory in
site-packages, a GDAL error on ``/srv/…/parcels.shp``, a traceback). Every error response the API
can give is provoked here, in JSON and in HTML, with such paths planted wherever a message can
come from, and none may show a directory of this server.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2 as httpx
import pytest
from dramatiq.brokers.stub import StubBroker
from starlette.testclient import TestClient

import geotasks
from geotasks.http.app import create_app
from geotasks.http.openapi import build_openapi
from geotasks.http.processes import default_catalogue
from geotasks.http.store import JobAccess
from geotasks.job_model import JobError, JobInfo, JobState
from geotasks.postgres.job_status import JobStore
from geotasks.postgres.pool import Database
from geotasks.settings import Settings
from tests.integration.http.conftest import TOKEN, finished_job, make_settings, record_job

#: A directory of a worker host, planted in every error a job can record.
PLANTED_DIR = "/srv/geotasks-secret/site-packages"
#: What a job's error says about it, as a worker writes it.
PLANTED_MESSAGE = f"the data directory {PLANTED_DIR}/sample_data does not exist"
PLANTED_TRACEBACK = f'Traceback (most recent call last):\n  File "{PLANTED_DIR}/geo/names.py"\n'
#: Directories of this server that no response may show.
SERVER_DIRS = (
    PLANTED_DIR,
    str(Path(geotasks.__file__).resolve().parent),
    sys.prefix,
)
#: How a client asks for each representation: headers, and query parameters.
FORMATS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "json": ({"Accept": "application/json"}, {}),
    "no preference": ({}, {}),
    "html": ({"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, {}),
    "f=html": ({"Accept": "application/json"}, {"f": "html"}),
}
#: Media type of the answer to each way of asking.
ERROR_MEDIA_TYPES = {
    "json": "application/problem+json",
    "no preference": "application/problem+json",
    "html": "text/html; charset=utf-8",
    "f=html": "text/html; charset=utf-8",
}
BIG_BODY = b"{" + b" " * (2 * 1024 * 1024) + b"}"


class FailingAccess(JobAccess):
    """A job store whose reads fail with an unexpected error naming a server file."""

    def info(self, job_id: str) -> JobInfo | None:
        raise OSError(f"[Errno 13] Permission denied: '{PLANTED_DIR}/job/{job_id}'")


@pytest.fixture
def jobs(database: Database) -> dict[str, str]:
    """A job in every state an error can come from, the failed ones with planted paths."""

    def failed(type_name: str) -> str:
        error = JobError(type_name, PLANTED_MESSAGE, PLANTED_TRACEBACK)
        return record_job(
            database, [JobState.PENDING, JobState.STARTED, JobState.FAILURE], error=error
        )

    started = [JobState.PENDING, JobState.STARTED]
    cancelled = record_job(database, [JobState.PENDING])
    assert JobStore(database).cancel(cancelled, ttl_ms=3_600_000)
    return {
        "input_error": failed("InputError"),
        "time_limit": failed("TimeLimitExceeded"),
        "config_error": failed("ConfigurationError"),
        "running": record_job(database, started),
        "skipped": record_job(database, [*started, JobState.SKIPPED]),
        "cancelled": cancelled,
        "no_result": record_job(database, [*started, JobState.SUCCESS]),
        "finished": finished_job(database, {"answer": 42}),
    }


@pytest.fixture
def clients(
    database: Database, settings: Settings, geotasks_env: str, broker: StubBroker
) -> Iterator[dict[str, TestClient]]:
    """The open API, a secured one, one whose store fails, one whose database is down."""
    secured = make_settings(geotasks_env, api_tokens=TOKEN)
    down = Database("postgresql://postgres@127.0.0.1:1/none", connect_timeout_s=1, attempts=1)
    apps = {
        "open": create_app(settings, access=JobAccess(database, settings, broker=broker)),
        "secured": create_app(secured, access=JobAccess(database, secured, broker=broker)),
        "failing": create_app(settings, access=FailingAccess(database, settings, broker=broker)),
        "down": create_app(settings, access=JobAccess(down, settings)),
    }
    clients = {
        name: TestClient(app, base_url="http://testserver", raise_server_exceptions=False)
        for name, app in apps.items()
    }
    for client in clients.values():
        client.__enter__()
    try:
        yield clients
    finally:
        for client in clients.values():
            client.__exit__(None, None, None)


#: A request, given the clients, the jobs, and the format's headers and query parameters.
Request = Callable[
    [dict[str, TestClient], dict[str, str], dict[str, str], dict[str, str]], httpx.Response
]


def _url(path: str, query: dict[str, str]) -> str:
    """``path`` with ``query`` appended to the parameters it has."""
    if not query:
        return path
    return path + ("&" if "?" in path else "?") + urlencode(query)


def _get(path: str, client: str = "open", **headers: str) -> Request:
    return lambda clients, jobs, accept, query: clients[client].get(
        _url(path.format(**jobs), query), headers={**accept, **headers}
    )


def _execute(client: str = "open", headers: dict[str, str] | None = None, **body: Any) -> Request:
    return lambda clients, jobs, accept, query: clients[client].post(
        _url("/processes/echo/execution", query), headers={**accept, **(headers or {})}, **body
    )


#: Every error the API answers, by what provokes it, and its status.
ERRORS: dict[str, tuple[Request, int]] = {
    "unknown query parameter": (_get("/processes?colour=red"), 400),
    "static file missing": (_get("/static/nothing.js"), 404),
    "unknown format": (
        lambda clients, jobs, accept, query: clients["open"].get(
            "/processes?f=xml", headers=accept
        ),
        400,
    ),
    "malformed number": (_get("/jobs?limit=many"), 400),
    "invalid inputs": (_execute(json={"inputs": {"nothing": 1}}), 400),
    "body not JSON": (_execute(content=b"{", headers={"Content-Type": "application/json"}), 400),
    "job rejected its input": (_get("/jobs/{input_error}/results"), 400),
    "no token": (_execute("secured", json={"inputs": {}}), 401),
    "no route": (_get("/nowhere/at/all"), 404),
    "no such process": (_get("/processes/nope"), 404),
    "no such job": (_get("/jobs/0f8fad5b-d9cb-469f-a165-70867728950e"), 404),
    "result not ready": (_get("/jobs/{running}/results"), 404),
    "method not allowed": (
        lambda clients, jobs, accept, query: clients["open"].put(
            _url("/processes", query), headers=accept
        ),
        405,
    ),
    "running job dismissed": (
        lambda clients, jobs, accept, query: clients["open"].delete(
            _url(f"/jobs/{jobs['running']}", query), headers=accept
        ),
        409,
    ),
    "cancelled job's result": (_get("/jobs/{cancelled}/results"), 410),
    "expired result": (_get("/jobs/{no_result}/results"), 410),
    "body too large": (
        _execute(content=BIG_BODY, headers={"Content-Type": "application/json"}),
        413,
    ),
    "body not declared JSON": (
        _execute(content=b"{}", headers={"Content-Type": "text/plain"}),
        415,
    ),
    "range outside the result": (_get("/jobs/{finished}/results", Range="bytes=900-999"), 416),
    "job failed": (_get("/jobs/{config_error}/results"), 500),
    "job skipped": (_get("/jobs/{skipped}/results"), 500),
    "unexpected server error": (_get("/jobs/{running}", "failing"), 500),
    "job store unavailable": (_get("/jobs/{running}", "down"), 503),
    "job ran out of time": (_get("/jobs/{time_limit}/results"), 504),
}

#: Pages that are no error but show one: a failed job, and the list of jobs.
ERROR_BEARING_PAGES: dict[str, Request] = {
    "failed job": _get("/jobs/{config_error}"),
    "failed job's input": _get("/jobs/{input_error}"),
    "jobs": _get("/jobs"),
    "dashboard": _get("/dashboard"),
}


def assert_no_server_path(response: httpx.Response) -> None:
    for directory in SERVER_DIRS:
        assert directory not in response.text, f"{directory} is served: {response.text[:2000]}"


@pytest.mark.parametrize("output", FORMATS)
def test_every_error_comes_in_the_format_asked_for(
    clients: dict[str, TestClient], jobs: dict[str, str], output: str
) -> None:
    headers, query = FORMATS[output]
    for name, (request, status) in ERRORS.items():
        if name == "unknown format" and query:
            continue  # f=xml is the error itself: it cannot be asked for with f=html
        # When the error is provoked, by a program or by a browser
        response = request(clients, jobs, headers, query)
        # Then it has its status, in the representation asked for, with the problem's detail
        assert response.status_code == status, f"{name}: {response.status_code} {response.text}"
        assert response.headers["content-type"] == ERROR_MEDIA_TYPES[output], name
        if ERROR_MEDIA_TYPES[output] == "application/problem+json":
            detail = response.json()["detail"]
        else:
            assert "<h1>" + str(status) in response.text, name
            assert "content-security-policy" in response.headers
            detail = html.unescape(
                response.text.split('<p id="problem-detail">')[1].split("</p>")[0]
            )
        assert detail, name
        # And it shows no directory of the server
        assert_no_server_path(response)
    for name, request in ERROR_BEARING_PAGES.items():
        response = request(clients, jobs, headers, query)
        assert response.status_code == 200, name
        assert "sample_data" in response.text, f"{name} shows no error: {response.text[:500]}"
        assert_no_server_path(response)


def test_an_error_page_keeps_the_problems_headers(clients: dict[str, TestClient]) -> None:
    # A browser is told how to authenticate, and when to come back, as a program is
    page = clients["secured"].post("/processes/echo/execution?f=html", json={"inputs": {}})
    assert page.status_code == 401
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["www-authenticate"] == 'Bearer realm="geotasks"'
    down = clients["down"].get("/jobs/0f8fad5b-d9cb-469f-a165-70867728950e?f=html")
    assert down.status_code == 503
    assert down.headers["content-type"].startswith("text/html")
    assert down.headers["retry-after"] == "5"
    assert "the job store is unavailable" in down.text


def test_every_error_status_the_api_declares_is_provoked() -> None:
    openapi = build_openapi(list(default_catalogue()), server_url="/", secured=True)
    declared = {
        int(status)
        for path in openapi["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict)
        for status in operation.get("responses", {})
        if status[0] in "45"
    }
    assert declared <= {status for _, status in ERRORS.values()}


def test_a_failed_health_check_names_no_server_path(geotasks_env: str) -> None:
    # Given an API whose database is reached through a Unix socket that is not there
    settings = make_settings(f"postgresql://postgres@/none?host={PLANTED_DIR}")
    access = FailingAccess(Database(geotasks_env), settings)
    with TestClient(create_app(settings, access=access)) as client:
        # When a load balancer asks for its health
        response = client.get("/health")
    # Then it fails, saying why, without the socket's directory
    assert response.status_code == 503
    assert "PostgreSQL" in response.text
    assert_no_server_path(response)
