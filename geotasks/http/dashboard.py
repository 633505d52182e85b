"""``GET /dashboard``: what an operator opens first — workers, queues, jobs, limits, schedules.

JSON or HTML by content negotiation, like every resource of the API, behind the same tokens as
the jobs list. The HTML page refreshes itself by fetching the page again (with the token the
user pasted, if the server asks for one) and draws the jobs-per-minute chart with the vendored
uPlot; nothing is fetched from the network. One refresh costs one read of Postgres (the queries
of :mod:`geotasks.postgres.overview`, timed by ``benchmarks/dashboard.py``).
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..broker import database_for
from ..monitoring.dashboard import dashboard_document
from ..monitoring.queues import BrokerUnreachable, QueueInfo, read_queues
from ..postgres.overview import read_state
from ..settings import Settings
from .negotiation import HTML, check_query, output_format
from .pages import base_url, render_page
from .redaction import redact_paths

#: How often the dashboard page refreshes itself, in milliseconds.
DASHBOARD_REFRESH_MS = 5000

_PROCESS = {
    "type": "object",
    "required": ["host", "pid", "queues", "state", "last_heartbeat"],
    "properties": {
        "host": {"type": "string"},
        "pid": {"type": "integer"},
        "queues": {"type": "array", "items": {"type": "string"}},
        "state": {"type": "string", "enum": ["alive", "lost"]},
        "last_heartbeat": {"type": "string", "format": "date-time"},
    },
}

_DASHBOARD_SCHEMA = {
    "type": "object",
    "required": [
        "generated_at",
        "workers",
        "schedulers",
        "queues",
        "actors",
        "per_minute",
        "recent_failures",
        "rate_limits",
        "concurrency_limits",
        "schedules",
    ],
    "properties": {
        "workers": {"type": "array", "items": _PROCESS},
        "schedulers": {"type": "array", "items": _PROCESS},
        "queues": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "ready", "delayed", "dead_letters"],
                "properties": {
                    "name": {"type": "string"},
                    "ready": {"type": "integer"},
                    "delayed": {"type": "integer"},
                    "in_flight": {"type": "integer", "nullable": True},
                    "oldest_age_s": {"type": "number", "nullable": True},
                    "dead_letters": {"type": "integer"},
                },
            },
        },
        "broker_error": {"type": "string", "nullable": True},
        "actors": {"type": "array", "items": {"type": "object"}},
        "per_minute": {"type": "object"},
        "recent_failures": {"type": "array", "items": {"type": "object"}},
        "rate_limits": {"type": "array", "items": {"type": "object"}},
        "concurrency_limits": {"type": "array", "items": {"type": "object"}},
        "schedules": {"type": "array", "items": {"type": "object"}},
    },
}


def dashboard_openapi(*, secured: bool) -> dict[str, Any]:
    """Return the ``/dashboard`` path of the OpenAPI document."""
    return {
        "/dashboard": {
            "get": {
                "operationId": "getDashboard",
                "summary": "Workers, queues, jobs of the last hour, limits and schedules",
                "parameters": [{"$ref": "#/components/parameters/f"}],
                "responses": {
                    "200": {
                        "description": "The dashboard",
                        "content": {
                            "application/json": {"schema": _DASHBOARD_SCHEMA},
                            "text/html": {"schema": {"type": "string"}},
                        },
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "400": {"$ref": "#/components/responses/InvalidParameter"},
                    "500": {"$ref": "#/components/responses/ServerError"},
                    "503": {"$ref": "#/components/responses/Unavailable"},
                },
                **({"security": [{"bearerAuth": []}]} if secured else {}),
            }
        }
    }


class Pages(Protocol):
    """What the dashboard needs of the API: its settings and tokens."""

    settings: Settings

    def authorized(self, request: Request) -> bool: ...

    def require_token(self, request: Request) -> None: ...


def dashboard_routes(pages: Pages) -> list[Route]:
    """Return the ``/dashboard`` route."""
    settings = pages.settings

    def dashboard(request: Request) -> Response:
        check_query(request, ())
        base = base_url(request)
        json_href = f"{base}dashboard?f=json"
        wants_html = output_format(request) == HTML
        if wants_html and not pages.authorized(request):
            # The page asks for the token and fetches itself with it.
            return render_page(
                request,
                "dashboard.html",
                title="Dashboard",
                json_href=json_href,
                document=None,
                authorized=False,
                refresh_ms=DASHBOARD_REFRESH_MS,
            )
        pages.require_token(request)
        state = read_state(database_for(settings), settings.broker_heartbeat_timeout_s)
        queues: list[QueueInfo] | None = None
        broker_error = None
        try:
            queues = read_queues(settings, state)
        except BrokerUnreachable as exc:
            broker_error = str(exc)
        document = dashboard_document(settings, state, queues, broker_error, base_url=base)
        # A job's error is written for operators: served, it keeps no server path.
        for failure in document["recent_failures"]:
            if failure["error"]:
                failure["error"] = redact_paths(failure["error"])
        if not wants_html:
            return Response(
                orjson.dumps(document),
                media_type="application/json",
                headers={"Cache-Control": "no-store"},
            )
        return render_page(
            request,
            "dashboard.html",
            title="Dashboard",
            json_href=json_href,
            document=document,
            chart_json=orjson.dumps(document["per_minute"]).decode(),
            authorized=True,
            refresh_ms=DASHBOARD_REFRESH_MS,
        )

    return [Route("/dashboard", dashboard, methods=["GET"])]
