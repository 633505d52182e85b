"""Results are streamed from the store: whole, by byte range, gzipped, conditionally."""

from __future__ import annotations

import gzip
import time

import orjson
import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from geotasks.geo.result import GeoJSONResult
from geotasks.http.process_routes import MAX_SYNC_WAITS
from geotasks.postgres.pool import Database
from geotasks.postgres.results import CHUNK_BYTES
from tests.integration.http.conftest import feature_collection, finished_job, wait_for_status


@pytest.fixture
def large(database: Database) -> tuple[str, bytes]:
    """A finished job whose GeoJSON result spans several stored chunks."""
    data = feature_collection(30_000)
    assert len(data) > 2 * CHUNK_BYTES
    return finished_job(database, GeoJSONResult.from_bytes(data)), data


def test_a_large_result_is_streamed_whole_as_geojson(
    client: TestClient, large: tuple[str, bytes]
) -> None:
    job_id, data = large
    response = client.get(f"/jobs/{job_id}/results", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.content == data


def test_a_range_across_stored_chunks(client: TestClient, large: tuple[str, bytes]) -> None:
    # Given a range that starts in one stored chunk and ends in the next
    job_id, data = large
    first, last = CHUNK_BYTES - 10, CHUNK_BYTES + 9
    # When it is asked for
    response = client.get(f"/jobs/{job_id}/results", headers={"Range": f"bytes={first}-{last}"})
    # Then exactly those bytes come back as a 206
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {first}-{last}/{len(data)}"
    assert response.content == data[first : last + 1]


def test_a_suffix_range_resumes_a_download(client: TestClient, large: tuple[str, bytes]) -> None:
    job_id, data = large
    response = client.get(f"/jobs/{job_id}/results", headers={"Range": "bytes=-100"})
    assert response.status_code == 206
    assert response.content == data[-100:]


def test_a_range_beyond_the_result_is_416(client: TestClient, large: tuple[str, bytes]) -> None:
    job_id, data = large
    response = client.get(f"/jobs/{job_id}/results", headers={"Range": f"bytes={len(data)}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(data)}"
    assert response.headers["content-type"] == "application/problem+json"


def test_gzip_when_the_client_accepts_it(client: TestClient, large: tuple[str, bytes]) -> None:
    # Given a client that accepts gzip, When it fetches the result
    job_id, data = large
    with client.stream(
        "GET", f"/jobs/{job_id}/results", headers={"Accept-Encoding": "gzip"}
    ) as response:
        raw = b"".join(response.iter_raw())
    # Then it is gzipped, much smaller, and the same document once inflated
    assert response.headers["content-encoding"] == "gzip"
    assert len(raw) < len(data) / 4
    assert gzip.decompress(raw) == data


def test_a_range_is_never_gzipped(client: TestClient, large: tuple[str, bytes]) -> None:
    job_id, data = large
    response = client.get(
        f"/jobs/{job_id}/results", headers={"Accept-Encoding": "gzip", "Range": "bytes=0-9999"}
    )
    assert response.status_code == 206
    assert "content-encoding" not in response.headers
    assert response.content == data[:10_000]


def test_head_gives_the_size_without_the_body(client: TestClient, large: tuple[str, bytes]) -> None:
    job_id, data = large
    response = client.head(f"/jobs/{job_id}/results")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(data))
    assert response.content == b""


def test_an_unchanged_result_is_not_sent_again(
    client: TestClient, large: tuple[str, bytes]
) -> None:
    job_id, _ = large
    etag = client.head(f"/jobs/{job_id}/results").headers["etag"]
    response = client.get(f"/jobs/{job_id}/results", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""


def test_respond_sync_answers_with_the_result_when_the_job_is_quick(
    client: TestClient, worker: Worker
) -> None:
    # Given a worker, When a quick job is executed with Prefer: respond-sync
    response = client.post(
        "/processes/echo/execution",
        json={"inputs": {"stringInput": "now"}},
        headers={"Prefer": "respond-sync"},
    )
    # Then the answer is its result, and says where the job is
    assert response.status_code == 200
    assert response.headers["preference-applied"] == "respond-sync"
    assert response.json() == {"stringInput": "now"}
    job_url = response.headers["link"].split(">")[0].lstrip("<")
    assert client.get(job_url).json()["status"] == "successful"


def test_respond_sync_document_wraps_the_output(client: TestClient, worker: Worker) -> None:
    response = client.post(
        "/processes/echo/execution",
        json={"inputs": {"stringInput": "doc"}, "response": "document"},
        headers={"Prefer": "respond-sync"},
    )
    assert response.status_code == 200
    assert orjson.loads(response.content) == {"echo": {"stringInput": "doc"}}


def test_respond_sync_falls_back_to_async_when_the_job_is_slow(
    client: TestClient, worker: Worker
) -> None:
    # Given a job slower than the wait the client allows
    response = client.post(
        "/processes/echo/execution",
        json={"inputs": {"stringInput": "slow", "pause_s": 1.5}},
        headers={"Prefer": "respond-sync, wait=1"},
    )
    # Then it is answered asynchronously, and finishes later
    assert response.status_code == 201
    assert "preference-applied" not in response.headers
    document = wait_for_status(client, response.json()["jobID"], {"successful"})
    assert document["progress"] == 100


def test_progress_is_reported_while_running(client: TestClient, worker: Worker) -> None:
    job_id = client.post(
        "/processes/echo/execution", json={"inputs": {"stringInput": "p", "pause_s": 2}}
    ).json()["jobID"]
    seen = set()
    document = wait_for_status(client, job_id, {"running"})
    while document["status"] == "running":
        seen.add(document.get("progress"))
        document = client.get(f"/jobs/{job_id}").json()
    assert any(isinstance(p, int) and 0 < p < 100 for p in seen), seen
    assert document["status"] == "successful"


def test_respond_sync_is_answered_async_when_too_many_requests_wait(
    client: TestClient, worker: Worker
) -> None:
    # Given every synchronous wait slot taken by other requests
    processes = client.app.state.processes  # type: ignore[attr-defined]
    for _ in range(MAX_SYNC_WAITS):
        processes._sync_waits.acquire()
    try:
        # When one more client asks to wait
        started = time.monotonic()
        response = client.post(
            "/processes/echo/execution",
            json={"inputs": {"stringInput": "busy", "pause_s": 1}},
            headers={"Prefer": "respond-sync"},
        )
        # Then it is answered asynchronously, without waiting for its job
        assert response.status_code == 201
        assert time.monotonic() - started < 1
    finally:
        for _ in range(MAX_SYNC_WAITS):
            processes._sync_waits.release()
