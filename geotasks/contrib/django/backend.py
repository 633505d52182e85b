"""``geotasks.contrib.django.GeotasksBackend``: Django's Tasks framework on geotasks workers.

>>> TASKS = {"default": {
...     "BACKEND": "geotasks.contrib.django.GeotasksBackend",
...     "QUEUES": ["default", "mail"],
...     "OPTIONS": {"myapp.tasks.send_report": {"rate_limit": "4/m", "max_retries": 3}},
... }}

A task's result id is its geotasks job id: ``geotasks status ID``, the admin and the HTTP API
show it, and ``get_result`` reads it back from the job store, in any process.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.utils.module_loading import import_string

from ...errors import GeotasksError, JobNotFound, ResultExpired
from ...job_model import JobInfo, JobState
from ...postgres.messages import job_arguments
from ...signatures import checked_arguments
from .database import geotasks_database
from .task_actors import task_actor
from .tasks_api import (
    BaseTaskBackend,
    Task,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_enqueued,
)

#: geotasks' job states as Django's four; EXPIRED and UNKNOWN ids do not exist for Django.
STATUSES: Mapping[JobState, TaskResultStatus] = {
    JobState.PENDING: TaskResultStatus.READY,
    JobState.THROTTLED: TaskResultStatus.READY,
    JobState.RETRYING: TaskResultStatus.READY,
    JobState.STARTED: TaskResultStatus.RUNNING,
    JobState.SUCCESS: TaskResultStatus.SUCCESSFUL,
    JobState.FAILURE: TaskResultStatus.FAILED,
    JobState.CANCELLED: TaskResultStatus.FAILED,
    JobState.SKIPPED: TaskResultStatus.FAILED,
}

#: What ``worker_ids`` holds for each run of a task read back from the job store.
UNRECORDED_WORKER = "geotasks-worker"


class GeotasksBackend(BaseTaskBackend):
    """Tasks are sent to geotasks' broker and run by ``manage.py geotasks worker``.

    ``OPTIONS`` maps a task's import path to its geotasks options: ``queue_name`` (the
    geotasks queue, the task's own by default), ``rate_limit`` (``"4/m"``, global across
    workers), ``rate_limit_burst``, ``concurrency_limit``, ``time_limit`` and ``result_ttl``
    (ms), ``max_retries`` (of transient errors), ``max_age``.

    ``priority`` becomes the message's ``broker_priority``: the Postgres and RabbitMQ brokers
    hand out higher first, Redis ignores it. ``run_after`` delays the message in the broker.
    """

    supports_defer = True
    supports_get_result = True
    supports_priority = True
    supports_async_task = False

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        """Check the arguments, send the message, return its :class:`TaskResult` (READY).

        Raises:
          InvalidTask: when the task cannot run here (queue, options, signature).
          InputError: naming an argument of the wrong type or name; nothing is sent.
        """
        self.validate_task(task)
        runner = task_actor(task, type(self), self.options.get(task.module_path, {}))
        json_args, json_kwargs = checked_arguments(runner.spec, tuple(args), dict(kwargs))
        options: dict[str, Any] = {}
        if task.priority:
            options["broker_priority"] = task.priority
        message = runner.message_with_options(args=tuple(json_args), kwargs=json_kwargs, **options)
        delay_ms = None
        if task.run_after is not None:
            delay_ms = max(0, int((task.run_after - datetime.now(UTC)).total_seconds() * 1000))
        runner.broker.enqueue(message, delay=delay_ms)
        result = TaskResult(
            task=task,
            id=message.message_id,
            status=TaskResultStatus.READY,
            enqueued_at=datetime.fromtimestamp(message.message_timestamp / 1000, UTC),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=list(args),
            kwargs=dict(kwargs),
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        task_enqueued.send(sender=type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        """Read a task's state, times, errors and return value from the job store.

        Raises:
          TaskResultDoesNotExist: for an id never sent, expired, forgotten, or not a task's.
        """
        from ...jobs import Job

        job = Job(result_id)
        try:
            info = job.info()
        except JobNotFound:
            raise TaskResultDoesNotExist(result_id) from None
        status = STATUSES.get(info.status)
        if status is None:
            raise TaskResultDoesNotExist(f"{result_id} is {info.status}")
        task = _task_named(info.actor_name, result_id)
        # Recorded with the job (unless too large), or the Postgres broker's copy.
        kept = job_arguments(geotasks_database(), result_id)
        result = TaskResult(
            task=task,
            id=result_id,
            status=status,
            enqueued_at=info.pending_at or info.created_at,
            started_at=info.started_at,
            finished_at=info.finished_at if status.value in ("SUCCESSFUL", "FAILED") else None,
            last_attempted_at=info.started_at,
            args=kept.args if kept is not None else [],
            kwargs=kept.kwargs if kept is not None else {},
            backend=self.alias,
            errors=_errors(job, info),
            # One entry per run, as Django counts attempts: geotasks counts runs but does not
            # record which worker process ran each.
            worker_ids=[UNRECORDED_WORKER] * info.runs,
        )
        if status == TaskResultStatus.SUCCESSFUL:
            try:
                object.__setattr__(result, "_return_value", job.result)
            except ResultExpired:
                raise TaskResultDoesNotExist(f"{result_id}: its result expired") from None
        return result

    def check(self, **kwargs: Any) -> list[Any]:
        """Django's system check: the geotasks settings must be valid."""
        from django.core import checks

        from ...settings import load_settings

        try:
            load_settings()
        except GeotasksError as exc:
            return [checks.Error(str(exc), id="geotasks.E001")]
        return []


def _task_named(path: str, result_id: str) -> Task:
    try:
        task = import_string(path)
    except ImportError:
        raise TaskResultDoesNotExist(
            f"{result_id} was sent to {path}, which is not a Django task importable here"
        ) from None
    if not isinstance(task, Task):
        raise TaskResultDoesNotExist(f"{result_id} was sent to {path}, which is not a Django task")
    return task


def _errors(job: Any, info: JobInfo) -> list[TaskError]:
    if info.status is JobState.FAILURE:
        error = job.error
        if error is None:
            return []
        return [
            TaskError(
                exception_class_path=exception_class_path(error.type_name, error.traceback),
                traceback=error.traceback,
            )
        ]
    if info.status in (JobState.CANCELLED, JobState.SKIPPED):
        return [
            TaskError(
                exception_class_path="geotasks.errors.JobSkipped",
                traceback=f"geotasks.errors.JobSkipped: the job was {info.status.value.lower()}",
            )
        ]
    return []


def exception_class_path(type_name: str, traceback: str) -> str:
    """The class path of a stored error: the traceback's last line names it as Python does
    (``module.Class: message``; builtins by name alone)."""
    pattern = re.compile(rf"^((?:[\w.]+\.)?{re.escape(type_name)})(?::|$)", re.MULTILINE)
    found = pattern.findall(traceback)
    path = found[-1] if found else type_name
    return path if "." in path else f"builtins.{path}"
