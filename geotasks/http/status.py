"""geotasks job states as OGC API - Processes sees them: ``statusInfo`` documents.

OGC has five job states; geotasks has more, and each maps to exactly one (an ``UNKNOWN`` job
is not a job at all: 404). Going the other way, a ``status`` filter on ``/jobs`` expands to every
geotasks state that reads as it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..job_model import JobInfo, JobState
from .redaction import redact_paths

#: Rel of the link from a job to its results (OGC API - Processes 1.0).
REL_RESULTS = "http://www.opengis.net/def/rel/ogc/1.0/results"

#: The OGC ``statusCode`` of each geotasks state. UNKNOWN has none: such a job is a 404.
OGC_STATUS: dict[JobState, str] = {
    JobState.PENDING: "accepted",
    JobState.THROTTLED: "accepted",
    JobState.STARTED: "running",
    JobState.RETRYING: "running",
    JobState.SUCCESS: "successful",
    JobState.FAILURE: "failed",
    JobState.SKIPPED: "failed",
    JobState.EXPIRED: "failed",
    JobState.CANCELLED: "dismissed",
}

#: The OGC status codes, in the order a job goes through them.
OGC_STATUS_CODES = ("accepted", "running", "successful", "failed", "dismissed")


def ogc_status(state: JobState) -> str | None:
    """Return the OGC status code of a geotasks state, ``None`` for UNKNOWN."""
    return OGC_STATUS.get(state)


def states_for(ogc_codes: list[str]) -> list[JobState]:
    """Return every geotasks state that reads as one of ``ogc_codes``."""
    wanted = set(ogc_codes)
    return [state for state, code in OGC_STATUS.items() if code in wanted]


def iso(value: datetime | None) -> str | None:
    """Return an RFC 3339 timestamp in UTC, or ``None``."""
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def progress_percent(info: JobInfo) -> int | None:
    """Return progress as a whole percentage, as ``statusInfo`` wants it, or ``None``.

    A successful job is at 100 whatever its actor reported; a job that reported no total
    has no percentage.
    """
    if info.status is JobState.SUCCESS:
        return 100
    if info.progress is None:
        return None
    fraction = info.progress.fraction
    return None if fraction is None else int(fraction * 100)


def status_message(info: JobInfo) -> str:
    """Return a one-line human explanation of where the job is."""
    state = info.status
    if state is JobState.PENDING:
        return "queued, waiting for a worker"
    if state is JobState.THROTTLED:
        due = f" until {iso(info.next_at)}" if info.next_at else ""
        return f"waiting for a rate-limit slot{due}"
    if state is JobState.STARTED:
        if info.progress is not None:
            total = f" of {info.progress.total}" if info.progress.total else ""
            return f"running: {info.progress.done}{total} done"
        return "running"
    if state is JobState.RETRYING:
        due = f", next attempt at {iso(info.next_at)}" if info.next_at else ""
        error = f": {info.error.type_name}: {info.error.message}" if info.error else ""
        return f"attempt {info.attempt} failed{error}; it will be retried{due}"
    if state is JobState.SUCCESS:
        return "finished"
    if state is JobState.FAILURE:
        if info.error is not None:
            return f"failed: {info.error.type_name}: {info.error.message}"
        return "failed"
    if state is JobState.SKIPPED:
        return "skipped by the worker and will not run"
    if state is JobState.CANCELLED:
        return "cancelled before it started"
    return "finished, but its result has expired"


def status_info(info: JobInfo, base_url: str) -> dict[str, Any]:
    """Return the OGC ``statusInfo`` document of a job.

    Parameters:
      info: What the job store knows about the job (not UNKNOWN).
      base_url: The API's base URL, ending in ``/``, for the links.

    Returns:
      dict: ``jobID``, ``processID``, ``type``, ``status``, ``message``, the timestamps that
      apply, ``progress`` when known, ``warnings`` when the job left any, and links to the
      job itself (JSON and HTML) and, once it succeeded, to its results.
    """
    status = OGC_STATUS[info.status]
    job_url = f"{base_url}jobs/{info.message_id}"
    document: dict[str, Any] = {
        "jobID": info.message_id,
        "processID": info.actor_name,
        "type": "process",
        "status": status,
        # A job's error is written for operators: served, it keeps no server path.
        "message": redact_paths(status_message(info)),
        "created": iso(info.created_at),
        "updated": iso(info.updated_at),
    }
    if info.started_at is not None:
        document["started"] = iso(info.started_at)
    if info.finished_at is not None:
        document["finished"] = iso(info.finished_at)
    progress = progress_percent(info)
    if progress is not None:
        document["progress"] = progress
    if info.warnings:
        document["warnings"] = list(info.warnings)
    links = [
        {"href": f"{job_url}?f=json", "rel": "self", "type": "application/json", "title": "this"},
        {
            "href": f"{job_url}?f=html",
            "rel": "alternate",
            "type": "text/html",
            "title": "this job as HTML, with a map of its result",
        },
    ]
    if info.status is JobState.SUCCESS and info.result_media_type is not None:
        links.append(
            {
                "href": f"{job_url}/results",
                "rel": REL_RESULTS,
                "type": info.result_media_type,
                "title": "the result",
            }
        )
    document["links"] = links
    return document
