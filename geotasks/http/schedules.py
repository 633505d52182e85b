"""``GET /schedules``: every periodic actor, its schedule, next slot and last slot's job, as JSON.

The same list as ``geotasks schedules`` (:mod:`geotasks.monitoring.schedules`), behind the same
tokens as the jobs list: it names jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..broker import database_for
from ..monitoring.schedules import read_schedules
from ..settings import Settings
from .negotiation import check_query

_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_NULLABLE_SECONDS = {"type": ["number", "null"]}

_SCHEDULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "actor",
        "schedule",
        "next_slot",
        "last_slot",
        "last_job_id",
        "last_status",
        "last_start_lateness_s",
        "overdue_s",
        "late",
    ],
    "properties": {
        "actor": {"type": "string"},
        "schedule": {
            "type": ["string", "null"],
            "description": "`every 30s` or a cron spec in UTC; null when no scheduler sends it",
        },
        "next_slot": _NULLABLE_TIME,
        "last_slot": _NULLABLE_TIME,
        "last_job_id": {"type": ["string", "null"]},
        "last_status": {"type": ["string", "null"]},
        "last_start_lateness_s": {
            **_NULLABLE_SECONDS,
            "description": "how long after its slot the last slot's job started",
        },
        "overdue_s": {"type": "number", "description": "how long the next slot has been due"},
        "late": {"type": "boolean"},
    },
}


def schedules_openapi(*, secured: bool) -> dict[str, Any]:
    """The endpoint in the API's OpenAPI document."""
    return {
        "/schedules": {
            "get": {
                "operationId": "getSchedules",
                "summary": "Periodic actors: schedule, next slot, last slot's job and lateness",
                "responses": {
                    "200": {
                        "description": "Every periodic actor, by name",
                        "content": {
                            "application/json": {
                                "schema": {"type": "array", "items": _SCHEDULE_SCHEMA}
                            }
                        },
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                },
                **({"security": [{"bearerAuth": []}]} if secured else {}),
            }
        }
    }


def schedules_routes(settings: Settings, require_token: Callable[[Request], None]) -> list[Route]:
    """Return the ``/schedules`` route.

    Parameters:
      settings: The server's settings.
      require_token: Raises 401 unless the request carries a valid bearer token (or none is set).
    """

    def schedules(request: Request) -> Response:
        require_token(request)
        check_query(request, ())
        states = read_schedules(database_for(settings), settings)
        return Response(
            orjson.dumps([state.to_dict() for state in states]),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    return [Route("/schedules", schedules, methods=["GET"])]
