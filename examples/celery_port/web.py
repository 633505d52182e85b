"""A Flask application that runs ``get_shps`` in the background.

It sends by name and never imports ``tasks.py`` (nor shapely, fiona or pyproj): the worker that
serves ``get_shps`` published its name and parameters, and ``geotasks.submit`` checks the
arguments against them before sending. Run it with ``flask --app web run``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

import geotasks

app = Flask(__name__)


@app.post("/shapes")
def start() -> tuple[dict[str, Any], int]:
    """Queue ``get_shps(**body)`` (``{"name": "parcels", "min_area_km2": 2}``); answer its id.

    The arguments are checked, names and types, before anything is sent: a bad request is a 400
    that names the argument, never a job that fails on a worker.
    """
    try:
        job = geotasks.submit("get_shps", **(request.get_json(silent=True) or {}))
    except geotasks.InputError as exc:
        return {"error": str(exc)}, 400
    return {"job_id": job.id, "status": job.status.value}, 202


@app.get("/jobs/<job_id>")
def follow(job_id: str) -> tuple[dict[str, Any], int]:
    """The job's status (Celery's ``.status``/``.ready()``), and its result once ready."""
    job = geotasks.Job(job_id)
    body: dict[str, Any] = {"job_id": job_id, "status": job.status.value}
    if job.successful():
        body["result"] = job.result  # a GeoJSON FeatureCollection
    elif job.failed() and job.error is not None:
        body["error"] = job.error.message
    return body, 200
