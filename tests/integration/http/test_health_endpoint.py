"""``GET /health``: the health report for load balancers, 200 or 503."""

from __future__ import annotations

from dramatiq.message import Message
from starlette.testclient import TestClient

from geotasks.postgres.broker import PostgresBroker
from geotasks.postgres.pool import Database
from tests.integration.registry import register


def test_health_answers_200_while_healthy_and_503_naming_the_cause(
    client: TestClient, database: Database
) -> None:
    # Given an alive worker on "default" and no scheduler
    register(database, queues=("default",))

    # Then /health is 200, with the missing scheduler as a warning
    healthy = client.get("/health")
    assert healthy.status_code == 200
    assert healthy.json()["status"] == "warn"
    assert {c["name"]: c["status"] for c in healthy.json()["checks"]}["scheduler"] == "warn"

    # When a message waits on a queue no worker serves, Then it is 503 naming the queue
    PostgresBroker(database=database).enqueue(
        Message(queue_name="geo", actor_name="a", args=(), kwargs={}, options={})
    )
    unwell = client.get("/health")
    assert unwell.status_code == 503
    assert unwell.headers["cache-control"] == "no-store"
    failed = [c for c in unwell.json()["checks"] if c["status"] == "fail"]
    assert [c["name"] for c in failed] == ["workers"]
    assert "no alive worker serves 'geo' (1 ready)" in failed[0]["detail"]


def test_health_is_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/health"]["get"]["responses"]) == {"200", "503"}
