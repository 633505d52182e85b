"""An application's own actors, end to end: a real worker loads the application's modules through
GEOTASKS_MODULES, and clients that never import them send by name (Python, CLI, HTTP, Flask)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dramatiq.message import Message

from geotasks.broker import build_broker
from geotasks.jobs import Job
from geotasks.postgres.pool import Database
from geotasks.settings import load_settings
from tests.acceptance.conftest import ROOT, RunGeotasks, clean_environment
from tests.acceptance.processes import Service, running
from tests.waiting import wait_until

EXAMPLE_DIR = ROOT / "examples" / "celery_port"

#: An application module exercising the result rules, loaded by the worker only.
RESULT_SHAPES = '''
from __future__ import annotations

import datetime
from collections.abc import Iterator

from shapely.geometry import Point, Polygon

import geotasks


@geotasks.actor
def points(count: int) -> Iterator[Point]:
    """Yield count points along the equator."""
    return (Point(i, 0) for i in range(count))


@geotasks.actor
def pairs() -> list[tuple[Point, dict[str, str]]]:
    return [(Point(1, 2), {"name": "a"}), (Point(3, 4), {"name": "b"})]


@geotasks.actor
def summary(name: str, count: int = 3) -> dict[str, object]:
    return {"name": name, "count": count}


@geotasks.actor
def area_of(shape: Polygon) -> float:
    return round(shape.area, 6)


@geotasks.actor
def when() -> datetime.datetime:
    return datetime.datetime(2026, 12, 7)


@geotasks.actor
def nested() -> dict[str, object]:
    return {"where": Point(0, 0)}
'''

#: What a web process runs: it imports geotasks only, never the application's modules.
CLIENT = """
import json, sys
import geotasks

out = {}
try:
    geotasks.submit("get_shps", 42)
except geotasks.InputError as exc:
    out["refused"] = str(exc)
big = geotasks.submit("get_shps", "naturalearth_lowres", min_area_km2=5_000_000)
square = {"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]]]}
jobs = {
    "points": geotasks.submit("points", 4),
    "pairs": geotasks.submit("pairs"),
    "summary": geotasks.submit("summary", "x"),
    "area_of": geotasks.submit("area_of", square),
}
for name, job in jobs.items():
    out[name] = {"result": job.get(timeout=60), "media": job.result_info().media_type}
for name in ("when", "nested"):
    job = geotasks.submit(name)
    try:
        job.get(timeout=60)
    except geotasks.JobFailed as exc:
        info = job.info()
        out[name] = {"status": info.status.value, "error": exc.error_message, "runs": info.runs}
collection = big.get(timeout=120)
out["get_shps"] = sorted(f["geometry"]["type"] for f in collection["features"])
out["modules"] = [m for m in ("tasks", "result_shapes", "shapely", "fiona") if m in sys.modules]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def client_env(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """A client's environment: the database, and nothing of the application."""
    return clean_environment(
        GEOTASKS_DATABASE_URL=module_database_url,
        GEOTASKS_TMP_DIR=str(tmp_path_factory.mktemp("client-tmp")),
    )


@pytest.fixture(scope="module")
def worker(
    module_database_url: str, client_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """``dramatiq geotasks.worker`` serving the example's ``tasks`` and ``result_shapes``,
    both loaded from directories only the worker has on its path."""
    app_dir = tmp_path_factory.mktemp("app")
    (app_dir / "result_shapes.py").write_text(RESULT_SHAPES)
    env = {
        **client_env,
        "GEOTASKS_MODULES": "tasks, result_shapes",
        "GEOTASKS_DATA_DIR": str(ROOT / "sample_data"),
        "PYTHONPATH": f"{EXAMPLE_DIR}:{app_dir}:{client_env['PYTHONPATH']}",
    }
    with running(env, tmp_path_factory.mktemp("logs")) as services:
        service = services.dramatiq("worker", "--processes", "1", "--threads", "4")
        service.wait_for_actors(module_database_url, "get_shps", "nested")
        yield service


def test_a_client_without_the_code_sends_by_name_and_gets_every_result_shape(
    worker: Service, client_env: dict[str, str]
) -> None:
    # When a separate process that cannot import the application submits by name
    done = subprocess.run(
        [sys.executable, "-c", CLIENT],
        env=client_env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr + worker.log()
    out: dict[str, Any] = json.loads(done.stdout)

    # Then a bad argument was refused before sending, against the published JSON Schemas
    assert "argument 'name': 42 is not of type 'string'" in out["refused"]
    # And the ported Celery task ran, returning GeoJSON polygons
    assert out["get_shps"] and set(out["get_shps"]) <= {"Polygon", "MultiPolygon"}
    # And every accepted shape was stored as the rules say
    assert out["points"]["media"] == "application/geo+json"
    assert [f["geometry"]["coordinates"] for f in out["points"]["result"]["features"]] == [
        [0.0, 0.0],
        [1.0, 0.0],
        [2.0, 0.0],
        [3.0, 0.0],
    ]
    assert [f["properties"] for f in out["pairs"]["result"]["features"]] == [
        {"name": "a"},
        {"name": "b"},
    ]
    assert out["summary"] == {
        "result": {"name": "x", "count": 3},
        "media": "application/json",
    }
    assert out["area_of"]["result"] == 4.0
    # And values that cannot be stored failed once, naming the type and what to return instead
    for name, type_name in (("when", "datetime"), ("nested", "Point")):
        assert out[name]["status"] == "FAILURE"
        assert out[name]["runs"] == 1
        assert type_name in out[name]["error"]
        assert "return" in out[name]["error"]
    # And the client never loaded the application or the geo stack
    assert out["modules"] == []


def test_the_worker_checks_a_message_sent_by_other_means(
    worker: Service, module_database_url: str
) -> None:
    # Given a message built by hand, past every client-side check
    settings = load_settings({"GEOTASKS_DATABASE_URL": module_database_url})
    broker = build_broker(settings)
    try:
        message = broker.enqueue(
            Message(queue_name="default", actor_name="summary", args=(7,), kwargs={}, options={})
        )
        database = Database(module_database_url, max_connections=1)
        try:
            job = Job(message.message_id, database=database)
            info = job.wait(timeout=60)
        finally:
            database.close()
    finally:
        broker.close()

    # Then the worker refused it on its first attempt, with the same message a client gets
    assert info.status.value == "FAILURE"
    assert info.runs == 1
    assert info.error is not None
    assert "argument 'name': 7 is not of type 'string'" in info.error.message


def test_geotasks_actors_lists_what_the_worker_published(
    worker: Service, client_env: dict[str, str], run_geotasks: RunGeotasks
) -> None:
    listing = run_geotasks("actors", env=client_env)

    assert listing.returncode == 0, listing.stderr
    assert "get_shps  (queue default, returns application/geo+json; published by" in listing.stdout
    assert "get_shps(name: string, min_area_km2: number = 0.0)" in listing.stdout
    assert "Polygons of a dataset, the small ones left out." in listing.stdout
    assert "buffer_features  (queue geo" in listing.stdout
    # Maintenance actors are not for clients
    assert "delete_expired_results" not in listing.stdout


def test_the_http_api_lists_and_runs_the_applications_actor(
    worker: Service, module_database_url: str
) -> None:
    from starlette.testclient import TestClient

    from geotasks.http.app import create_app
    from geotasks.http.store import JobAccess

    settings = load_settings({"GEOTASKS_DATABASE_URL": module_database_url})
    database = Database(module_database_url, max_connections=2)
    broker = build_broker(settings)
    try:
        app = create_app(settings, access=JobAccess(database, settings, broker=broker))
        with TestClient(app) as client:
            ids = [p["id"] for p in client.get("/processes?limit=1000").json()["processes"]]
            described = client.get("/processes/summary").json()
            bad = client.post("/processes/summary/execution", json={"inputs": {"name": 3}})
            created = client.post(
                "/processes/summary/execution",
                json={"inputs": {"name": "http", "count": 2}},
                headers={"Prefer": "respond-async"},
            )
            assert created.status_code == 201, created.text
            job_url = created.headers["location"]
            wait_until(lambda: client.get(job_url).json()["status"] == "successful", 60, "the job")
            result = client.get(f"{job_url}/results")
    finally:
        broker.close()
        database.close()

    assert "summary" in ids and "get_shps" in ids and "buffer_features" in ids
    assert described["inputs"]["count"]["schema"]["default"] == 3
    assert bad.status_code == 400
    assert result.json() == {"name": "http", "count": 2}


def test_the_example_flask_view_submits_and_follows_by_name(
    worker: Service, client_env: dict[str, str]
) -> None:
    pytest.importorskip("flask")
    script = textwrap.dedent(
        """
        import json, sys, time
        sys.path.insert(0, sys.argv[1])
        from web import app
        client = app.test_client()
        bad = client.post("/shapes", json={"name": "naturalearth_lowres", "min_area_km2": "big"})
        started = client.post(
            "/shapes", json={"name": "naturalearth_lowres", "min_area_km2": 5000000}
        )
        job_id = started.get_json()["job_id"]
        for _ in range(600):
            body = client.get(f"/jobs/{job_id}").get_json()
            if body["status"] in ("SUCCESS", "FAILURE"):
                break
            time.sleep(0.1)
        print(json.dumps({"bad": bad.status_code, "error": bad.get_json()["error"],
                          "started": started.status_code, "body": body,
                          "tasks": "tasks" in sys.modules}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(EXAMPLE_DIR)],
        env=client_env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["bad"], out["started"], out["tasks"]) == (400, 202, False)
    assert "argument 'min_area_km2': 'big' is not of type 'number'" in out["error"]
    assert out["body"]["status"] == "SUCCESS"
    assert out["body"]["result"]["type"] == "FeatureCollection"


def test_a_module_that_fails_to_import_stops_the_worker_naming_it(
    client_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "broken_tasks.py").write_text("import no_such_library\n")
    env = {
        **client_env,
        "GEOTASKS_MODULES": "broken_tasks",
        "PYTHONPATH": f"{tmp_path}:{client_env['PYTHONPATH']}",
    }
    with running(env, tmp_path) as services:
        service = services.dramatiq("worker", "--processes", "1", "--threads", "1")
        code = service.process.wait(timeout=60)

    assert code != 0
    assert "GEOTASKS_MODULES: cannot import 'broken_tasks'" in service.log()
    assert "No module named 'no_such_library'" in service.log()
