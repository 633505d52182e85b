"""The app's background work: a geotasks actor, and a task of Django's own Tasks API."""

from __future__ import annotations

from shapely.geometry.base import BaseGeometry

import geotasks
from geotasks.geo import in_metres, read_features


@geotasks.actor(rate_limit="4/m")
def get_shps(name: str, min_area_km2: float = 0.0) -> list[BaseGeometry]:
    """Polygons of a dataset, the small ones left out (the old Celery page's task)."""
    get_shps.logger.info("Starting the task")
    return [
        f.geometry
        for f in read_features(name)
        if f.geometry is not None and in_metres(f.geometry)[0].area / 1e6 >= min_area_km2
    ]


try:
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    from django_tasks import task


@task
def email_area_report(to: str, job_id: str) -> str:
    """Mail someone the number of polygons a get_shps job found."""
    polygons = len(geotasks.Job(job_id).result["features"])
    return f"told {to} about {polygons} polygons"
