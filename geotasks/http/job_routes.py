"""Jobs: the job list (filtered, paged by cursor), a job's status and page, and dismissal."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..humanize import human_size
from ..job_model import CANCELLABLE_STATES, JobState
from .negotiation import HTML, check_query, output_format
from .openapi import DEFAULT_LIMIT, MAX_LIMIT
from .pages import base_url
from .problems import INVALID_PARAMETER, Problem, no_such_job
from .resource import (
    Resource,
    int_parameter,
    json_response,
    list_parameter,
    optional_int_parameter,
    with_params,
)
from .status import OGC_STATUS_CODES, states_for, status_info
from .store import JobQuery, parse_cursor, parse_datetime_filter

logger = logging.getLogger(__name__)

#: Results up to this size are drawn on the job page's map; larger ones are only linked.
PREVIEW_MAX_BYTES = 16 * 1024 * 1024
#: How often the HTML pages poll for changes, in milliseconds.
JOBS_REFRESH_MS = 3000
JOB_REFRESH_MS = 2000


class Jobs(Resource):
    """``GET /jobs``, ``GET /jobs/{jobID}`` and ``DELETE /jobs/{jobID}``."""

    def routes(self) -> list[Route]:
        """This resource's routes."""
        return [
            Route("/jobs", self.jobs, methods=["GET"]),
            Route("/jobs/{jobID}", self.job, methods=["GET"]),
            Route("/jobs/{jobID}", self.dismiss, methods=["DELETE"]),
        ]

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
                        "href": with_params(request, base + "jobs", cursor=cursor),
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
        json_url = with_params(request, base_url(request) + "jobs", f="json")
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
        types = list_parameter(request, "type")
        for value in types:
            if value != "process":
                raise Problem(
                    400, f"type={value!r}: only 'process' jobs exist", type_=INVALID_PARAMETER
                )
        statuses = list_parameter(request, "status")
        for value in statuses:
            if value not in OGC_STATUS_CODES:
                raise Problem(
                    400,
                    f"status={value!r} is not one of {', '.join(OGC_STATUS_CODES)}",
                    type_=INVALID_PARAMETER,
                )
        min_duration = optional_int_parameter(request, "minDuration", minimum=0, maximum=None)
        max_duration = optional_int_parameter(request, "maxDuration", minimum=0, maximum=None)
        created_from, created_to = parse_datetime_filter(params.get("datetime"))
        return JobQuery(
            process_ids=list_parameter(request, "processID"),
            ogc_statuses=statuses,
            states=states_for(statuses) if statuses else [],
            created_from=created_from,
            created_to=created_to,
            min_duration_s=min_duration,
            max_duration_s=max_duration,
            limit=int_parameter(request, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT),
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
