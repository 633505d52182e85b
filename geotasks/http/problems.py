"""RFC 7807 problem documents: the one shape of every error the HTTP API returns.

Endpoints raise :class:`Problem`; the app's exception handlers
(:mod:`geotasks.http.error_handlers`) turn it, Starlette's own ``HTTPException`` (unknown route,
wrong method) and anything unexpected into an ``application/problem+json`` response, or an HTML
page for a browser. OGC API - Processes names some problems with its own
exception type URIs (``no-such-process``, ``no-such-job``, ``result-not-ready``); others use
``about:blank`` with the HTTP status as the title, as RFC 7807 suggests.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from starlette.responses import Response

from ..errors import GeotasksError
from .redaction import redact_paths

#: Media type of a problem document (RFC 7807).
PROBLEM_MEDIA_TYPE = "application/problem+json"

#: Prefix of the exception type URIs defined by OGC API - Processes - Part 1: Core 1.0.
OGC_EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
#: ``/processes/{id}`` or its execution names a process that is not offered.
NO_SUCH_PROCESS = OGC_EXCEPTIONS + "no-such-process"
#: ``/jobs/{id}`` names a job that was never created (or was dismissed, or has expired).
NO_SUCH_JOB = OGC_EXCEPTIONS + "no-such-job"
#: ``/jobs/{id}/results`` of a job that has not finished.
RESULT_NOT_READY = OGC_EXCEPTIONS + "result-not-ready"
#: An input that fails its process's JSON Schema, or a query parameter that is unknown or
#: malformed (the name later drafts of the standard and most servers use).
INVALID_PARAMETER = OGC_EXCEPTIONS + "invalid-parameter"


class Problem(GeotasksError):
    """Raised by an endpoint to answer with a problem document.

    Parameters:
      status: The HTTP status code.
      detail: A human-readable explanation specific to this occurrence.
      type_: A URI naming the kind of problem; ``about:blank`` by default.
      title: A short summary of the kind of problem; the status phrase by default.
      headers: Extra response headers (``WWW-Authenticate``, ``Allow``).
      extra: Extension members added to the document (``errors`` for validation details).
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        type_: str = "about:blank",
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = type_
        self.title = title or HTTPStatus(status).phrase
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def served_detail(self, instance: str | None = None) -> str:
        """Return the detail as served: server paths (a worker's error naming a file) are cut
        to their last part; ``instance``, the request's own path, is kept."""
        return redact_paths(self.detail, request_path=instance)

    def to_response(self, instance: str | None = None) -> Response:
        """Return this problem as an ``application/problem+json`` response."""
        document: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.served_detail(instance),
        }
        if instance is not None:
            document["instance"] = instance
        document.update(self.extra)
        return Response(
            orjson.dumps(document),
            status_code=self.status,
            headers=self.headers,
            media_type=PROBLEM_MEDIA_TYPE,
        )


def no_such_job(job_id: str) -> Problem:
    """Return the problem for a job id that names no job."""
    return Problem(
        404, f"there is no job {job_id!r} (never created, dismissed or expired)", type_=NO_SUCH_JOB
    )
