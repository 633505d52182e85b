"""``GET /metrics``: the whole system in Prometheus' format, read back with its own parser."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from geotasks.http.app import create_app
from geotasks.http.store import JobAccess
from geotasks.postgres.pool import Database
from tests.integration.http.busy_system import make_busy_system
from tests.integration.http.conftest import TOKEN, make_settings

LOOPBACK = ("127.0.0.1", 50000)


@pytest.fixture
def metrics_client(database: Database, geotasks_env: str) -> Iterator[TestClient]:
    settings = make_settings(geotasks_env, api_metrics="true")
    app = create_app(settings, access=JobAccess(database, settings))
    with TestClient(app, base_url="http://testserver", client=LOOPBACK) as client:
        yield client


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, keyed by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_show_the_whole_system(metrics_client: TestClient, database: Database) -> None:
    # Given a busy system
    make_busy_system(database)

    # When Prometheus scrapes /metrics from loopback
    response = metrics_client.get("/metrics")

    # Then prometheus_client's own parser reads every metric with the system's numbers
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    types = {f.name: f.type for f in text_string_to_metric_families(response.text)}
    assert types["geotasks_job_duration_seconds"] == "histogram"
    assert found["geotasks_broker_up", ()] == 1
    depth = "geotasks_queue_depth"
    assert found[depth, (("queue", "geo"), ("state", "ready"))] == 2
    assert found[depth, (("queue", "geo"), ("state", "delayed"))] == 1
    assert found[depth, (("queue", "geo"), ("state", "in_flight"))] == 0
    assert found["geotasks_queue_oldest_age_seconds", (("queue", "geo"),)] >= 0
    assert found["geotasks_dead_letters", (("queue", "geo"),)] == 1
    assert found["geotasks_workers", (("state", "alive"),)] == 1
    assert found["geotasks_workers", (("state", "lost"),)] == 1
    assert found["geotasks_schedulers", (("state", "alive"),)] == 1
    assert found["geotasks_jobs_total", (("actor", "echo"), ("status", "SUCCESS"))] == 3
    assert found["geotasks_jobs_total", (("actor", "echo"), ("status", "FAILURE"))] == 1
    bucket = "geotasks_job_duration_seconds_bucket"
    assert found[bucket, (("actor", "echo"), ("le", "0.5"))] == 2
    assert found[bucket, (("actor", "echo"), ("le", "1.0"))] == 2
    assert found[bucket, (("actor", "echo"), ("le", "5.0"))] == 4
    assert found[bucket, (("actor", "echo"), ("le", "+Inf"))] == 4
    assert found["geotasks_job_duration_seconds_count", (("actor", "echo"),)] == 4
    assert found["geotasks_job_duration_seconds_sum", (("actor", "echo"),)] == pytest.approx(3.5)
    assert found["geotasks_rate_limit_in_use", (("actor", "echo"),)] == 2
    assert found["geotasks_concurrency_in_use", (("actor", "echo"),)] == 1
    assert 480 <= found["geotasks_schedule_lateness_seconds", (("actor", "every_minute"),)] <= 600


def test_metrics_answer_loopback_only_without_tokens(database: Database, geotasks_env: str) -> None:
    settings = make_settings(geotasks_env, api_metrics="true")
    app = create_app(settings, access=JobAccess(database, settings))
    with TestClient(app, base_url="http://testserver", client=("192.0.2.7", 50000)) as remote:
        assert remote.get("/metrics").status_code == 403


def test_metrics_need_a_token_when_tokens_are_set(database: Database, geotasks_env: str) -> None:
    settings = make_settings(geotasks_env, api_metrics="true", api_tokens=TOKEN)
    app = create_app(settings, access=JobAccess(database, settings))
    with TestClient(app, base_url="http://testserver", client=("192.0.2.7", 50000)) as remote:
        assert remote.get("/metrics").status_code == 401
        scraped = remote.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert scraped.status_code == 200
        assert "geotasks_workers" in scraped.text


def test_metrics_are_off_unless_asked_for(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 404
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]
