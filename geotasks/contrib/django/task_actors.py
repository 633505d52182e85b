"""Django tasks as geotasks actors: one actor per task, named by the task's import path.

A task function runs in a geotasks worker exactly as a ``@geotasks.actor`` function does (its
arguments checked against its signature, its result stored, retries and rate limits applied);
around it, Django's ``task_started`` and ``task_finished`` signals are sent and, for a task that
``takes_context``, a :class:`TaskContext` is passed in.
"""

from __future__ import annotations

import functools
import inspect
import os
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from dramatiq.middleware import CurrentMessage

from ...declaration import PUBLIC_OPTIONS, Actor, actor
from .tasks_api import (
    InvalidTask,
    Task,
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultStatus,
    normalize_json,
    task_finished,
    task_started,
)

#: geotasks options a backend's ``OPTIONS`` may give a task, by the task's import path.
TASK_OPTIONS = frozenset({"queue_name", *PUBLIC_OPTIONS})

_actors: dict[str, Actor[..., Any]] = {}
_actors_lock = threading.Lock()


def worker_id() -> str:
    """This worker process, as Django's ``worker_ids`` lists it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def task_actor(task: Task, backend_class: type, options: Mapping[str, Any]) -> Actor[..., Any]:
    """Return the geotasks actor that runs ``task``, declaring it on first use.

    Parameters:
      task: The Django task.
      backend_class: The backend, Django's signals' sender.
      options: geotasks options for this task (``rate_limit``…; ``queue_name`` overrides the
        task's own queue).

    Raises:
      InvalidTask: when an option is unknown, or the function cannot be described (``*args``,
        a parameter type with no JSON form).
    """
    name = task.module_path
    with _actors_lock:
        declared = _actors.get(name)
        if declared is not None:
            return declared
        unknown = set(options) - TASK_OPTIONS
        if unknown:
            raise InvalidTask(
                f"OPTIONS[{name!r}]: unknown geotasks option(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(TASK_OPTIONS))}"
            )
        actor_options = dict(options)
        queue_name = actor_options.pop("queue_name", task.queue_name)
        try:
            declared = actor(actor_name=name, queue_name=queue_name, **actor_options)(
                _runner(task, backend_class)
            )
        except (TypeError, ValueError) as exc:
            raise InvalidTask(f"{name} cannot run on geotasks: {exc}") from exc
        _actors[name] = declared
        return declared


def _runner(task: Task, backend_class: type) -> Callable[..., Any]:
    """The actor's function: the task's, without its ``context`` parameter, with the signals."""
    signature = inspect.signature(task.func)
    parameters = list(signature.parameters.values())
    if task.takes_context:
        parameters = parameters[1:]

    @functools.wraps(task.func)
    def run(*args: Any, **kwargs: Any) -> Any:
        task_result = running_result(task, args, kwargs)
        task_started.send(sender=backend_class, task_result=task_result)
        try:
            if task.takes_context:
                value = task.call(TaskContext(task_result=task_result), *args, **kwargs)
            else:
                value = task.call(*args, **kwargs)
            value = normalize_json(value)
        except BaseException as exc:
            _finish(task_result, TaskResultStatus.FAILED, errors=[task_error(exc)])
            task_finished.send(sender=backend_class, task_result=task_result)
            raise
        _finish(task_result, TaskResultStatus.SUCCESSFUL, return_value=value)
        task_finished.send(sender=backend_class, task_result=task_result)
        return value

    # The actor is described from this signature (``context`` is not a message argument).
    run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return run


def running_result(task: Task, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> TaskResult:
    """The :class:`TaskResult` of the message this worker thread is running."""
    message = CurrentMessage.get_current_message()
    now = datetime.now(UTC)
    attempt = int(message.options.get("retries", 0)) + 1 if message is not None else 1
    enqueued_at = datetime.fromtimestamp(message.message_timestamp / 1000, UTC) if message else now
    return TaskResult(
        task=task,
        id=message.message_id if message is not None else "",
        status=TaskResultStatus.RUNNING,
        enqueued_at=enqueued_at,
        started_at=now,
        finished_at=None,
        last_attempted_at=now,
        args=list(args),
        kwargs=dict(kwargs),
        backend=task.backend,
        errors=[],
        # One entry per attempt, as Django counts attempts; earlier ones ran elsewhere.
        worker_ids=[worker_id()] * attempt,
    )


def _finish(
    task_result: TaskResult,
    status: TaskResultStatus,
    *,
    errors: Iterable[TaskError] = (),
    return_value: Any = None,
) -> None:
    # Django's TaskResult is frozen; its own backends update it this way.
    object.__setattr__(task_result, "status", status)
    object.__setattr__(task_result, "finished_at", datetime.now(UTC))
    object.__setattr__(task_result, "_return_value", return_value)
    task_result.errors.extend(errors)


def task_error(exc: BaseException) -> TaskError:
    """Django's description of an exception: its class path and traceback."""
    import traceback

    cls = type(exc)
    return TaskError(
        exception_class_path=f"{cls.__module__}.{cls.__qualname__}",
        traceback="".join(traceback.format_exception(exc)),
    )


def tasks_in(module: ModuleType) -> list[Task]:
    """The Django tasks a module defines at its top level."""
    return [value for value in vars(module).values() if isinstance(value, Task)]
