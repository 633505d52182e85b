"""The hand-written OpenAPI 3.0 document served at ``/openapi.json`` (conformance class oas30).

The schemas follow OGC API - Processes - Part 1: Core 1.0 (``landingPage``, ``confClasses``,
``processList``, ``process``, ``execute``, ``statusInfo``, ``jobList``, ``exception``) written
out here rather than referenced from schemas.opengis.net, so the document is complete offline.
Each offered process also gets its own execution path whose request body carries that
process's input schema: clients (and schemathesis) see exactly what each process accepts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..geo.output_formats import GEOJSON_MEDIA_TYPE, OUTPUT_FORMATS
from .processes import Process

#: Media type of the OpenAPI document (OGC API - Processes, requirement /req/oas30/oas-impl).
OPENAPI_MEDIA_TYPE = "application/vnd.oai.openapi+json;version=3.0"

#: Most jobs one page of ``/jobs`` or ``/processes`` may hold.
MAX_LIMIT = 1000
#: Page size when ``limit`` is not given.
DEFAULT_LIMIT = 100

_STATUS_CODES = ["accepted", "running", "successful", "failed", "dismissed"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem(description: str) -> dict[str, Any]:
    # A browser (Accept: text/html or ?f=html) gets the problem as a page.
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": _ref("exception")},
            "text/html": {"schema": {"type": "string"}},
        },
    }


def _json_and_html(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": schema},
            "text/html": {"schema": {"type": "string"}},
        },
    }


_LINK = {
    "type": "object",
    "required": ["href"],
    "properties": {
        "href": {"type": "string"},
        "rel": {"type": "string"},
        "type": {"type": "string"},
        "hreflang": {"type": "string"},
        "title": {"type": "string"},
    },
}

_DESCRIPTION_TYPE_PROPERTIES: dict[str, Any] = {
    "title": {"type": "string"},
    "description": {"type": "string"},
    "keywords": {"type": "array", "items": {"type": "string"}},
    "metadata": {"type": "array", "items": {"type": "object"}},
}

_PROCESS_SUMMARY = {
    "type": "object",
    "required": ["id", "version"],
    "properties": {
        **_DESCRIPTION_TYPE_PROPERTIES,
        "id": {"type": "string"},
        "version": {"type": "string"},
        "jobControlOptions": {
            "type": "array",
            "items": {"type": "string", "enum": ["sync-execute", "async-execute", "dismiss"]},
        },
        "outputTransmission": {
            "type": "array",
            "items": {"type": "string", "enum": ["value", "reference"]},
        },
        "links": {"type": "array", "items": _ref("link")},
    },
}

_INPUT_DESCRIPTION = {
    "type": "object",
    "required": ["schema"],
    "properties": {
        **_DESCRIPTION_TYPE_PROPERTIES,
        "minOccurs": {"type": "integer", "minimum": 0},
        "maxOccurs": {
            "oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "enum": ["unbounded"]}]
        },
        "schema": {"type": "object"},
    },
}

_OUTPUT_DESCRIPTION = {
    "type": "object",
    "required": ["schema"],
    "properties": {**_DESCRIPTION_TYPE_PROPERTIES, "schema": {"type": "object"}},
}

_STATUS_INFO = {
    "type": "object",
    "required": ["jobID", "status", "type"],
    "properties": {
        "processID": {"type": "string"},
        "type": {"type": "string", "enum": ["process"]},
        "jobID": {"type": "string"},
        "status": {"type": "string", "enum": _STATUS_CODES},
        "message": {"type": "string"},
        "created": {"type": "string", "format": "date-time"},
        "started": {"type": "string", "format": "date-time"},
        "finished": {"type": "string", "format": "date-time"},
        "updated": {"type": "string", "format": "date-time"},
        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
        "links": {"type": "array", "items": _ref("link")},
        # geotasks' own: what the job warned about (geotasks.job_warnings), when anything.
        "warnings": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["message"],
                "properties": {"message": {"type": "string"}},
            },
        },
    },
}


def _output_media_types(process: Process) -> list[str]:
    """What ``outputs.<name>.format.mediaType`` may ask for: a GeoJSON output, every format."""
    if process.output.media_type == GEOJSON_MEDIA_TYPE:
        return [f.media_type for f in OUTPUT_FORMATS]
    return [process.output.media_type]


#: Results written in another format than GeoJSON (outputs.<name>.format.mediaType).
_FILE_RESULTS = {
    f.media_type: {"schema": {"type": "string", "format": "binary"}}
    for f in OUTPUT_FORMATS
    if f.driver is not None
}

_OUTPUT = {
    "type": "object",
    "properties": {
        "format": {"type": "object"},
        "transmissionMode": {"type": "string", "enum": ["value", "reference"]},
    },
}


def _execute_schema(
    inputs: dict[str, Any], outputs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The execute request: a process's ``inputs`` schema and, for one process, its outputs."""
    output_map: dict[str, Any] = {"type": "object", "additionalProperties": _ref("output")}
    if outputs is not None:
        output_map = {"type": "object", "properties": outputs, "additionalProperties": False}
    return {
        "type": "object",
        **({"required": ["inputs"]} if inputs.get("required") else {}),
        "properties": {
            "inputs": inputs,
            "outputs": output_map,
            "response": {
                "type": "string",
                "enum": ["raw", "document"],
                "default": "raw",
                "description": (
                    "`document` wraps a synchronous answer as {output id: value}; the result "
                    "of an asynchronous job is always served raw"
                ),
            },
        },
        "additionalProperties": False,
    }


_SCHEMAS: dict[str, Any] = {
    "link": _LINK,
    "landingPage": {
        "type": "object",
        "required": ["links"],
        "properties": {
            "title": {"type": "string"},
            "description": {"type": "string"},
            "links": {"type": "array", "items": _ref("link")},
        },
    },
    "confClasses": {
        "type": "object",
        "required": ["conformsTo"],
        "properties": {"conformsTo": {"type": "array", "items": {"type": "string"}}},
    },
    "processSummary": _PROCESS_SUMMARY,
    "processList": {
        "type": "object",
        "required": ["processes", "links"],
        "properties": {
            "processes": {"type": "array", "items": _ref("processSummary")},
            "links": {"type": "array", "items": _ref("link")},
        },
    },
    "process": {
        "allOf": [
            _ref("processSummary"),
            {
                "type": "object",
                "properties": {
                    "inputs": {"type": "object", "additionalProperties": _ref("inputDescription")},
                    "outputs": {
                        "type": "object",
                        "additionalProperties": _ref("outputDescription"),
                    },
                },
            },
        ]
    },
    "inputDescription": _INPUT_DESCRIPTION,
    "outputDescription": _OUTPUT_DESCRIPTION,
    "output": _OUTPUT,
    "execute": _execute_schema({"type": "object"}),
    "statusInfo": _STATUS_INFO,
    "jobList": {
        "type": "object",
        "required": ["jobs", "links"],
        "properties": {
            "jobs": {"type": "array", "items": _ref("statusInfo")},
            "links": {"type": "array", "items": _ref("link")},
        },
    },
    "results": {"type": "object", "additionalProperties": True},
    "exception": {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
        },
        "additionalProperties": True,
    },
}

_PARAMETERS: dict[str, Any] = {
    "f": {
        "name": "f",
        "in": "query",
        "required": False,
        "description": "The representation: `json` or `html` (overrides the Accept header).",
        "schema": {"type": "string", "enum": ["json", "html"]},
    },
    "processID-path": {
        "name": "processID",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    },
    "jobID": {"name": "jobID", "in": "path", "required": True, "schema": {"type": "string"}},
    "limit": {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": f"Items per page, {DEFAULT_LIMIT} by default.",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    },
    "type": {
        "name": "type",
        "in": "query",
        "required": False,
        "style": "form",
        "explode": False,
        "schema": {"type": "array", "items": {"type": "string", "enum": ["process"]}},
    },
    "processID": {
        "name": "processID",
        "in": "query",
        "required": False,
        "style": "form",
        "explode": False,
        "description": "Only jobs of these processes (comma-separated).",
        "schema": {"type": "array", "items": {"type": "string"}},
    },
    "status": {
        "name": "status",
        "in": "query",
        "required": False,
        "style": "form",
        "explode": False,
        "description": "Only jobs in these states (comma-separated).",
        "schema": {"type": "array", "items": {"type": "string", "enum": _STATUS_CODES}},
    },
    "datetime": {
        "name": "datetime",
        "in": "query",
        "required": False,
        "description": (
            "Only jobs created at this instant or in this interval (RFC 3339, `start/end`, "
            "either end may be `..` or empty)."
        ),
        "schema": {"type": "string"},
    },
    "minDuration": {
        "name": "minDuration",
        "in": "query",
        "required": False,
        "description": "Only jobs that have run at least this many seconds.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "maxDuration": {
        "name": "maxDuration",
        "in": "query",
        "required": False,
        "description": "Only jobs that have run at most this many seconds.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "cursor": {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "Opaque position in the job list, taken from a `next` or `prev` link.",
        "schema": {"type": "string", "maxLength": 200},
    },
    "Prefer": {
        "name": "Prefer",
        "in": "header",
        "required": False,
        "description": (
            "`respond-sync` (optionally with `wait=N` seconds): wait a bounded time for the "
            "job and answer with its result; a job still running then is answered as with "
            "`respond-async`."
        ),
        "schema": {"type": "string"},
    },
    "Range": {
        "name": "Range",
        "in": "header",
        "required": False,
        "description": "One byte range (`bytes=start-end`, `bytes=start-`, `bytes=-suffix`).",
        "schema": {"type": "string"},
    },
}

_RESPONSES: dict[str, Any] = {
    "InvalidParameter": _problem("A query parameter or an input is invalid."),
    "Unauthorized": {
        **_problem("A bearer token is required (GEOTASKS_API_TOKENS is set)."),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "NotFound": _problem("No such resource."),
    "ServerError": _problem("The server failed."),
    "Unavailable": _problem("The job store is unreachable; retry later."),
}

_ERRORS = {
    "400": {"$ref": "#/components/responses/InvalidParameter"},
    "500": {"$ref": "#/components/responses/ServerError"},
    "503": {"$ref": "#/components/responses/Unavailable"},
}

_SECURED: list[dict[str, list[str]]] = [{"bearerAuth": []}, {}]


def _execute_operation(
    operation_id: str, summary: str, request_schema: dict[str, Any], *, secured: bool
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "parameters": [{"$ref": "#/components/parameters/Prefer"}],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": request_schema}},
        },
        "responses": {
            "200": {
                "description": "`Prefer: respond-sync` and the job finished in time: its result.",
                "headers": {
                    "Preference-Applied": {"schema": {"type": "string"}},
                    "Link": {"schema": {"type": "string"}},
                },
                "content": {
                    "application/geo+json": {"schema": {"type": "object"}},
                    "application/json": {"schema": {}},
                },
            },
            "201": {
                "description": "The job was created; poll the URL in `Location`.",
                "headers": {"Location": {"schema": {"type": "string"}, "required": True}},
                "content": {"application/json": {"schema": _ref("statusInfo")}},
            },
            **_ERRORS,
            "401": {"$ref": "#/components/responses/Unauthorized"},
            "404": {"$ref": "#/components/responses/NotFound"},
            "413": _problem("The request body is larger than GEOTASKS_API_MAX_REQUEST_BYTES."),
            "415": _problem("The request body is not JSON."),
        },
    }
    if secured:
        operation["security"] = _SECURED
    return operation


def build_openapi(
    processes: Sequence[Process],
    *,
    server_url: str,
    secured: bool,
    extra_paths: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the OpenAPI 3.0 document of the API.

    Parameters:
      processes: The processes offered; each gets its own execution path.
      server_url: The API's base URL, as clients reach it.
      secured: Whether a bearer token is required to submit, list and dismiss jobs.
      extra_paths: Paths described by the modules that serve them (monitoring).

    Returns:
      dict: The document, ready to be encoded as JSON.
    """
    f = {"$ref": "#/components/parameters/f"}
    paths: dict[str, Any] = {
        "/": {
            "get": {
                "operationId": "getLandingPage",
                "summary": "Landing page",
                "parameters": [f],
                "responses": {"200": _json_and_html(_ref("landingPage"), "Links"), **_ERRORS},
            }
        },
        "/conformance": {
            "get": {
                "operationId": "getConformanceClasses",
                "summary": "Conformance classes implemented",
                "parameters": [f],
                "responses": {
                    "200": _json_and_html(_ref("confClasses"), "Conformance classes"),
                    **_ERRORS,
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "getAPIDefinition",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.0",
                        "content": {OPENAPI_MEDIA_TYPE: {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/api": {
            "get": {
                "operationId": "getAPIDocumentation",
                "summary": "This document as an HTML page",
                "responses": {
                    "200": {
                        "description": "HTML",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/processes": {
            "get": {
                "operationId": "getProcesses",
                "summary": "Processes offered",
                "parameters": [f, {"$ref": "#/components/parameters/limit"}],
                "responses": {"200": _json_and_html(_ref("processList"), "Processes"), **_ERRORS},
            }
        },
        "/processes/{processID}": {
            "get": {
                "operationId": "getProcessDescription",
                "summary": "A process's description, with its inputs' JSON Schemas",
                "parameters": [{"$ref": "#/components/parameters/processID-path"}, f],
                "responses": {
                    "200": _json_and_html(_ref("process"), "The process"),
                    "404": {"$ref": "#/components/responses/NotFound"},
                    **_ERRORS,
                },
            }
        },
        "/processes/{processID}/execution": {
            "parameters": [{"$ref": "#/components/parameters/processID-path"}],
            "post": _execute_operation(
                "execute", "Execute a process (creates a job)", _ref("execute"), secured=secured
            ),
        },
        "/jobs": {
            "get": {
                "operationId": "getJobs",
                "summary": "Jobs, newest first",
                "parameters": [
                    f,
                    *(
                        {"$ref": f"#/components/parameters/{name}"}
                        for name in (
                            "type",
                            "processID",
                            "status",
                            "datetime",
                            "minDuration",
                            "maxDuration",
                            "limit",
                            "cursor",
                        )
                    ),
                ],
                "responses": {
                    "200": _json_and_html(_ref("jobList"), "One page of jobs"),
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    **_ERRORS,
                },
                **({"security": _SECURED} if secured else {}),
            }
        },
        "/jobs/{jobID}": {
            "parameters": [{"$ref": "#/components/parameters/jobID"}],
            "get": {
                "operationId": "getStatus",
                "summary": "A job's status",
                "parameters": [f],
                "responses": {
                    "200": _json_and_html(_ref("statusInfo"), "The job's status"),
                    "404": {"$ref": "#/components/responses/NotFound"},
                    **_ERRORS,
                },
            },
            "delete": {
                "operationId": "dismiss",
                "summary": "Cancel a job that has not started, or dismiss a finished one",
                "responses": {
                    "200": {
                        "description": "Dismissed",
                        "content": {"application/json": {"schema": _ref("statusInfo")}},
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "409": _problem("The job is running: it can be dismissed once it ends."),
                    **_ERRORS,
                },
                **({"security": _SECURED} if secured else {}),
            },
        },
        "/jobs/{jobID}/results": {
            "parameters": [{"$ref": "#/components/parameters/jobID"}],
            "get": {
                "operationId": "getResult",
                "summary": "The job's result, streamed (Range and gzip supported)",
                "parameters": [{"$ref": "#/components/parameters/Range"}],
                "responses": {
                    "200": {
                        "description": "The result",
                        "headers": {
                            "Accept-Ranges": {"schema": {"type": "string"}},
                            "Content-Disposition": {
                                "description": "the file name, for a result written in "
                                "another format (outputs.<name>.format.mediaType)",
                                "schema": {"type": "string"},
                            },
                        },
                        "content": {
                            "application/geo+json": {"schema": {"type": "object"}},
                            "application/json": {"schema": {}},
                            **_FILE_RESULTS,
                        },
                    },
                    "206": {
                        "description": "The requested byte range of the result",
                        "headers": {"Content-Range": {"schema": {"type": "string"}}},
                        "content": {
                            "application/geo+json": {"schema": {"type": "string"}},
                            "application/json": {"schema": {"type": "string"}},
                            **_FILE_RESULTS,
                        },
                    },
                    "404": _problem("No such job, or its result is not ready."),
                    "410": _problem("The result has expired or the job was dismissed."),
                    "416": _problem("The range is outside the result."),
                    **_ERRORS,
                },
            },
        },
    }
    for process in processes:
        paths[f"/processes/{process.id}/execution"] = {
            "post": _execute_operation(
                f"execute-{process.id}",
                f"Execute {process.id}",
                _execute_schema(
                    process.inputs_schema(),
                    {
                        process.output.name: {
                            "type": "object",
                            "properties": {
                                "format": {
                                    "type": "object",
                                    "properties": {
                                        "mediaType": {
                                            "type": "string",
                                            "enum": _output_media_types(process),
                                        }
                                    },
                                },
                                "transmissionMode": {"type": "string", "enum": ["value"]},
                            },
                        }
                    },
                ),
                secured=secured,
            )
        }
    paths.update(extra_paths or {})
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "geotasks",
            "version": "1.0.0",
            "description": (
                "Background geoprocessing on Dramatiq workers, as OGC API - Processes - "
                "Part 1: Core 1.0. Results are RFC 7946 GeoJSON."
            ),
            "license": {"name": "MIT"},
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "parameters": _PARAMETERS,
            "responses": _RESPONSES,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
