"""The app's exception handlers: every error as a problem document, or as a page for browsers.

A program gets ``application/problem+json`` (RFC 7807); a browser (``Accept: text/html`` or
``?f=html``) gets the same problem as an HTML page with the same status and headers, as it gets
every other resource.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..errors import DatabaseUnavailable
from .negotiation import wants_html
from .pages import render_page
from .problems import Problem

logger = logging.getLogger(__name__)


def problem_response(request: Request, problem: Problem) -> Response:
    """Return ``problem`` as the client wants it: an HTML page or a problem document."""
    instance = request.url.path
    if not wants_html(request):
        return problem.to_response(instance)
    return render_page(
        request,
        "error.html",
        title=f"{problem.status} {problem.title}",
        json_href=None,
        status_code=problem.status,
        headers=problem.headers,
        detail=problem.served_detail(instance),
        problem_type=problem.type,
    )


async def handle_problem(request: Request, exc: Exception) -> Response:
    """Exception handler for :class:`Problem`."""
    assert isinstance(exc, Problem)
    return problem_response(request, exc)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Exception handler turning Starlette's ``HTTPException`` (404, 405) into a problem."""
    assert isinstance(exc, HTTPException)
    detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else None
    if exc.status_code == 404 and detail is None:
        detail = f"no resource at {request.url.path}"
    elif exc.status_code == 405 and detail is None:
        detail = f"{request.method} is not allowed on {request.url.path}"
    problem = Problem(
        exc.status_code,
        detail or HTTPStatus(exc.status_code).description,
        headers=exc.headers,
    )
    return problem_response(request, problem)


async def handle_unavailable(request: Request, exc: Exception) -> Response:
    """Exception handler for a database that cannot be reached: 503, try again later."""
    logger.warning("Answering 503 to %s %s: %s", request.method, request.url.path, exc)
    problem = Problem(
        503, "the job store is unavailable; try again shortly", headers={"Retry-After": "5"}
    )
    return problem_response(request, problem)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Exception handler of last resort: log the traceback, never send it to the client."""
    logger.exception("Unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(request, Problem(500, "the server failed to handle this request"))


#: The handlers to install on the app, most specific first.
EXCEPTION_HANDLERS = {
    Problem: handle_problem,
    HTTPException: handle_http_exception,
    DatabaseUnavailable: handle_unavailable,
    Exception: handle_unexpected,
}
