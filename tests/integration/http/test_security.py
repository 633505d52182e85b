"""Safe by default: tokens, CORS, request limits, headers, and problems for every error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dramatiq.brokers.stub import StubBroker
from starlette.testclient import TestClient

from geotasks.http.app import create_app
from geotasks.http.store import JobAccess
from geotasks.job_model import JobState
from geotasks.postgres.pool import Database
from tests.integration.http.conftest import TOKEN, finished_job, make_settings, record_job

ECHO = {"inputs": {"stringInput": "x"}}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_submitting_needs_the_token(secured_client: TestClient) -> None:
    response = secured_client.post("/processes/echo/execution", json=ECHO)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="geotasks"'
    wrong = secured_client.post(
        "/processes/echo/execution", json=ECHO, headers={"Authorization": "Bearer " + "x" * 26}
    )
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert (
        secured_client.post("/processes/echo/execution", json=ECHO, headers=AUTH).status_code == 201
    )


def test_listing_and_dismissing_need_the_token(
    secured_client: TestClient, database: Database
) -> None:
    job_id = record_job(database, [JobState.PENDING])
    assert secured_client.get("/jobs").status_code == 401
    assert secured_client.delete(f"/jobs/{job_id}").status_code == 401
    assert [j["jobID"] for j in secured_client.get("/jobs", headers=AUTH).json()["jobs"]] == [
        job_id
    ]
    assert secured_client.delete(f"/jobs/{job_id}", headers=AUTH).status_code == 200


def test_the_job_id_alone_reads_a_job_and_its_result(
    secured_client: TestClient, database: Database
) -> None:
    # The id is a random UUID handed to whoever submitted: it is the key to the result.
    job_id = finished_job(database, {"answer": 42})
    assert secured_client.get(f"/jobs/{job_id}").json()["status"] == "successful"
    assert secured_client.get(f"/jobs/{job_id}/results").json() == {"answer": 42}


def test_the_jobs_page_asks_for_the_token_without_listing_anything(
    secured_client: TestClient, database: Database
) -> None:
    job_id = record_job(database, [JobState.PENDING])
    page = secured_client.get("/jobs?f=html")
    assert page.status_code == 200
    assert '<div id="token-form" class="token">' in page.text
    assert job_id not in page.text


@pytest.fixture
def cors_client(database: Database, geotasks_env: str, broker: StubBroker) -> Iterator[TestClient]:
    settings = make_settings(geotasks_env, api_cors_origins="https://maps.example.org")
    access = JobAccess(database, settings, broker=broker)
    with TestClient(create_app(settings, access=access)) as client:
        yield client


def test_cors_allows_the_configured_origin_only(
    cors_client: TestClient, client: TestClient
) -> None:
    preflight = cors_client.options(
        "/processes/echo/execution",
        headers={
            "Origin": "https://maps.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, prefer",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://maps.example.org"
    response = cors_client.get("/processes", headers={"Origin": "https://maps.example.org"})
    assert response.headers["access-control-allow-origin"] == "https://maps.example.org"
    assert "Location" in response.headers["access-control-expose-headers"]
    other = cors_client.get("/processes", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    # Without GEOTASKS_API_CORS_ORIGINS no origin is allowed.
    default = client.get("/processes", headers={"Origin": "https://maps.example.org"})
    assert "access-control-allow-origin" not in default.headers


def test_a_body_over_the_limit_is_413(client: TestClient) -> None:
    big = b'{"inputs": {"stringInput": "' + b"x" * (1024 * 1024) + b'"}}'
    response = client.post(
        "/processes/echo/execution", content=big, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    # A body sent in chunks, with no Content-Length to check first, is cut off too.
    chunked = client.post(
        "/processes/echo/execution",
        content=iter([big[i : i + 65536] for i in range(0, len(big), 65536)]),
        headers={"Content-Type": "application/json"},
    )
    assert chunked.status_code == 413


def test_a_body_that_is_not_json_is_refused(client: TestClient) -> None:
    assert client.post("/processes/echo/execution", content=b"inputs=x").status_code == 415
    response = client.post(
        "/processes/echo/execution", content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


def test_every_response_has_the_safety_headers(client: TestClient) -> None:
    for response in (client.get("/"), client.get("/nowhere"), client.get("/?f=html")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    csp = client.get("/?f=html").headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nowhere", 404), ("PUT", "/processes", 405), ("GET", "/processes?colour=red", 400)],
)
def test_errors_are_problem_documents(
    client: TestClient, method: str, path: str, status: int
) -> None:
    response = client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    document = response.json()
    assert document["status"] == status
    assert document["detail"]


def test_an_unreachable_job_store_is_503_not_a_traceback(geotasks_env: str) -> None:
    # Given an API whose database is not listening
    settings = make_settings(geotasks_env)
    database = Database("postgresql://postgres@127.0.0.1:1/none", connect_timeout_s=1, attempts=1)
    with TestClient(create_app(settings, access=JobAccess(database, settings))) as client:
        # When a job is read
        response = client.get("/jobs/0f8fad5b-d9cb-469f-a165-70867728950e")
    # Then the answer is a 503 problem asking to retry, without internals
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "127.0.0.1" not in response.text


def test_the_dataset_picker_lists_the_data_directory_only_on_an_open_server(
    client: TestClient, secured_client: TestClient
) -> None:
    # The process page is public: a server that asks for a token does not list its datasets
    option = '<option value="naturalearth_lowres">'
    assert option in client.get("/processes/shapefile_to_geojson?f=html").text
    assert option not in secured_client.get("/processes/shapefile_to_geojson?f=html").text
