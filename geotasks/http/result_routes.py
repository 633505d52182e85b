"""A job's result: ``/jobs/{jobID}/results``, streamed with Range and gzip support, and the
answer to a synchronous execution."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..job_model import JobInfo, JobState
from ..postgres.result_store import FILE, result_file_name
from .negotiation import check_query
from .problems import INVALID_PARAMETER, RESULT_NOT_READY, Problem, no_such_job
from .processes import Process
from .resource import Resource
from .streaming import PIECE_BYTES, iter_stream, parse_range


class Results(Resource):
    """``GET /jobs/{jobID}/results``."""

    def routes(self) -> list[Route]:
        """This resource's routes."""
        return [Route("/jobs/{jobID}/results", self.results, methods=["GET"])]

    def results(self, request: Request) -> Response:
        """``GET /jobs/{jobID}/results``: the result, streamed (Range and gzip supported)."""
        check_query(request, ())
        job_id = request.path_params["jobID"]
        info = self.access.info(job_id)
        if info is None:
            raise no_such_job(job_id)
        return self.result_response(request, info, process=None, document=False)

    def result_response(
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
            raise failure_problem(info)
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


def failure_problem(info: JobInfo) -> Problem:
    """The problem a failed job's result is: 400 for bad input, 504 for a time limit."""
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
