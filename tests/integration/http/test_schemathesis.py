"""schemathesis generates requests from the OpenAPI document and checks every response.

The app runs in-process (ASGI) on a fresh database with a broker, so executions really create
jobs. Examples per operation are few, to keep the test well under a minute; the checks are
schemathesis' defaults: no server errors, documented status codes, content types, headers and
response schemas, and invalid requests rejected.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.testclient import TestClient

from tests.integration.http.test_conformance import offered

#: Generated requests per API operation.
EXAMPLES_PER_OPERATION = 25

#: Operations where a request valid for the document may still be refused with 400, so
#: "schema-valid data is accepted" does not hold: OpenAPI 3.0 cannot say that ``datetime`` is
#: an RFC 3339 instant or interval, that a cursor must come from a link, or (on the generic
#: execution path) which inputs the named process takes. Each process's own execution path
#: states its inputs exactly, and is held to the check.
LOOSER_THAN_DOCUMENTED = {"GET /jobs", "POST /processes/{processID}/execution"}


def test_the_api_conforms_to_its_openapi_document(client: TestClient) -> None:
    # Given the API's own OpenAPI document
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()

        # When requests generated from each operation are sent
        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            # Then every response is what the document says
            excluded = (
                [positive_data_acceptance] if case.operation.label in LOOSER_THAN_DOCUMENTED else []
            )
            case.call_and_validate(excluded_checks=excluded)

        check()
        checked.append(operation.label)
    # And every operation was exercised (schemathesis leaves out the document's own path), with
    # each process's own execution path
    expected = {
        "GET /",
        "GET /conformance",
        "GET /api",
        "GET /processes",
        "GET /processes/{processID}",
        "POST /processes/{processID}/execution",
        "GET /jobs",
        "GET /jobs/{jobID}",
        "DELETE /jobs/{jobID}",
        "GET /jobs/{jobID}/results",
        "GET /health",
        "GET /dashboard",
        "GET /schedules",
        *(f"POST /processes/{name}/execution" for name in offered()),
    }
    assert set(checked) == expected
