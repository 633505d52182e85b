"""``GET /dashboard``: the whole system as JSON or HTML, by content negotiation."""

from __future__ import annotations

from starlette.testclient import TestClient

from geotasks.postgres.pool import Database
from tests.integration.http.busy_system import make_busy_system
from tests.integration.http.conftest import TOKEN


def test_the_dashboard_json_shows_workers_queues_jobs_limits_and_schedules(
    client: TestClient, database: Database
) -> None:
    # Given a busy system
    busy = make_busy_system(database)

    # When the dashboard is asked for as JSON
    response = client.get("/dashboard", headers={"Accept": "application/json"})

    # Then it lists the workers, alive and lost, with where they run and their last heartbeat
    assert response.status_code == 200
    document = response.json()
    workers = {(w["host"], w["pid"]): w for w in document["workers"]}
    assert {key: w["state"] for key, w in workers.items()} == {
        ("host-a", 100): "alive",
        ("host-b", 200): "lost",
    }
    assert workers["host-a", 100]["queues"] == ["default", "geo"]
    assert workers["host-b", 200]["last_heartbeat"] < workers["host-a", 100]["last_heartbeat"]
    # And the queues of the Postgres broker
    (geo,) = document["queues"]
    assert (geo["name"], geo["ready"], geo["delayed"], geo["in_flight"], geo["dead_letters"]) == (
        "geo",
        2,
        1,
        0,
        1,
    )
    # And the jobs of the last hour by actor, each number linking to the jobs it counts
    (echo,) = document["actors"]
    assert (echo["finished"], echo["failed"]) == (4, 1)
    assert echo["failed_href"] == "http://testserver/jobs?processID=echo&status=failed&f=html"
    assert echo["p50_s"] == 0.3
    minutes = document["per_minute"]
    assert len(minutes["minutes"]) == 60
    (series,) = minutes["series"]
    assert (sum(series["finished"]), sum(series["failed"])) == (4, 1)
    # And the failure itself, linking to its job
    (failure,) = document["recent_failures"]
    assert failure["jobID"] == busy.failed_job_id
    assert failure["error"] == "InputError: no such dataset: parcels"
    assert failure["href"] == f"http://testserver/jobs/{busy.failed_job_id}?f=html"
    # And the limits in use, and the late schedule
    assert [(r["actor"], r["in_use"], r["period_s"]) for r in document["rate_limits"]] == [
        ("echo", 2, 60.0)
    ]
    assert [(c["actor"], c["in_use"]) for c in document["concurrency_limits"]] == [("echo", 1)]
    (schedule,) = document["schedules"]
    assert (schedule["actor"], schedule["cron"], schedule["late"]) == (
        "every_minute",
        "* * * * *",
        True,
    )


def test_the_dashboard_html_renders_the_same_document(
    client: TestClient, database: Database
) -> None:
    busy = make_busy_system(database)
    page = client.get("/dashboard", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f'href="http://testserver/jobs/{busy.failed_job_id}?f=html"' in page.text
    assert 'class="state state-lost"' in page.text
    assert "static/uplot/uPlot.iife.min.js" in page.text


def test_the_dashboard_needs_the_token_when_tokens_are_set(secured_client: TestClient) -> None:
    assert secured_client.get("/dashboard?f=json").status_code == 401
    # The page itself loads, and asks for the token
    shell = secured_client.get("/dashboard?f=html")
    assert shell.status_code == 200
    assert 'id="token-form" class="token"' in shell.text and 'id="workers"' not in shell.text
    authorized = secured_client.get(
        "/dashboard?f=json", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert authorized.status_code == 200
    assert authorized.json()["workers"] == []


def test_the_dashboard_is_in_the_openapi_document(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/dashboard"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert {"workers", "queues"} <= set(schema["required"])
