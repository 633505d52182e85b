"""The landing page, the conformance classes and the API definition (OpenAPI 3.0)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..settings import Settings
from .dashboard import dashboard_openapi
from .health import OPENAPI_PATHS as HEALTH_PATHS
from .metrics import OPENAPI_PATHS as METRICS_PATHS
from .negotiation import check_query
from .openapi import OPENAPI_MEDIA_TYPE, build_openapi
from .pages import base_url
from .processes import Catalogue, Process
from .resource import Resource
from .schedules import schedules_openapi
from .store import JobAccess

#: The conformance classes this server declares (OGC API - Processes - Part 1: Core 1.0).
CONFORMANCE_CLASSES = (
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/ogc-process-description",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/job-list",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/dismiss",
)

REL_CONFORMANCE = "http://www.opengis.net/def/rel/ogc/1.0/conformance"
REL_PROCESSES = "http://www.opengis.net/def/rel/ogc/1.0/processes"
REL_JOB_LIST = "http://www.opengis.net/def/rel/ogc/1.0/job-list"


class Landing(Resource):
    """``/``, ``/conformance``, ``/openapi.json`` and ``/api``."""

    def __init__(self, settings: Settings, catalogue: Catalogue, access: JobAccess) -> None:
        super().__init__(settings, catalogue, access)
        self._openapi: dict[tuple[str, tuple[int, ...]], bytes] = {}

    def routes(self) -> list[Route]:
        """This resource's routes."""
        return [
            Route("/", self.landing_page, methods=["GET"]),
            Route("/conformance", self.conformance, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/api", self.api_page, methods=["GET"]),
        ]

    def landing_page(self, request: Request) -> Response:
        """``GET /``: links to everything else."""
        check_query(request, ())
        base = base_url(request)
        document = {
            "title": "geotasks",
            "description": (
                "Background geoprocessing: submit a job, follow it, and fetch its GeoJSON "
                "result (OGC API - Processes - Part 1: Core 1.0)."
            ),
            "links": [
                *self.self_links(request, "", "this document"),
                {
                    "href": f"{base}openapi.json",
                    "rel": "service-desc",
                    "type": OPENAPI_MEDIA_TYPE,
                    "title": "the API definition (OpenAPI 3.0)",
                },
                {
                    "href": f"{base}api",
                    "rel": "service-doc",
                    "type": "text/html",
                    "title": "the API documentation",
                },
                {
                    "href": f"{base}conformance",
                    "rel": REL_CONFORMANCE,
                    "type": "application/json",
                    "title": "conformance classes implemented",
                },
                {
                    "href": f"{base}processes",
                    "rel": REL_PROCESSES,
                    "type": "application/json",
                    "title": "processes",
                },
                {
                    "href": f"{base}jobs",
                    "rel": REL_JOB_LIST,
                    "type": "application/json",
                    "title": "jobs",
                },
            ],
        }
        return self.respond(
            request,
            document,
            "landing.html",
            title="geotasks",
            json_href=f"{base}?f=json",
        )

    def conformance(self, request: Request) -> Response:
        """``GET /conformance``: the conformance classes implemented."""
        check_query(request, ())
        document = {"conformsTo": list(CONFORMANCE_CLASSES)}
        return self.respond(
            request,
            document,
            "conformance.html",
            title="Conformance",
            json_href=f"{base_url(request)}conformance?f=json",
        )

    def openapi_document(
        self, request: Request, processes: list[Process] | None = None
    ) -> dict[str, Any]:
        """Return the OpenAPI document for the base URL this client uses."""
        return build_openapi(
            list(self.catalogue) if processes is None else processes,
            server_url=base_url(request).rstrip("/") or "/",
            secured=bool(self.settings.api_tokens),
            extra_paths={
                **dashboard_openapi(secured=bool(self.settings.api_tokens)),
                **HEALTH_PATHS,
                **(METRICS_PATHS if self.settings.api_metrics else {}),
                **schedules_openapi(secured=bool(self.settings.api_tokens)),
            },
        )

    def openapi(self, request: Request) -> Response:
        """``GET /openapi.json``: the API definition."""
        check_query(request, ())
        processes = list(self.catalogue)
        # The catalogue keeps one Process per actor spec: the same objects, the same document.
        key = (base_url(request), tuple(id(process) for process in processes))
        body = self._openapi.get(key)
        if body is None:
            body = orjson.dumps(self.openapi_document(request, processes))
            # A handful of base URLs (host names clients use) and catalogue versions.
            if len(self._openapi) >= 16:
                self._openapi.clear()
            self._openapi[key] = body
        return Response(body, media_type=OPENAPI_MEDIA_TYPE)

    def api_page(self, request: Request) -> Response:
        """``GET /api``: the API documentation as HTML (the ``service-doc``)."""
        check_query(request, ())
        return self.html(
            request,
            "api.html",
            title="API",
            json_href=f"{base_url(request)}openapi.json",
            document=self.openapi_document(request),
        )
