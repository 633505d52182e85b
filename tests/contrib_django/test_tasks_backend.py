"""Django's Tasks API on geotasks: enqueued here, run by ``manage.py geotasks worker``, read back.

Django 6's ``django.tasks``, or on Django 5.2 the ``django-tasks`` backport.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import geotasks
from tests.processes import Process

pytest.importorskip("django")
tasks_api = pytest.importorskip("geotasks.contrib.django.tasks_api")

#: Longest a test waits for a task to finish, in seconds.
FINISH_TIMEOUT_S = 30


@pytest.fixture
def tasks(django_here: str, django_worker: Process) -> Iterator[Any]:
    """The test app's tasks module, with a worker serving it."""
    import parcels.tasks

    yield parcels.tasks


def finished(result: Any, timeout_s: float = FINISH_TIMEOUT_S) -> Any:
    """Refresh ``result`` until it has finished."""
    deadline = time.monotonic() + timeout_s
    while not result.is_finished:
        assert time.monotonic() < deadline, f"task {result.id} is still {result.status}"
        time.sleep(0.05)
        result.refresh()
    return result


def test_enqueue_refresh_and_get_result(tasks: Any) -> None:
    # Given: a receiver of Django's task_enqueued signal
    enqueued: list[Any] = []
    receiver: Callable[..., None] = lambda sender, task_result, **_: enqueued.append(task_result)  # noqa: E731
    tasks_api.task_enqueued.connect(receiver)
    try:
        # When: a task is enqueued through Django's API
        result = tasks.add.enqueue(2, 3)
    finally:
        tasks_api.task_enqueued.disconnect(receiver)
    # Then: its id is the geotasks job id, READY until a worker takes it
    assert enqueued == [result]
    assert result.status == tasks_api.TaskResultStatus.READY
    assert geotasks.Job(result.id).info().actor_name == "parcels.tasks.add"
    with pytest.raises(ValueError):
        _ = result.return_value
    # When: the worker has run it
    finished(result)
    # Then: refresh and get_result read the job store
    assert result.status == tasks_api.TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.attempts == 1
    fetched = tasks.add.get_result(result.id)
    assert (fetched.status, fetched.return_value, fetched.errors) == (result.status, 5, [])
    assert fetched.finished_at == result.finished_at


def test_an_unknown_id_does_not_exist(tasks: Any) -> None:
    with pytest.raises(tasks_api.TaskResultDoesNotExist):
        tasks.add.get_backend().get_result("no-such-job")


def test_a_failing_task_reports_its_exception_class_and_traceback(tasks: Any) -> None:
    result = finished(tasks.divide.enqueue(1, 0))
    assert result.status == tasks_api.TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class_path == "builtins.ZeroDivisionError"
    assert error.exception_class is ZeroDivisionError
    assert "return a / b" in error.traceback
    with pytest.raises(ValueError, match="failed"):
        _ = result.return_value
    # Read back elsewhere, the arguments are those the job recorded
    assert (tasks.divide.get_result(result.id).args, result.args) == ([1, 0], [1, 0])


def test_arguments_are_checked_before_anything_is_sent(tasks: Any) -> None:
    with pytest.raises(geotasks.InputError, match="a"):
        tasks.add.enqueue("two", 3)


def test_takes_context_gets_the_attempt_and_its_own_id(tasks: Any) -> None:
    result = finished(tasks.attempt_number.enqueue("run"))
    assert result.return_value == f"run #1 {result.id}"


def test_queues_and_priority(tasks: Any) -> None:
    # A queue the backend does not list is refused by Django's check
    with pytest.raises(tasks_api.InvalidTask, match="Queue 'elsewhere'"):
        tasks.add.using(queue_name="elsewhere")
    # The mail queue, with a priority, is served by the same worker
    result = finished(tasks.send_mail.enqueue("ada@example.org"))
    assert result.return_value == "sent to ada@example.org"
    assert geotasks.Job(result.id).info().queue_name == "mail"


def test_priority_is_the_messages_broker_priority(tasks: Any, django_here: str) -> None:
    import psycopg2

    # Given: a task of priority 10, deferred so that it waits in the Postgres broker
    deferred = tasks.send_mail.using(run_after=datetime.now(UTC) + timedelta(hours=1))
    result = deferred.enqueue("later@example.org")
    # Then: the broker hands it out before priority-0 messages of its queue
    with psycopg2.connect(django_here) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT queue_name, priority FROM geotasks.broker_messages WHERE message_id = %s",
            (result.id,),
        )
        assert cur.fetchone() == ("mail", 10)
    conn.close()
    geotasks.Job(result.id).cancel()


def test_run_after_defers_the_task(tasks: Any) -> None:
    run_after = datetime.now(UTC) + timedelta(seconds=2)
    result = tasks.add.using(run_after=run_after).enqueue(1, 1)
    time.sleep(0.5)
    result.refresh()
    assert result.status == tasks_api.TaskResultStatus.READY
    finished(result)
    assert result.started_at >= run_after - timedelta(milliseconds=100)


def test_a_rate_limited_task_keeps_its_limit_across_the_worker(tasks: Any) -> None:
    # Given: OPTIONS {"parcels.tasks.count_to": {"rate_limit": "2/s"}}
    # When: three are enqueued at once
    results = [tasks.count_to.enqueue(n) for n in (1, 2, 3)]
    for result in results:
        finished(result)
    # Then: they all ran, started at least half a second apart
    assert [r.return_value for r in results] == [[0], [0, 1], [0, 1, 2]]
    starts = sorted(r.started_at for r in results)
    gaps_s = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert min(gaps_s) >= 0.45, gaps_s


def test_a_geotasks_job_is_no_django_task(tasks: Any) -> None:
    job = geotasks.submit("parcel_areas", [1.0])
    with pytest.raises(tasks_api.TaskResultDoesNotExist, match="not a Django task"):
        tasks.add.get_backend().get_result(job.id)


def test_the_worker_side_sends_djangos_task_signals(tasks: Any) -> None:
    from geotasks.contrib.django.backend import GeotasksBackend
    from geotasks.contrib.django.task_actors import task_actor

    # Given: receivers of task_started and task_finished
    seen: list[tuple[str, Any, Any]] = []

    def started(sender: Any, task_result: Any, **_: Any) -> None:
        seen.append(("started", sender, task_result.status))

    def ended(sender: Any, task_result: Any, **_: Any) -> None:
        seen.append(("finished", sender, task_result.status))

    tasks_api.task_started.connect(started)
    tasks_api.task_finished.connect(ended)
    try:
        # When: the actor a worker runs for `divide` runs it, once well and once badly
        runner = task_actor(tasks.divide, GeotasksBackend, {})
        assert runner(6, 3) == 2
        with pytest.raises(ZeroDivisionError):
            runner(1, 0)
    finally:
        tasks_api.task_started.disconnect(started)
        tasks_api.task_finished.disconnect(ended)
    # Then: each run was announced, and its outcome
    statuses = tasks_api.TaskResultStatus
    assert seen == [
        ("started", GeotasksBackend, statuses.RUNNING),
        ("finished", GeotasksBackend, statuses.SUCCESSFUL),
        ("started", GeotasksBackend, statuses.RUNNING),
        ("finished", GeotasksBackend, statuses.FAILED),
    ]
