"""geotasks in a Django project: ``INSTALLED_APPS += ["geotasks.contrib.django"]``.

- settings from ``DATABASES["default"]`` and a ``GEOTASKS = {...}`` dict (:mod:`.conf`);
- ``python manage.py geotasks worker|scheduler|db|submit|status|result|jobs|…``;
- ``manage.py migrate`` creates and upgrades the geotasks schema;
- a read-only admin over the jobs, dead letters and schedules;
- :class:`GeotasksBackend`, a backend of Django's Tasks framework (``django.tasks``; on Django
  5.2 the ``django-tasks`` backport) whose tasks run on geotasks workers.

Nothing here is imported by ``import geotasks``; the backend is imported only when named.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backend import GeotasksBackend

__all__ = ["GeotasksBackend"]


def __getattr__(name: str) -> Any:
    # The backend needs Django's Tasks framework; an app that only uses the admin does not.
    if name == "GeotasksBackend":
        from .backend import GeotasksBackend

        return GeotasksBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
