"""Processes: ``/processes``, a process's description (with its form), and execution.

Execution is the one ``async`` endpoint: it only reads the request body (bounded) before
handing over to a thread.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InputError
from ..geo import output_formats
from ..geo.listing import list_dataset_names
from ..settings import Settings
from .forms import form_fields
from .negotiation import HTML, check_query, output_format
from .openapi import DEFAULT_LIMIT, MAX_LIMIT
from .pages import base_url
from .problems import INVALID_PARAMETER, Problem
from .processes import Catalogue, Process
from .resource import Resource, int_parameter, json_response
from .result_routes import Results
from .status import status_info
from .store import JobAccess

logger = logging.getLogger(__name__)

#: Execute requests that may wait for their job at once (``Prefer: respond-sync``); others are
#: answered asynchronously at once, so waiting requests never take the whole thread pool.
MAX_SYNC_WAITS = 8


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


class Processes(Resource):
    """``/processes``, ``/processes/{processID}`` and its ``/execution``.

    Parameters:
      results: Answers a synchronous execution with the job's result.
    """

    def __init__(
        self, settings: Settings, catalogue: Catalogue, access: JobAccess, results: Results
    ) -> None:
        super().__init__(settings, catalogue, access)
        self.results = results
        self._sync_waits = threading.BoundedSemaphore(MAX_SYNC_WAITS)

    def routes(self) -> list[Route]:
        """This resource's routes."""
        return [
            Route("/processes", self.processes, methods=["GET"]),
            Route("/processes/{processID}", self.process, methods=["GET"]),
            Route("/processes/{processID}/execution", self.execute, methods=["POST"]),
        ]

    def processes(self, request: Request) -> Response:
        """``GET /processes``: the processes offered."""
        check_query(request, ("limit", "offset"))
        limit = int_parameter(request, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
        offset = int_parameter(request, "offset", 0, minimum=0, maximum=None)
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
                return self.results.result_response(
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
