"""One test per requirement of the conformance classes the server declares.

OGC API - Processes - Part 1: Core 1.0 (OGC 18-062r2): classes core, ogc-process-description,
json, html, oas30, job-list and dismiss. Each test is named after its requirement
(``/req/core/landingpage-success`` → ``test_req_core_landingpage_success``). The oas30
implementation requirement is also exercised by schemathesis (test_schemathesis.py).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from dramatiq import Worker
from jsonschema import Draft7Validator
from starlette.testclient import TestClient

from geotasks.catalogue import builtin_actors, find_actor
from geotasks.http.landing import CONFORMANCE_CLASSES, REL_CONFORMANCE, REL_JOB_LIST, REL_PROCESSES
from geotasks.http.openapi import OPENAPI_MEDIA_TYPE
from geotasks.http.problems import NO_SUCH_JOB, NO_SUCH_PROCESS, RESULT_NOT_READY
from geotasks.http.status import REL_RESULTS
from geotasks.job_model import JobError, JobState
from geotasks.postgres.job_status import JobStore
from geotasks.postgres.pool import Database
from geotasks.registry import DECLARED, ActorSpec
from tests.integration.http.conftest import finished_job, record_job, shift_job, wait_for_status

CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"


def offered() -> list[str]:
    """The processes the API offers when no worker published anything: the built-in actors,
    then those declared in this process (echo, by the conftest)."""
    declared = [name for name, actor in DECLARED.items() if getattr(actor, "public", False)]
    return list(dict.fromkeys([*builtin_actors(), *declared]))


def find(name: str) -> ActorSpec:
    """The actor ``name``, as this process knows it."""
    return find_actor(name)


ECHO = {"inputs": {"stringInput": "hello"}}


def schema(client: TestClient, name: str) -> Draft7Validator:
    """A validator for a schema of the served OpenAPI document (refs resolved in it)."""
    document = client.get("/openapi.json").json()
    return Draft7Validator(
        {**document["components"]["schemas"][name], "components": document["components"]}
    )


def rels(document: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {link["rel"]: link for link in document["links"]}


def execute_echo(client: TestClient, **inputs: Any) -> str:
    response = client.post(
        "/processes/echo/execution", json={"inputs": {"stringInput": "hi", **inputs}}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["jobID"])


# --- core ----------------------------------------------------------------------------------


def test_req_core_http(static_client: TestClient) -> None:
    # Given the landing page, When it is fetched with HEAD and with GET
    head = static_client.head("/")
    get = static_client.get("/")
    # Then HTTP 1.1 semantics hold: same status and length, no body for HEAD
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]


def test_req_core_landingpage_op(static_client: TestClient) -> None:
    assert static_client.get("/").status_code == 200


def test_req_core_landingpage_success(static_client: TestClient) -> None:
    # When the landing page is fetched
    document = static_client.get("/").json()
    # Then it links the API definition, the conformance declaration, processes and jobs
    links = rels(document)
    assert links["service-desc"]["href"] == "http://testserver/openapi.json"
    assert links["service-desc"]["type"] == OPENAPI_MEDIA_TYPE
    assert links["service-doc"]["type"] == "text/html"
    assert links[REL_CONFORMANCE]["href"] == "http://testserver/conformance"
    assert links[REL_PROCESSES]["href"] == "http://testserver/processes"
    assert links[REL_JOB_LIST]["href"] == "http://testserver/jobs"
    assert schema(static_client, "landingPage").is_valid(document)


def test_req_core_api_definition_op(static_client: TestClient) -> None:
    href = rels(static_client.get("/").json())["service-desc"]["href"]
    assert static_client.get(href).status_code == 200


def test_req_core_api_definition_success(static_client: TestClient) -> None:
    response = static_client.get("/openapi.json")
    assert response.headers["content-type"] == OPENAPI_MEDIA_TYPE
    assert response.json()["openapi"].startswith("3.0")


def test_req_core_conformance_op(static_client: TestClient) -> None:
    assert static_client.get("/conformance").status_code == 200


def test_req_core_conformance_success(static_client: TestClient) -> None:
    document = static_client.get("/conformance").json()
    assert schema(static_client, "confClasses").is_valid(document)
    assert set(document["conformsTo"]) == set(CONFORMANCE_CLASSES)
    for name in ("core", "ogc-process-description", "json", "html", "oas30", "job-list", "dismiss"):
        assert CONF + name in document["conformsTo"]


def test_req_core_process_list(static_client: TestClient) -> None:
    assert static_client.get("/processes").status_code == 200


def test_req_core_process_list_success(static_client: TestClient) -> None:
    # When the process list is fetched
    document = static_client.get("/processes").json()
    # Then it is a processList holding every registered actor, each linking its description
    assert schema(static_client, "processList").is_valid(document)
    assert [p["id"] for p in document["processes"]] == offered()
    for summary in document["processes"]:
        assert (
            rels(summary)["self"]["href"] == f"http://testserver/processes/{summary['id']}?f=json"
        )


def test_req_core_pl_limit_definition(static_client: TestClient) -> None:
    document = static_client.get("/openapi.json").json()
    parameters = [p["$ref"] for p in document["paths"]["/processes"]["get"]["parameters"]]
    assert "#/components/parameters/limit" in parameters
    limit = document["components"]["parameters"]["limit"]["schema"]
    assert limit == {"type": "integer", "minimum": 1, "maximum": 1000}


def test_req_core_pl_limit_response(static_client: TestClient) -> None:
    assert len(static_client.get("/processes?limit=2").json()["processes"]) == 2
    assert static_client.get("/processes?limit=0").status_code == 400


def test_req_core_pl_links(static_client: TestClient) -> None:
    # Given a page smaller than the list, When the next link is followed to the end
    seen: list[str] = []
    url: str | None = "/processes?limit=3"
    while url is not None:
        document = static_client.get(url).json()
        seen.extend(p["id"] for p in document["processes"])
        url = rels(document).get("next", {}).get("href")
    # Then every process was listed once
    assert seen == offered()


def test_req_core_process(static_client: TestClient) -> None:
    assert static_client.get("/processes/buffer_features").status_code == 200


def test_req_core_process_success(static_client: TestClient) -> None:
    document = static_client.get("/processes/buffer_features").json()
    assert schema(static_client, "process").is_valid(document)
    assert document["id"] == "buffer_features"
    assert "async-execute" in document["jobControlOptions"]
    assert rels(document)["http://www.opengis.net/def/rel/ogc/1.0/execute"]["href"].endswith(
        "/processes/buffer_features/execution"
    )


def test_req_core_process_exception_no_such_process(static_client: TestClient) -> None:
    for response in (
        static_client.get("/processes/rm_rf"),
        static_client.post("/processes/rm_rf/execution", json=ECHO),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == NO_SUCH_PROCESS


def test_req_core_process_execute_op(client: TestClient) -> None:
    assert client.post("/processes/echo/execution", json=ECHO).status_code == 201


def test_req_core_process_execute_request(client: TestClient) -> None:
    # Given an execute request with inputs, outputs and a response mode
    body = {
        "inputs": {"stringInput": "x"},
        "outputs": {"echo": {"transmissionMode": "value"}},
        "response": "raw",
    }
    # Then it is accepted; an output the process does not have is not
    assert client.post("/processes/echo/execution", json=body).status_code == 201
    body["outputs"] = {"nothing": {}}
    assert client.post("/processes/echo/execution", json=body).status_code == 400


def test_req_core_process_execute_inputs(client: TestClient, worker: Worker) -> None:
    job_id = execute_echo(client, doubleInput=2.5)
    wait_for_status(client, job_id, {"successful"})
    assert client.get(f"/jobs/{job_id}/results").json() == {"stringInput": "hi", "doubleInput": 2.5}


def test_req_core_process_execute_input_inline_object(client: TestClient, worker: Worker) -> None:
    job_id = execute_echo(client, complexObjectInput={"a": [1, {"b": None}]})
    wait_for_status(client, job_id, {"successful"})
    assert client.get(f"/jobs/{job_id}/results").json()["complexObjectInput"] == {
        "a": [1, {"b": None}]
    }


def test_req_core_process_execute_input_array(client: TestClient, worker: Worker) -> None:
    job_id = execute_echo(client, arrayInput=[1, 2, 3])
    wait_for_status(client, job_id, {"successful"})
    assert client.get(f"/jobs/{job_id}/results").json()["arrayInput"] == [1, 2, 3]


def test_req_core_process_execute_input_inline_bbox(client: TestClient, worker: Worker) -> None:
    bbox = {"bbox": [51.9, 7.0, 52.0, 7.1], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}
    job_id = execute_echo(client, boundingBoxInput=bbox)
    wait_for_status(client, job_id, {"successful"})
    assert client.get(f"/jobs/{job_id}/results").json()["boundingBoxInput"] == bbox


def test_req_core_process_execute_input_inline_mixed(client: TestClient, worker: Worker) -> None:
    # A qualified value (value plus media type) mixed with plain values.
    job_id = execute_echo(client, doubleInput={"value": 4.5, "mediaType": "application/json"})
    wait_for_status(client, job_id, {"successful"})
    assert client.get(f"/jobs/{job_id}/results").json()["doubleInput"] == 4.5


def test_req_core_process_execute_input_validation(client: TestClient, database: Database) -> None:
    # Given inputs that fail the process's schema
    response = client.post(
        "/processes/buffer_features/execution",
        json={"inputs": {"name": "../secrets", "distance_m": "far"}},
    )
    # Then the server answers 400 listing each problem, and sends nothing
    assert response.status_code == 400
    problems = {error["input"] for error in response.json()["errors"]}
    assert problems == {"name", "distance_m"}
    assert client.get("/jobs").json()["jobs"] == []


def test_req_core_process_execute_default_execution_mode(client: TestClient) -> None:
    # The processes are async-execute only: without Prefer the answer is asynchronous.
    assert client.get("/processes/echo").json()["jobControlOptions"] == ["async-execute", "dismiss"]
    response = client.post("/processes/echo/execution", json=ECHO)
    assert response.status_code == 201
    assert "preference-applied" not in response.headers


def test_req_core_process_execute_auto_execution_mode(client: TestClient) -> None:
    response = client.post(
        "/processes/echo/execution", json=ECHO, headers={"Prefer": "respond-async"}
    )
    assert response.status_code == 201
    assert response.headers["preference-applied"] == "respond-async"


def test_req_core_process_execute_default_outputs(client: TestClient, worker: Worker) -> None:
    # Without "outputs", every output (echo has one) is returned.
    job_id = execute_echo(client)
    wait_for_status(client, job_id, {"successful"})
    assert client.get(f"/jobs/{job_id}/results").json() == {"stringInput": "hi"}


def test_req_core_process_execute_success_async(client: TestClient) -> None:
    # When a job is created
    response = client.post("/processes/echo/execution", json=ECHO)
    # Then 201, Location is the job's URL, and the body is its statusInfo
    assert response.status_code == 201
    document = response.json()
    assert schema(client, "statusInfo").is_valid(document)
    assert response.headers["location"] == f"http://testserver/jobs/{document['jobID']}"
    assert document["status"] == "accepted"
    assert document["processID"] == "echo"


def test_req_core_job(client: TestClient, database: Database) -> None:
    job_id = record_job(database, [JobState.PENDING])
    assert client.get(f"/jobs/{job_id}").status_code == 200


def test_req_core_job_success(client: TestClient, database: Database) -> None:
    # Given jobs in each geotasks state, When their status is read
    expected = {
        JobState.PENDING: "accepted",
        JobState.STARTED: "running",
        JobState.SUCCESS: "successful",
        JobState.FAILURE: "failed",
    }
    for state, ogc in expected.items():
        path = (
            [JobState.PENDING]
            if state is JobState.PENDING
            else [JobState.PENDING, JobState.STARTED, state][
                : 2 if state is JobState.STARTED else 3
            ]
        )
        job_id = record_job(database, path, error=JobError("InputError", "bad"))
        document = client.get(f"/jobs/{job_id}").json()
        # Then each is a valid statusInfo with the mapped status
        assert schema(client, "statusInfo").is_valid(document)
        assert document["status"] == ogc, state


def test_req_core_job_exception_no_such_job(static_client: TestClient) -> None:
    response = static_client.get("/jobs/0f8fad5b-d9cb-469f-a165-70867728950e")
    assert response.status_code == 404
    assert response.json()["type"] == NO_SUCH_JOB


def test_req_core_job_results(client: TestClient, database: Database) -> None:
    job_id = finished_job(database, {"answer": 42})
    assert client.get(f"/jobs/{job_id}/results").status_code == 200


def test_req_core_job_results_async_raw_value_one(client: TestClient, database: Database) -> None:
    # Given a job whose one output is a JSON value, Then its results are that value, raw
    job_id = finished_job(database, {"answer": 42}, actor_name="echo")
    response = client.get(f"/jobs/{job_id}/results")
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"answer": 42}


def test_req_core_job_results_exception_no_such_job(static_client: TestClient) -> None:
    response = static_client.get("/jobs/0f8fad5b-d9cb-469f-a165-70867728950e/results")
    assert response.status_code == 404
    assert response.json()["type"] == NO_SUCH_JOB


def test_req_core_job_results_exception_results_not_ready(
    client: TestClient, database: Database
) -> None:
    for states in ([JobState.PENDING], [JobState.PENDING, JobState.STARTED]):
        response = client.get(f"/jobs/{record_job(database, states)}/results")
        assert response.status_code == 404
        assert response.json()["type"] == RESULT_NOT_READY


def test_req_core_job_results_failed(client: TestClient, database: Database) -> None:
    # Given a job that failed on bad input and one that failed on a bug
    bad_input = record_job(
        database,
        [JobState.PENDING, JobState.STARTED, JobState.FAILURE],
        error=JobError("InputError", "no dataset 'x'"),
    )
    bug = record_job(
        database,
        [JobState.PENDING, JobState.STARTED, JobState.FAILURE],
        error=JobError("ZeroDivisionError", "division by zero"),
    )
    # Then their results are problems whose status matches the reason
    response = client.get(f"/jobs/{bad_input}/results")
    assert response.status_code == 400
    assert "no dataset 'x'" in response.json()["detail"]
    response = client.get(f"/jobs/{bug}/results")
    assert response.status_code == 500
    assert "ZeroDivisionError: division by zero" in response.json()["detail"]


# --- ogc-process-description ---------------------------------------------------------------


def test_req_ogc_process_description_json_encoding(static_client: TestClient) -> None:
    document = static_client.get("/processes/echo?f=json").json()
    assert schema(static_client, "process").is_valid(document)


def test_req_ogc_process_description_inputs_def(static_client: TestClient) -> None:
    inputs = static_client.get("/processes/buffer_features").json()["inputs"]
    assert isinstance(inputs, dict)
    assert list(inputs) == [p.name for p in find("buffer_features").parameters]


def test_req_ogc_process_description_input_def(static_client: TestClient) -> None:
    inputs = static_client.get("/processes/buffer_features").json()["inputs"]
    validator = schema(static_client, "inputDescription")
    for entry in inputs.values():
        assert validator.is_valid(entry)
        assert entry["maxOccurs"] == 1
    assert inputs["name"]["minOccurs"] == 1
    assert inputs["layer"]["minOccurs"] == 0
    assert inputs["name"]["schema"]["pattern"]


def test_req_ogc_process_description_input_mixed_type(static_client: TestClient) -> None:
    # An input taking a value or nothing is described as OpenAPI 3.0 does: one type, nullable
    # (never a JSON Schema type list, which OpenAPI 3.0 does not have).
    inputs = static_client.get("/processes/buffer_features").json()["inputs"]
    assert inputs["layer"]["schema"] == {"type": "string", "nullable": True, "default": None}
    for process in offered():
        description = static_client.get(f"/processes/{process}").json()
        for entry in description["inputs"].values():
            assert not isinstance(entry["schema"].get("type"), list), (process, entry)


def test_req_ogc_process_description_outputs_def(static_client: TestClient) -> None:
    outputs = static_client.get("/processes/buffer_features").json()["outputs"]
    assert list(outputs) == ["result"]


def test_req_ogc_process_description_output_def(static_client: TestClient) -> None:
    output = static_client.get("/processes/buffer_features").json()["outputs"]["result"]
    assert schema(static_client, "outputDescription").is_valid(output)
    assert output["schema"]["contentMediaType"] == "application/geo+json"


# --- json ----------------------------------------------------------------------------------


RESOURCES = ["/", "/conformance", "/processes", "/processes/echo", "/jobs"]


@pytest.mark.parametrize("path", RESOURCES)
def test_req_json_definition(client: TestClient, path: str) -> None:
    response = client.get(path, headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"


def test_req_json_content(client: TestClient, database: Database) -> None:
    job_id = record_job(database, [JobState.PENDING])
    for path, name in [
        ("/", "landingPage"),
        ("/conformance", "confClasses"),
        ("/processes", "processList"),
        ("/processes/echo", "process"),
        ("/jobs", "jobList"),
        (f"/jobs/{job_id}", "statusInfo"),
    ]:
        document = client.get(path, headers={"Accept": "application/json"}).json()
        errors = list(schema(client, name).iter_errors(document))
        assert not errors, (path, errors)


# --- html ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", RESOURCES)
def test_req_html_definition(client: TestClient, path: str) -> None:
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    for response in (client.get(path, headers={"Accept": browser}), client.get(path + "?f=html")):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"


def test_req_html_content(client: TestClient, database: Database) -> None:
    job_id = finished_job(database, {"answer": 42}, actor_name="echo")
    for path in [*RESOURCES, f"/jobs/{job_id}", "/api"]:
        page = client.get(path, params={"f": "html"} if path != "/api" else None).text
        # HTML 5, with a link to the same resource as JSON
        assert page.startswith("<!DOCTYPE html>")
        assert re.search(r'<link rel="alternate" type="application/json" href="[^"]+">', page), path


# --- oas30 ---------------------------------------------------------------------------------


def test_req_oas30_oas_definition_1(static_client: TestClient) -> None:
    assert (
        static_client.get("/openapi.json").headers["content-type"]
        == "application/vnd.oai.openapi+json;version=3.0"
    )


def test_req_oas30_oas_definition_2(static_client: TestClient) -> None:
    # The definition is a valid OpenAPI 3.0 document (schemathesis refuses an invalid one).
    import schemathesis

    loaded = schemathesis.openapi.from_dict(static_client.get("/openapi.json").json())
    assert len(list(loaded.get_all_operations())) >= 10


def test_req_oas30_oas_impl(static_client: TestClient) -> None:
    # Every route the server has is in the definition, with the methods it answers.
    document = static_client.get("/openapi.json").json()
    expected = {
        ("/", "get"),
        ("/conformance", "get"),
        ("/openapi.json", "get"),
        ("/api", "get"),
        ("/processes", "get"),
        ("/processes/{processID}", "get"),
        ("/processes/{processID}/execution", "post"),
        ("/jobs", "get"),
        ("/jobs/{jobID}", "get"),
        ("/jobs/{jobID}", "delete"),
        ("/jobs/{jobID}/results", "get"),
    }
    documented = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert expected <= documented


def test_req_oas30_completeness(static_client: TestClient) -> None:
    # Each process's own execution path carries its input schema.
    document = static_client.get("/openapi.json").json()
    for name in offered():
        body = document["paths"][f"/processes/{name}/execution"]["post"]["requestBody"]
        inputs = body["content"]["application/json"]["schema"]["properties"]["inputs"]
        assert set(inputs["properties"]) == {p.name for p in find(name).parameters}


def test_req_oas30_exceptions_codes(static_client: TestClient) -> None:
    # Every error status an operation can answer is documented, with a problem schema.
    document = static_client.get("/openapi.json").json()
    results = document["paths"]["/jobs/{jobID}/results"]["get"]["responses"]
    assert {"404", "410", "416", "500"} <= set(results)
    assert results["404"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/exception"
    }


def test_req_oas30_security(secured_client: TestClient) -> None:
    document = secured_client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
    }
    assert document["paths"]["/processes/{processID}/execution"]["post"]["security"][0] == {
        "bearerAuth": []
    }
    assert "security" not in document["paths"]["/jobs/{jobID}"]["get"]


# --- job-list ------------------------------------------------------------------------------


def test_req_job_list_job_list_op(client: TestClient) -> None:
    assert client.get("/jobs").status_code == 200


def test_req_job_list_type_definition(static_client: TestClient) -> None:
    parameter = static_client.get("/openapi.json").json()["components"]["parameters"]["type"]
    assert parameter["schema"]["items"]["enum"] == ["process"]


def test_req_job_list_type_response(client: TestClient, database: Database) -> None:
    job_id = record_job(database, [JobState.PENDING])
    assert [j["jobID"] for j in client.get("/jobs?type=process").json()["jobs"]] == [job_id]
    assert client.get("/jobs?type=workflow").status_code == 400


def test_req_job_list_processid_definition(static_client: TestClient) -> None:
    parameter = static_client.get("/openapi.json").json()["components"]["parameters"]["processID"]
    assert (parameter["in"], parameter["schema"]["type"]) == ("query", "array")


def test_req_job_list_processid_response(client: TestClient, database: Database) -> None:
    echo = record_job(database, [JobState.PENDING], actor_name="echo")
    buffer = record_job(database, [JobState.PENDING], actor_name="buffer_features")
    record_job(database, [JobState.PENDING], actor_name="clip_features")
    listed = {j["jobID"] for j in client.get("/jobs?processID=echo,buffer_features").json()["jobs"]}
    assert listed == {echo, buffer}


def test_req_job_list_status_definition(static_client: TestClient) -> None:
    parameter = static_client.get("/openapi.json").json()["components"]["parameters"]["status"]
    assert parameter["schema"]["items"]["enum"] == [
        "accepted",
        "running",
        "successful",
        "failed",
        "dismissed",
    ]


def test_req_job_list_status_response(client: TestClient, database: Database) -> None:
    pending = record_job(database, [JobState.PENDING])
    throttled = record_job(database, [JobState.PENDING, JobState.THROTTLED])
    running = record_job(database, [JobState.PENDING, JobState.STARTED])
    listed = {j["jobID"] for j in client.get("/jobs?status=accepted").json()["jobs"]}
    assert listed == {pending, throttled}
    assert [j["jobID"] for j in client.get("/jobs?status=running").json()["jobs"]] == [running]
    assert client.get("/jobs?status=lost").status_code == 400


def test_req_job_list_datetime_response(client: TestClient, database: Database) -> None:
    old = record_job(database, [JobState.PENDING])
    shift_job(database, old, created=3600)
    new = record_job(database, [JobState.PENDING])
    listed = client.get("/jobs", params={"datetime": f"../{_iso_ago(client, 1800)}"}).json()["jobs"]
    assert [j["jobID"] for j in listed] == [old]
    listed = client.get("/jobs", params={"datetime": f"{_iso_ago(client, 1800)}/.."}).json()["jobs"]
    assert [j["jobID"] for j in listed] == [new]


def _iso_ago(client: TestClient, seconds: int) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


def test_req_job_list_duration_definition(static_client: TestClient) -> None:
    parameters = static_client.get("/openapi.json").json()["components"]["parameters"]
    assert parameters["minDuration"]["schema"] == {"type": "integer", "minimum": 0}
    assert parameters["maxDuration"]["schema"] == {"type": "integer", "minimum": 0}


def test_req_job_list_duration_response(client: TestClient, database: Database) -> None:
    # Given a job that ran 100 s, one running for 10 s, and one that never started
    long = record_job(database, [JobState.PENDING, JobState.STARTED, JobState.SUCCESS])
    shift_job(database, long, started=200, finished=100)
    short = record_job(database, [JobState.PENDING, JobState.STARTED])
    shift_job(database, short, started=10)
    record_job(database, [JobState.PENDING])
    # Then the duration filters see only jobs that started, by how long they ran
    assert [j["jobID"] for j in client.get("/jobs?minDuration=50").json()["jobs"]] == [long]
    assert [j["jobID"] for j in client.get("/jobs?maxDuration=50").json()["jobs"]] == [short]
    assert {
        j["jobID"] for j in client.get("/jobs?minDuration=5&maxDuration=500").json()["jobs"]
    } == {long, short}


def test_req_job_list_limit_definition(static_client: TestClient) -> None:
    parameters = [
        p["$ref"]
        for p in static_client.get("/openapi.json").json()["paths"]["/jobs"]["get"]["parameters"]
    ]
    assert "#/components/parameters/limit" in parameters


def test_req_job_list_limit_response(client: TestClient, database: Database) -> None:
    for _ in range(3):
        record_job(database, [JobState.PENDING])
    assert len(client.get("/jobs?limit=2").json()["jobs"]) == 2
    assert client.get("/jobs?limit=1001").status_code == 400


def test_req_job_list_links(client: TestClient, database: Database) -> None:
    # Given 7 jobs, two of them created in the same instant
    ids = [record_job(database, [JobState.PENDING]) for _ in range(7)]
    created_s = [0, 10, 20, 20, 30, 40, 50]

    def set_created(cursor: Any) -> None:
        for job_id, second in zip(ids, created_s, strict=True):
            cursor.execute(
                "UPDATE geotasks.job SET created_at = timestamptz '2026-05-01 12:00:00Z' "
                "+ make_interval(secs => %s) WHERE message_id = %s",
                (second, job_id),
            )

    database.transaction(set_created)
    newest_first = [job_id for _, job_id in sorted(zip(created_s, ids, strict=True), reverse=True)]
    # When paged 3 at a time along the next links
    forward: list[list[str]] = []
    url: str | None = "/jobs?limit=3"
    while url is not None:
        document = client.get(url).json()
        forward.append([j["jobID"] for j in document["jobs"]])
        url = rels(document).get("next", {}).get("href")
    # Then every job is visited once, newest first
    assert forward == [newest_first[0:3], newest_first[3:6], newest_first[6:]]
    # And the prev links walk back through the same pages
    backward = [forward[-1]]
    prev = rels(document).get("prev", {}).get("href")
    while prev is not None:
        document = client.get(prev).json()
        backward.append([j["jobID"] for j in document["jobs"]])
        prev = rels(document).get("prev", {}).get("href")
    assert backward == list(reversed(forward))


def test_req_job_list_job_list_success(client: TestClient, database: Database) -> None:
    record_job(database, [JobState.PENDING])
    document = client.get("/jobs").json()
    assert schema(client, "jobList").is_valid(document)
    assert rels(document)["self"]["type"] == "application/json"


# --- dismiss -------------------------------------------------------------------------------


def test_req_dismiss_job_dismiss_op(client: TestClient, database: Database) -> None:
    job_id = record_job(database, [JobState.PENDING])
    assert client.delete(f"/jobs/{job_id}").status_code == 200


def test_req_dismiss_job_dismiss_success(client: TestClient, database: Database) -> None:
    # Given a job that has not started, When it is dismissed
    waiting = record_job(database, [JobState.PENDING])
    response = client.delete(f"/jobs/{waiting}")
    # Then it is cancelled: it reads dismissed, and has no result
    assert response.json()["status"] == "dismissed"
    assert client.get(f"/jobs/{waiting}").json()["status"] == "dismissed"
    assert client.get(f"/jobs/{waiting}/results").status_code == 410
    # Given a finished job, When it is dismissed, Then it and its result are deleted
    done = finished_job(database, {"answer": 42})
    response = client.delete(f"/jobs/{done}")
    assert response.status_code == 200
    assert response.json()["status"] == "dismissed"
    assert client.get(f"/jobs/{done}").status_code == 404
    assert client.get(f"/jobs/{done}/results").status_code == 404


def test_req_dismiss_job_dismiss_exception_no_such_job(static_client: TestClient) -> None:
    response = static_client.delete("/jobs/0f8fad5b-d9cb-469f-a165-70867728950e")
    assert response.status_code == 404
    assert response.json()["type"] == NO_SUCH_JOB


def test_a_running_job_cannot_be_dismissed_until_it_ends(
    client: TestClient, database: Database
) -> None:
    running = record_job(database, [JobState.PENDING, JobState.STARTED])
    response = client.delete(f"/jobs/{running}")
    assert response.status_code == 409
    assert client.get(f"/jobs/{running}").json()["status"] == "running"


def test_a_job_waiting_for_its_retry_shows_its_error_and_can_be_dismissed(
    client: TestClient, database: Database
) -> None:
    # Given a job whose first attempt failed and which waits for its retry
    job_id = record_job(database, [JobState.PENDING, JobState.STARTED])
    JobStore(database).transition(
        job_id,
        actor_name="echo",
        queue_name="geo",
        status=JobState.RETRYING,
        attempt=1,
        error=JobError("ConnectionError", "the tile server went away"),
    )
    # Then its document and its page say why
    assert (
        "ConnectionError: the tile server went away"
        in client.get(f"/jobs/{job_id}").json()["message"]
    )
    assert "the tile server went away" in client.get(f"/jobs/{job_id}?f=html").text
    # And When it is dismissed, Then it is cancelled: nothing of it is running
    response = client.delete(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    assert client.get(f"/jobs/{job_id}").json()["status"] == "dismissed"


def test_results_link_appears_once_the_job_succeeded(
    client: TestClient, database: Database
) -> None:
    job_id = finished_job(database, {"answer": 42})
    assert rels(client.get(f"/jobs/{job_id}").json())[REL_RESULTS]["type"] == "application/json"
