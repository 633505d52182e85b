"""``GET /metrics``: Prometheus text exposition of the whole system (``GEOTASKS_API_METRICS``).

Opt-in, and never open to the world by accident: with ``GEOTASKS_API_TOKENS`` set a scrape needs
a bearer token (Prometheus' ``authorization`` setting); without, only loopback clients get an
answer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..broker import database_for
from ..errors import ConfigurationError
from ..monitoring.metrics import render_metrics
from ..postgres.overview import read_state
from ..settings import Settings
from .negotiation import check_query
from .problems import Problem

#: The endpoint in the API's OpenAPI document, when metrics are served.
OPENAPI_PATHS: dict[str, Any] = {
    "/metrics": {
        "get": {
            "operationId": "getMetrics",
            "summary": "Prometheus metrics of every worker, queue and actor",
            "responses": {
                "200": {
                    "description": "Prometheus text exposition format 0.0.4",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    }
}


def is_loopback(request: Request) -> bool:
    """Whether the client connected from a loopback address."""
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def metrics_routes(settings: Settings, require_token: Callable[[Request], None]) -> list[Route]:
    """Return the ``/metrics`` route, or none when ``GEOTASKS_API_METRICS`` is off.

    Parameters:
      settings: The server's settings.
      require_token: Raises 401 unless the request carries a valid bearer token.

    Raises:
      ConfigurationError: when metrics are on but ``prometheus_client`` is not installed.
    """
    if not settings.api_metrics:
        return []
    try:
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            "GEOTASKS_API_METRICS=true needs prometheus_client: pip install 'geotasks[metrics]'"
        ) from exc

    def metrics(request: Request) -> Response:
        if settings.api_tokens:
            require_token(request)
        elif not is_loopback(request):
            raise Problem(
                403, "without GEOTASKS_API_TOKENS, /metrics answers loopback clients only"
            )
        check_query(request, ())
        state = read_state(database_for(settings), settings.broker_heartbeat_timeout_s)
        body, content_type = render_metrics(settings, state)
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

    return [Route("/metrics", metrics, methods=["GET"])]
