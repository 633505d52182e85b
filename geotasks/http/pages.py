"""HTML pages: the templates, and the headers every page is sent with.

Resources and errors alike are rendered here, so a browser gets the same page shell, links
and Content-Security-Policy whatever it asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

#: HTML pages load nothing from anywhere else and run no inline script.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

#: The page templates, in ``geotasks/http/templates``.
TEMPLATES = Environment(
    loader=PackageLoader("geotasks.http", "templates"),
    autoescape=select_autoescape(["html"]),
)


def base_url(request: Request) -> str:
    """Return the API's base URL as this client reaches it, ending in ``/``."""
    url = str(request.base_url)
    return url if url.endswith("/") else url + "/"


def render_page(
    request: Request,
    template: str,
    *,
    title: str,
    json_href: str | None,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """Render an HTML page, with a link to the JSON representation of the same resource.

    Parameters:
      request: The request answered (its base URL prefixes every link).
      template: The template's file name.
      title: The page's heading.
      json_href: The URL of the same resource as JSON, if it has one.
      status_code: The HTTP status.
      headers: Extra response headers (``WWW-Authenticate`` of an error page).
      context: The template's variables.
    """
    alternates = (
        [{"href": json_href, "rel": "alternate", "type": "application/json"}] if json_href else []
    )
    page = TEMPLATES.get_template(template).render(
        title=title, base_url=base_url(request), alternates=alternates, **context
    )
    return HTMLResponse(
        page,
        status_code=status_code,
        headers={**(headers or {}), "Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )
