"""The test app's tasks: found by the worker because the module is an installed app's ``tasks``."""

from __future__ import annotations

from django.db import connection
from shapely.geometry import Polygon

import geotasks

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    from django_tasks import task


@geotasks.actor
def parcel_areas(sizes_m: list[float]) -> dict[str, float]:
    """A geotasks actor of a Django app, submitted by name."""
    with connection.cursor() as cursor:  # the worker has Django set up
        cursor.execute("SELECT 1")
    return {"total_m2": sum(sizes_m)}


@geotasks.actor
def square(x: float, y: float) -> Polygon:
    """A small polygon: its result is GeoJSON, shown on the admin's map."""
    from shapely.geometry import box

    return box(x, y, x + 1, y + 1)


@task
def add(a: int, b: int) -> int:
    return a + b


@task(takes_context=True)
def attempt_number(context, label: str) -> str:
    return f"{label} #{context.attempt} {context.task_result.id}"


@task
def divide(a: float, b: float) -> float:
    return a / b


@task
def count_to(n: int) -> list[int]:
    return list(range(n))


@task(queue_name="mail", priority=10)
def send_mail(to: str) -> str:
    return f"sent to {to}"
