"""``GET /health``: ``geotasks health`` for load balancers — 200 or 503, with a JSON body.

It needs no token (a load balancer has none) and tells only verdicts, counts and queue names.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..monitoring.health import check_health
from ..settings import Settings
from .negotiation import check_query
from .redaction import redact_paths

_HEALTH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["pass", "warn", "fail"]},
        "checks": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "status", "detail"],
                "properties": {
                    "name": {"type": "string"},
                    "status": {"type": "string", "enum": ["pass", "warn", "fail"]},
                    "detail": {"type": "string"},
                },
            },
        },
    },
}


#: The endpoint in the API's OpenAPI document.
OPENAPI_PATHS: dict[str, Any] = {
    "/health": {
        "get": {
            "operationId": "getHealth",
            "summary": "Whether the system can run jobs now (as `geotasks health`)",
            "responses": {
                code: {
                    "description": description,
                    "content": {"application/json": {"schema": _HEALTH_SCHEMA}},
                }
                for code, description in (("200", "Healthy"), ("503", "A check failed"))
            },
        }
    }
}


def health_routes(settings: Settings) -> list[Route]:
    """Return the ``/health`` route for ``settings``' system."""

    def health(request: Request) -> Response:
        check_query(request, ())
        report = check_health(settings)
        document = report.to_dict()
        # A check's detail is written for operators (a database's socket directory, a file):
        # served, it keeps no server path.
        for check in document["checks"]:
            check["detail"] = redact_paths(check["detail"])
        return Response(
            orjson.dumps(document),
            status_code=200 if report.healthy else 503,
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    return [Route("/health", health, methods=["GET"])]
