"""What every resource of the HTTP API shares: settings, the job store, the process catalogue,
bearer tokens, and answering in JSON or in HTML.

Endpoints that touch Postgres are plain ``def`` functions, which Starlette runs in its thread
pool: psycopg2 blocks, and must never do so on the event loop. Every resource answers in JSON
and in HTML (``?f=`` or ``Accept``); every error is an RFC 7807 problem document.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..settings import Settings
from .negotiation import HTML, output_format
from .pages import base_url, render_page
from .problems import INVALID_PARAMETER, Problem
from .processes import Catalogue
from .store import JobAccess


def json_response(
    document: Any,
    status_code: int = 200,
    *,
    headers: Mapping[str, str] | None = None,
    media_type: str = "application/json",
) -> Response:
    """Return ``document`` encoded with orjson."""
    return Response(
        orjson.dumps(document), status_code=status_code, headers=headers, media_type=media_type
    )


class Resource:
    """The state every resource shares, and how it answers.

    Submitting, listing and dismissing jobs need a bearer token when ``GEOTASKS_API_TOKENS`` is
    set; reading one job and its result needs only its id, which is the only key to a result
    (ids are random UUIDs, and nothing else names a result).

    Parameters:
      settings: The validated configuration.
      catalogue: The processes offered.
      access: The job store.
    """

    def __init__(self, settings: Settings, catalogue: Catalogue, access: JobAccess) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.access = access

    def authorized(self, request: Request) -> bool:
        """Whether the request carries one of the configured bearer tokens (or none is set)."""
        if not self.settings.api_tokens:
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        presented = token.strip().encode()
        # Every token is compared, in constant time, so timing reveals neither which nor how much.
        matches = [hmac.compare_digest(presented, t.encode()) for t in self.settings.api_tokens]
        return any(matches)

    def require_token(self, request: Request) -> None:
        """Raise 401 unless the request is :meth:`authorized`."""
        if self.authorized(request):
            return
        has_header = "authorization" in request.headers
        challenge = 'Bearer realm="geotasks"' + (', error="invalid_token"' if has_header else "")
        raise Problem(
            401,
            "this operation needs a valid bearer token (Authorization: Bearer …)"
            if not has_header
            else "the bearer token is not valid",
            headers={"WWW-Authenticate": challenge},
        )

    def html(
        self,
        request: Request,
        template: str,
        *,
        title: str,
        json_href: str,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """Render an HTML page, with a link to the JSON representation of the same resource."""
        return render_page(
            request, template, title=title, json_href=json_href, status_code=status_code, **context
        )

    def respond(
        self,
        request: Request,
        document: Any,
        template: str,
        *,
        title: str,
        json_href: str,
        **context: Any,
    ) -> Response:
        """Return ``document`` as JSON, or as the HTML page ``template`` when HTML was asked for."""
        if output_format(request) == HTML:
            return self.html(
                request, template, title=title, json_href=json_href, document=document, **context
            )
        return json_response(document)

    def self_links(self, request: Request, path: str, title: str) -> list[dict[str, str]]:
        """Return the ``self`` and ``alternate`` links of a JSON document at ``path``."""
        url = base_url(request) + path
        return [
            {"href": f"{url}?f=json", "rel": "self", "type": "application/json", "title": title},
            {"href": f"{url}?f=html", "rel": "alternate", "type": "text/html", "title": title},
        ]


def int_parameter(
    request: Request, name: str, default: int, *, minimum: int, maximum: int | None
) -> int:
    value = optional_int_parameter(request, name, minimum=minimum, maximum=maximum)
    return default if value is None else value


def optional_int_parameter(
    request: Request, name: str, *, minimum: int, maximum: int | None
) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise Problem(
            400, f"{name}={raw!r} is not a whole number", type_=INVALID_PARAMETER
        ) from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise Problem(400, f"{name}={value} must be {bounds}", type_=INVALID_PARAMETER)
    return value


def list_parameter(request: Request, name: str) -> list[str]:
    """Return a comma-separated (or repeated) query parameter's values, empty ones dropped."""
    values: list[str] = []
    for raw in request.query_params.getlist(name):
        values.extend(part.strip() for part in raw.split(",") if part.strip())
    return values


def with_params(request: Request, url: str, **overrides: str) -> str:
    """Return ``url`` with this request's query parameters, some of them replaced."""
    items = [(k, v) for k, v in request.query_params.multi_items() if k not in overrides]
    items.extend(overrides.items())
    return f"{url}?{urlencode(items)}" if items else url
