"""The module Dramatiq loads for a Django project: ``manage.py geotasks worker`` runs
``dramatiq geotasks.contrib.django.worker``.

It sets Django up (``DJANGO_SETTINGS_MODULE``), which puts the project's geotasks settings into
the environment; builds geotasks' worker (:mod:`geotasks.worker`: the broker, the built-in
actors, ``GEOTASKS_MODULES``); imports every installed app's ``tasks`` module; declares the
Django tasks found in them (and in ``GEOTASKS_MODULES``) whose backend is geotasks'; and closes
Django's stale database connections around each job.
"""

from __future__ import annotations

import importlib
import sys

import django

django.setup()

from django.apps import apps  # noqa: E402
from django.utils.module_loading import module_has_submodule  # noqa: E402

from ...settings import get_settings  # noqa: E402
from ...worker import broker, import_modules  # noqa: E402
from .middleware import CloseDjangoConnections  # noqa: E402

#: The submodule of each installed app that the worker imports, as Celery and django_dramatiq do.
TASKS_MODULE = "tasks"


def app_task_modules() -> list[str]:
    """The ``tasks`` modules of the installed apps, in ``INSTALLED_APPS`` order."""
    return [
        f"{config.name}.{TASKS_MODULE}"
        for config in apps.get_app_configs()
        if module_has_submodule(config.module, TASKS_MODULE)
    ]


def declare_django_tasks(module_names: list[str]) -> None:
    """Declare the geotasks actor of every Django task (with a geotasks backend) they define,
    and the queues of those backends, so this worker consumes them."""
    from .backend import GeotasksBackend
    from .task_actors import task_actor, tasks_in

    for name in module_names:
        for task in tasks_in(sys.modules.get(name) or importlib.import_module(name)):
            backend = task.get_backend()
            if isinstance(backend, GeotasksBackend):
                task_actor(task, type(backend), backend.options.get(task.module_path, {}))
                for queue_name in backend.queues:
                    broker.declare_queue(queue_name)


def tasks_framework_available() -> bool:
    """Whether Django's Tasks framework (or its backport) is installed."""
    try:
        from . import tasks_api  # noqa: F401
    except ImportError:
        return False
    return True


broker.add_middleware(CloseDjangoConnections())
_modules = app_task_modules()
import_modules(_modules)
if tasks_framework_available():
    declare_django_tasks([*_modules, *get_settings().modules])
