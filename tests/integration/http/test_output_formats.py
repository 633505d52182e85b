"""Results in other formats over HTTP: asked for by outputs.<name>.format.mediaType, served
with their media type and file name."""

from __future__ import annotations

import pytest
from dramatiq import Message
from dramatiq.brokers.stub import StubBroker
from starlette.testclient import TestClient

from geotasks.geo.result import FileResult
from geotasks.postgres.pool import Database
from tests.integration.http.conftest import finished_job

GPKG = "application/geopackage+sqlite3"


def execute(client: TestClient, outputs: dict[str, object]) -> tuple[int, dict[str, object]]:
    response = client.post(
        "/processes/shapefile_to_geojson/execution",
        json={"inputs": {"name": "parcels"}, "outputs": outputs},
    )
    return response.status_code, response.json()


def test_the_media_type_asked_for_becomes_the_job_s_output_format(
    client: TestClient, broker: StubBroker
) -> None:
    # When a GeoPackage is asked for as the result's format
    status, _ = execute(client, {"result": {"format": {"mediaType": GPKG}}})
    # Then the job is sent with that output_format; GeoJSON, the default, adds no option
    assert status == 201
    execute(client, {"result": {"format": {"mediaType": "application/geo+json"}}})
    sent = [message.options.get("output_format") for message in _sent(broker)]
    assert sent == [GPKG, None]


@pytest.mark.parametrize("media_type", ["text/csv", "image/png"])
def test_a_format_geotasks_cannot_write_is_refused(
    client: TestClient, broker: StubBroker, media_type: str
) -> None:
    status, problem = execute(client, {"result": {"format": {"mediaType": media_type}}})
    assert status == 400
    assert "output_format must be one of" in str(problem["detail"])
    assert _sent(broker) == []


def test_a_file_result_is_served_with_its_media_type_and_file_name(
    client: TestClient, database: Database
) -> None:
    # Given a job whose result is a GeoPackage
    result = FileResult(GPKG, "shapefile_to_geojson.gpkg")
    result.write(b"SQLite format 3\x00" + bytes(100))
    job_id = finished_job(database, result)
    # When its result is fetched, whole or a range
    whole = client.get(f"/jobs/{job_id}/results")
    head = client.get(f"/jobs/{job_id}/results", headers={"Range": "bytes=0-5"})
    # Then the bytes come with the media type and the name to save them under
    assert whole.headers["content-type"] == GPKG
    assert whole.headers["content-disposition"] == f'attachment; filename="{job_id}.gpkg"'
    assert whole.content.startswith(b"SQLite format 3")
    assert (head.status_code, head.content) == (206, b"SQLite")


def _sent(broker: StubBroker) -> list[Message[object]]:
    """The messages waiting in the stub broker's queues."""
    return [Message.decode(data) for queue in broker.queues.values() for data in list(queue.queue)]
