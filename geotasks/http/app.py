"""The Starlette application: OGC API - Processes - Part 1: Core 1.0 over the job store.

Endpoints that touch Postgres are plain ``def`` functions, which Starlette runs in its thread
pool: psycopg2 blocks, and must never do so on the event loop. The one ``async`` endpoint,
execution, only reads the request body (bounded) before handing over to a thread.

Every resource answers in JSON and in HTML (``?f=`` or ``Accept``); every error is an RFC 7807
problem document. Submitting, listing and dismissing jobs need a bearer token when
``GEOTASKS_API_TOKENS`` is set; reading one job and its result needs only its id, which is the
only key to a result (ids are random UUIDs, and nothing else names a result).
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InputError
from ..geo import output_formats
from ..geo.listing import list_dataset_names
from ..job_model import CANCELLABLE_STATES, JobInfo, JobState
from ..postgres.results import FILE, result_file_name
from ..settings import Settings, get_settings
from .dashboard import dashboard_openapi, dashboard_routes
from .error_handlers import EXCEPTION_HANDLERS
from .forms import form_fields
from .health import OPENAPI_PATHS as HEALTH_PATHS
from .health import health_routes
from .metrics import OPENAPI_PATHS as METRICS_PATHS
from .metrics import metrics_routes
from .negotiation import HTML, check_query, output_format
from .openapi import DEFAULT_LIMIT, MAX_LIMIT, OPENAPI_MEDIA_TYPE, build_openapi
from .pages import base_url, render_page
from .problems import (
    INVALID_PARAMETER,
    RESULT_NOT_READY,
    Problem,
    no_such_job,
)
from .processes import Catalogue, Process
from .schedules import schedules_openapi, schedules_routes
from .status import OGC_STATUS_CODES, states_for, status_info
from .store import JobAccess, JobQuery, parse_cursor, parse_datetime_filter
from .streaming import PIECE_BYTES, iter_stream, parse_range

logger = logging.getLogger(__name__)

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

#: Results up to this size are drawn on the job page's map; larger ones are only linked.
PREVIEW_MAX_BYTES = 16 * 1024 * 1024
#: Execute requests that may wait for their job at once (``Prefer: respond-sync``); others are
#: answered asynchronously at once, so waiting requests never take the whole thread pool.
MAX_SYNC_WAITS = 8
#: How often the HTML pages poll for changes, in milliseconds.
JOBS_REFRESH_MS = 3000
JOB_REFRESH_MS = 2000

#: Headers of every response: never sniff content types, and never send a page's URL (which
#: may hold a job id, the key to a result) to another site.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


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


def human_size(size_bytes: int) -> str:
    """Return a size for people: ``812 B``, ``4.2 MB``."""
    value = float(size_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Preference:
    """What an execute request's ``Prefer`` header asks for (RFC 7240).

    Attributes:
      respond_sync: ``respond-sync`` was asked for.
      respond_async: ``respond-async`` was asked for.
      wait_s: The ``wait`` preference, in seconds, if any.
    """

    respond_sync: bool = False
    respond_async: bool = False
    wait_s: int | None = None

    @classmethod
    def parse(cls, header: str | None) -> Preference:
        """Parse a ``Prefer`` header; unknown preferences are ignored, as RFC 7240 asks."""
        if not header:
            return cls()
        sync = respond_async = False
        wait_s: int | None = None
        for item in header.split(","):
            token = item.split(";", 1)[0].strip().lower()
            name, _, value = token.partition("=")
            if name == "respond-sync":
                sync = True
            elif name == "respond-async":
                respond_async = True
            elif name == "wait" and value.strip().strip('"').isdigit():
                wait_s = int(value.strip().strip('"'))
        return cls(respond_sync=sync, respond_async=respond_async, wait_s=wait_s)


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self._headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Api:
    """The endpoints, sharing settings, the job store and the process catalogue.

    Parameters:
      settings: The validated configuration.
      catalogue: The processes offered.
      access: The job store.
    """

    def __init__(self, settings: Settings, catalogue: Catalogue, access: JobAccess) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.access = access
        self._openapi: dict[tuple[str, tuple[int, ...]], bytes] = {}
        self._sync_waits = threading.BoundedSemaphore(MAX_SYNC_WAITS)

    # -- helpers -------------------------------------------------------------------------

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

    # -- landing page, conformance, API definition --------------------------------------

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

    # -- processes -----------------------------------------------------------------------

    def processes(self, request: Request) -> Response:
        """``GET /processes``: the processes offered."""
        check_query(request, ("limit", "offset"))
        limit = _int_parameter(request, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
        offset = _int_parameter(request, "offset", 0, minimum=0, maximum=None)
        base = base_url(request)
        processes = list(self.catalogue)
        page = processes[offset : offset + limit]
        links = self.self_links(request, "processes", "processes")
        if offset + limit < len(processes):
            links.append(
                {
                    "href": f"{base}processes?limit={limit}&offset={offset + limit}",
                    "rel": "next",
                    "type": "application/json",
                }
            )
        document = {"processes": [p.summary(base) for p in page], "links": links}
        return self.respond(
            request,
            document,
            "processes.html",
            title="Processes",
            json_href=f"{base}processes?f=json",
        )

    def process(self, request: Request) -> Response:
        """``GET /processes/{processID}``: a process's description."""
        check_query(request, ())
        process = self.catalogue.get(request.path_params["processID"])
        base = base_url(request)
        document = process.describe(base)
        if output_format(request) != HTML:
            return json_response(document)
        return self.html(
            request,
            "process.html",
            title=process.title,
            json_href=f"{base}processes/{process.id}?f=json",
            document=document,
            execute_url=f"{base}processes/{process.id}/execution",
            example={"inputs": process.example_inputs()},
            fields=form_fields(process, self._dataset_names()),
            secured=bool(self.settings.api_tokens),
        )

    def _dataset_names(self) -> list[str]:
        """The names the form's dataset picker offers: none when the API asks for a token
        (the page is public; the data directory's content is not)."""
        if self.settings.api_tokens or self.settings.data_dir is None:
            return []
        return list_dataset_names(self.settings.data_dir)

    async def execute(self, request: Request) -> Response:
        """``POST /processes/{processID}/execution``: create a job.

        Answers 201 with ``Location`` and the job's statusInfo; with ``Prefer: respond-sync``
        it first waits (boundedly) for the job and answers 200 with the result if it is done.
        """
        self.require_token(request)
        check_query(request, ())
        process = self.catalogue.get(request.path_params["processID"])
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise Problem(415, "the execute request must be application/json")
        body = await self._read_body(request)
        try:
            execute = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise Problem(400, f"the request body is not JSON: {exc}") from None
        if not isinstance(execute, dict):
            raise Problem(400, "the execute request must be a JSON object")
        kwargs, response_mode, options = self._check_execute(process, execute)
        preference = Preference.parse(request.headers.get("prefer"))
        return await run_in_threadpool(
            self._execute, request, process, kwargs, response_mode, preference, options
        )

    async def _read_body(self, request: Request) -> bytes:
        limit = self.settings.api_max_request_bytes
        too_large = Problem(
            413, f"the request body is larger than {limit} bytes (GEOTASKS_API_MAX_REQUEST_BYTES)"
        )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks: list[bytes] = []
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    def _check_execute(
        self, process: Process, execute: dict[str, Any]
    ) -> tuple[dict[str, Any], str, dict[str, Any]]:
        """The actor's arguments, the response mode, and the message options the request asks
        for: ``outputs.<name>.format.mediaType`` becomes ``output_format``."""
        if "subscriber" in execute:
            raise Problem(
                400,
                "callbacks (subscriber) are not supported; poll the job's status instead",
                type_=INVALID_PARAMETER,
            )
        unknown = sorted(set(execute) - {"inputs", "outputs", "response"})
        if unknown:
            raise Problem(
                400,
                f"unknown member(s) of the execute request: {', '.join(unknown)} "
                "(it has inputs, outputs and response)",
                type_=INVALID_PARAMETER,
            )
        response_mode = execute.get("response", "raw")
        if response_mode not in ("raw", "document"):
            raise Problem(400, "'response' must be 'raw' or 'document'", type_=INVALID_PARAMETER)
        options: dict[str, Any] = {}
        outputs = execute.get("outputs", {})
        if not isinstance(outputs, dict):
            raise Problem(400, "'outputs' must be a JSON object", type_=INVALID_PARAMETER)
        for name, output in outputs.items():
            if name != process.output.name:
                raise Problem(
                    400,
                    f"process {process.id!r} has no output {name!r} "
                    f"(its output is {process.output.name!r})",
                    type_=INVALID_PARAMETER,
                )
            mode = output.get("transmissionMode", "value") if isinstance(output, dict) else None
            if mode != "value":
                raise Problem(
                    400,
                    f"output {name!r}: only transmissionMode 'value' is offered",
                    type_=INVALID_PARAMETER,
                )
            options.update(_output_options(process, name, output))
        return process.validate(execute.get("inputs", {})), response_mode, options

    def _execute(
        self,
        request: Request,
        process: Process,
        kwargs: dict[str, Any],
        response_mode: str,
        preference: Preference,
        options: dict[str, Any],
    ) -> Response:
        job_id = self.access.submit(process, kwargs, **options)
        base = base_url(request)
        location = f"{base}jobs/{job_id}"
        if preference.respond_sync and self._sync_waits.acquire(blocking=False):
            wait_s = self.settings.api_sync_wait_s
            if preference.wait_s is not None:
                wait_s = min(wait_s, preference.wait_s)
            try:
                info = self.access.wait(job_id, wait_s)
            finally:
                self._sync_waits.release()
            if info is not None and info.status.finished:
                headers = {
                    "Preference-Applied": "respond-sync",
                    "Link": f'<{location}>; rel="monitor"',
                }
                return self._result_response(
                    request,
                    info,
                    process=process,
                    document=response_mode == "document",
                    extra_headers=headers,
                )
        info = self.access.info(job_id)
        if info is None:
            raise AssertionError(f"job {job_id} has no status right after it was submitted")
        headers = {"Location": location}
        if preference.respond_async:
            headers["Preference-Applied"] = "respond-async"
        logger.info("Job %s created for process %s", job_id, process.id)
        return json_response(status_info(info, base), 201, headers=headers)

    # -- jobs ----------------------------------------------------------------------------

    def jobs(self, request: Request) -> Response:
        """``GET /jobs``: one page of jobs, newest first, filtered."""
        allowed = (
            "type",
            "processID",
            "status",
            "datetime",
            "minDuration",
            "maxDuration",
            "limit",
            "cursor",
        )
        check_query(request, allowed)
        wants_html = output_format(request) == HTML
        query = self._job_query(request)
        base = base_url(request)
        if wants_html and not self.authorized(request):
            return self._jobs_page(request, query, [], [], authorized=False)
        self.require_token(request)
        page = self.access.list_jobs(query)
        jobs = [status_info(info, base) for info in page.jobs]
        links = [
            *self.self_links(request, "jobs", "jobs"),
        ]
        for rel, cursor in (("next", page.next_cursor), ("prev", page.prev_cursor)):
            if cursor is not None:
                links.append(
                    {
                        "href": _with_params(request, base + "jobs", cursor=cursor),
                        "rel": rel,
                        "type": "application/json",
                    }
                )
        if wants_html:
            return self._jobs_page(request, query, jobs, links, authorized=True)
        return json_response({"jobs": jobs, "links": links})

    def _jobs_page(
        self,
        request: Request,
        query: JobQuery,
        jobs: list[dict[str, Any]],
        links: list[dict[str, str]],
        *,
        authorized: bool,
    ) -> Response:
        json_url = _with_params(request, base_url(request) + "jobs", f="json")
        html_links = [{**link, "href": link["href"].replace("f=json", "f=html")} for link in links]
        return self.html(
            request,
            "jobs.html",
            title="Jobs",
            json_href=json_url,
            jobs=jobs,
            links=html_links,
            authorized=authorized,
            jobs_url=json_url,
            refresh_ms=JOBS_REFRESH_MS,
            status_codes=OGC_STATUS_CODES,
            selected_status=query.ogc_statuses,
            process_ids=[p.id for p in self.catalogue],
            selected_processes=query.process_ids,
        )

    def _job_query(self, request: Request) -> JobQuery:
        params = request.query_params
        types = _list_parameter(request, "type")
        for value in types:
            if value != "process":
                raise Problem(
                    400, f"type={value!r}: only 'process' jobs exist", type_=INVALID_PARAMETER
                )
        statuses = _list_parameter(request, "status")
        for value in statuses:
            if value not in OGC_STATUS_CODES:
                raise Problem(
                    400,
                    f"status={value!r} is not one of {', '.join(OGC_STATUS_CODES)}",
                    type_=INVALID_PARAMETER,
                )
        min_duration = _optional_int_parameter(request, "minDuration", minimum=0, maximum=None)
        max_duration = _optional_int_parameter(request, "maxDuration", minimum=0, maximum=None)
        created_from, created_to = parse_datetime_filter(params.get("datetime"))
        return JobQuery(
            process_ids=_list_parameter(request, "processID"),
            ogc_statuses=statuses,
            states=states_for(statuses) if statuses else [],
            created_from=created_from,
            created_to=created_to,
            min_duration_s=min_duration,
            max_duration_s=max_duration,
            limit=_int_parameter(request, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT),
            position=parse_cursor(params.get("cursor")),
        )

    def job(self, request: Request) -> Response:
        """``GET /jobs/{jobID}``: a job's statusInfo (or its page, with a map of the result)."""
        check_query(request, ())
        job_id = request.path_params["jobID"]
        info = self.access.info(job_id)
        if info is None:
            raise no_such_job(job_id)
        base = base_url(request)
        document = status_info(info, base)
        if output_format(request) != HTML:
            return json_response(document)
        results_url = None
        context: dict[str, Any] = {}
        if info.status is JobState.SUCCESS and info.result_media_type is not None:
            size = info.result_size_bytes or 0
            results_url = f"{base}jobs/{job_id}/results"
            geojson = info.result_media_type == "application/geo+json"
            if size > PREVIEW_MAX_BYTES:
                preview, note = (
                    None,
                    (
                        f"The result is {human_size(size)}: too large to draw here "
                        f"(up to {human_size(PREVIEW_MAX_BYTES)}); download it instead."
                    ),
                )
            else:
                preview, note = ("map" if geojson else "json"), ""
            context = {
                "result_size": human_size(size),
                "result_media_type": info.result_media_type,
                "download_suffix": ".geojson" if geojson else ".json",
                "preview": preview,
                "preview_note": note,
            }
        return self.html(
            request,
            "job.html",
            title=f"Job {job_id}",
            json_href=f"{base}jobs/{job_id}?f=json",
            job=document,
            status_url=f"{base}jobs/{job_id}?f=json",
            refresh_ms=JOB_REFRESH_MS,
            results_url=results_url,
            **context,
        )

    def dismiss(self, request: Request) -> Response:
        """``DELETE /jobs/{jobID}``: cancel a waiting job, or dismiss a finished one.

        A job waiting to start, for a rate-limit slot or for its next retry is cancelled and
        reads ``dismissed``; a dismissed finished job is deleted with its result, and its id
        then reads 404. A job executing (STARTED) cannot be interrupted (a GDAL call cannot be
        stopped halfway): 409, try again once it has finished.
        """
        self.require_token(request)
        check_query(request, ())
        job_id = request.path_params["jobID"]
        info = self.access.info(job_id)
        if info is None:
            raise no_such_job(job_id)
        base = base_url(request)
        if info.status in CANCELLABLE_STATES:
            if self.access.cancel(job_id):
                cancelled = self.access.info(job_id)
                if cancelled is None:
                    raise no_such_job(job_id)
                logger.info("Job %s cancelled over HTTP", job_id)
                return json_response(status_info(cancelled, base))
            # It started between the read and the cancel: answer as for a running job.
            info = self.access.info(job_id) or info
        if not info.status.finished:
            raise Problem(
                409,
                f"job {job_id} is {status_info(info, base)['status']} and cannot be "
                "interrupted; dismiss it once it has finished",
            )
        if not self.access.dismiss(job_id):
            raise no_such_job(job_id)
        logger.info("Job %s dismissed over HTTP", job_id)
        document = status_info(info, base)
        document.update(status="dismissed", message="dismissed: the job and its result are deleted")
        document["links"] = [link for link in document["links"] if link["rel"] == "self"]
        return json_response(document)

    def results(self, request: Request) -> Response:
        """``GET /jobs/{jobID}/results``: the result, streamed (Range and gzip supported)."""
        check_query(request, ())
        job_id = request.path_params["jobID"]
        info = self.access.info(job_id)
        if info is None:
            raise no_such_job(job_id)
        return self._result_response(request, info, process=None, document=False)

    def _result_response(
        self,
        request: Request,
        info: JobInfo,
        *,
        process: Process | None,
        document: bool,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Response:
        job_id = info.message_id
        state = info.status
        if not state.finished:
            raise Problem(
                404,
                f"job {job_id} has not finished yet; poll /jobs/{job_id}",
                type_=RESULT_NOT_READY,
            )
        if state is JobState.FAILURE:
            raise _failure_problem(info)
        if state is JobState.SKIPPED:
            raise Problem(500, f"job {job_id} was skipped by its worker and has no result")
        if state is JobState.CANCELLED:
            raise Problem(410, f"job {job_id} was cancelled before it ran: it has no result")
        if state is JobState.EXPIRED or info.result_kind is None:
            raise Problem(
                410,
                f"the result of job {job_id} has expired (results are kept "
                f"{self.settings.result_ttl_s} s, GEOTASKS_RESULT_TTL_S)",
            )
        size = info.result_size_bytes or 0
        media_type = info.result_media_type or "application/octet-stream"
        headers = {
            "Accept-Ranges": "bytes",
            "ETag": f'"{job_id}"',
            "Cache-Control": "private, max-age=300",
            **(extra_headers or {}),
        }
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers=headers)
        if info.result_kind == FILE:
            # A file of another format (output_format): saved under its own name, never
            # wrapped in a JSON results document.
            name = result_file_name(job_id, media_type)
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        elif document:
            assert process is not None
            return self._results_document(info, process, headers)
        byte_range = parse_range(request.headers.get("range"), size)
        status_code = 200
        first, length = 0, size
        if byte_range is not None:
            first, last = byte_range
            length = last - first + 1
            status_code = 206
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        headers["Content-Length"] = str(length)
        if request.method == "HEAD":
            return Response(status_code=status_code, headers=headers, media_type=media_type)
        stream = self.access.open_result(info)
        if length <= PIECE_BYTES:
            # Small enough to send in one piece: the response keeps its Content-Length, and
            # gzip only bothers with bodies worth compressing.
            body = b"".join(iter_stream(stream, first=first, length=length))
            return Response(body, status_code=status_code, headers=headers, media_type=media_type)
        return StreamingResponse(
            iter_stream(stream, first=first, length=length),
            status_code=status_code,
            headers=headers,
            media_type=media_type,
        )

    def _results_document(
        self, info: JobInfo, process: Process, headers: dict[str, str]
    ) -> Response:
        # A results document wraps the one output: {"<output id>": <value>}. The value is
        # already JSON, so its bytes go through unchanged between the two halves.
        prefix = orjson.dumps({process.output.name: None})[:-5]
        stream = self.access.open_result(info)

        def body() -> Iterator[bytes]:
            yield prefix
            yield from iter_stream(stream, first=0, length=info.result_size_bytes or 0)
            yield b"}"

        return StreamingResponse(body(), headers=headers, media_type="application/json")


def _output_options(process: Process, name: str, output: dict[str, Any]) -> dict[str, Any]:
    """``{"output_format": …}`` for an output asking for a media type other than its own."""
    media_type = (output.get("format") or {}).get("mediaType")
    if media_type is None or media_type == process.output.media_type:
        return {}
    if process.output.media_type != output_formats.GEOJSON_MEDIA_TYPE:
        raise Problem(
            400,
            f"output {name!r} is {process.output.media_type}; it has no other formats",
            type_=INVALID_PARAMETER,
        )
    try:
        chosen = output_formats.output_format(media_type)
    except InputError as exc:
        raise Problem(400, f"output {name!r}: {exc}", type_=INVALID_PARAMETER) from None
    return {output_formats.OUTPUT_FORMAT_OPTION: chosen.media_type}


def _failure_problem(info: JobInfo) -> Problem:
    error = info.error
    type_name = error.type_name if error else "Exception"
    message = error.message if error else "unknown error"
    if type_name == "InputError":
        return Problem(
            400, f"job {info.message_id} rejected its input: {message}", type_=INVALID_PARAMETER
        )
    if type_name == "TimeLimitExceeded":
        return Problem(504, f"job {info.message_id} ran out of time: {message}")
    return Problem(500, f"job {info.message_id} failed: {type_name}: {message}", title="Job failed")


def _int_parameter(
    request: Request, name: str, default: int, *, minimum: int, maximum: int | None
) -> int:
    value = _optional_int_parameter(request, name, minimum=minimum, maximum=maximum)
    return default if value is None else value


def _optional_int_parameter(
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


def _list_parameter(request: Request, name: str) -> list[str]:
    """Return a comma-separated (or repeated) query parameter's values, empty ones dropped."""
    values: list[str] = []
    for raw in request.query_params.getlist(name):
        values.extend(part.strip() for part in raw.split(",") if part.strip())
    return values


def _with_params(request: Request, url: str, **overrides: str) -> str:
    """Return ``url`` with this request's query parameters, some of them replaced."""
    items = [(k, v) for k, v in request.query_params.multi_items() if k not in overrides]
    items.extend(overrides.items())
    return f"{url}?{urlencode(items)}" if items else url


def create_app(
    settings: Settings | None = None,
    *,
    catalogue: Catalogue | None = None,
    access: JobAccess | None = None,
) -> Starlette:
    """Build the ASGI application.

    Parameters:
      settings: The configuration; read from the environment by default.
      catalogue: The processes offered; by default every actor of the actor catalogue in the
        job store's database.
      access: The job store; one on ``GEOTASKS_DATABASE_URL`` by default.

    Returns:
      Starlette: the app, ready for uvicorn.

    Raises:
      ConfigurationError: when no database is configured.
    """
    from .processes import default_catalogue

    settings = settings or get_settings()
    access = access or JobAccess.from_settings(settings)
    catalogue = catalogue or default_catalogue(access.database)
    api = Api(settings, catalogue, access)
    routes = [
        Route("/", api.landing_page, methods=["GET"]),
        Route("/conformance", api.conformance, methods=["GET"]),
        Route("/openapi.json", api.openapi, methods=["GET"]),
        Route("/api", api.api_page, methods=["GET"]),
        Route("/processes", api.processes, methods=["GET"]),
        Route("/processes/{processID}", api.process, methods=["GET"]),
        Route("/processes/{processID}/execution", api.execute, methods=["POST"]),
        Route("/jobs", api.jobs, methods=["GET"]),
        Route("/jobs/{jobID}", api.job, methods=["GET"]),
        Route("/jobs/{jobID}", api.dismiss, methods=["DELETE"]),
        Route("/jobs/{jobID}/results", api.results, methods=["GET"]),
        *dashboard_routes(api),
        *health_routes(settings),
        *metrics_routes(settings, api.require_token),
        *schedules_routes(settings, api.require_token),
        Mount("/static", StaticFiles(packages=[("geotasks.http", "static")]), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if settings.api_cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.api_cors_origins),
                allow_methods=["GET", "HEAD", "POST", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "Prefer", "Range", "Accept"],
                expose_headers=[
                    "Location",
                    "Content-Range",
                    "Accept-Ranges",
                    "Content-Length",
                    "ETag",
                    "Link",
                    "Preference-Applied",
                ],
                max_age=600,
            )
        )
    # Level 5 compresses GeoJSON nearly as well as 9 at a fraction of the CPU.
    middleware.append(Middleware(GZipMiddleware, minimum_size=1024, compresslevel=5))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.api = api
    return app
