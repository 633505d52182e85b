"""The admin's actions and permissions, through Django's test client, on a real worker's jobs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import geotasks
from geotasks.contrib.django.database import geotasks_database
from geotasks.job_model import JobState
from tests.processes import Process
from tests.waiting import wait_until

JOBS_URL = "/admin/geotasks/job/"
DEAD_LETTERS_URL = "/admin/geotasks/deadletter/"


@pytest.fixture
def staff(django_here: str, django_worker: Process) -> Iterator[Any]:
    """Make a staff user with the given permissions (``"geotasks.cancel_job"``…); log in."""
    from django.contrib.auth.models import Permission, User
    from django.test import Client

    made = []

    def make(*permissions: str) -> Client:
        user = User.objects.create_user(f"staff-{uuid.uuid4().hex[:8]}", is_staff=True)
        made.append(user)
        for name in ("geotasks.view_job", "geotasks.view_deadletter", *permissions):
            app_label, codename = name.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        client = Client()
        client.force_login(user)
        return client

    yield make
    for user in made:
        user.delete()


def pending_job() -> geotasks.Job:
    """A job that waits an hour in its queue."""
    return geotasks.submit_with_options("parcel_areas", args=([1.0],), delay_ms=3_600_000)


def act(client: Any, url: str, action: str, *ids: object) -> Any:
    return client.post(
        url, {"action": action, "_selected_action": [str(i) for i in ids]}, follow=True
    )


def test_acting_needs_the_actions_permission(staff: Any) -> None:
    # Given: a pending job, and staff who may only look
    job = pending_job()
    viewer = staff()
    # Then: they see it, without the cancel action
    page = viewer.get(JOBS_URL, {"q": job.id})
    assert page.status_code == 200
    assert job.id in page.content.decode()
    assert "cancel_jobs" not in page.content.decode()
    # When: they post the action anyway, nothing happens
    act(viewer, JOBS_URL, "cancel_jobs", job.id)
    assert job.status is JobState.PENDING
    # When: staff with geotasks.cancel_job cancel it, it is cancelled
    canceller = staff("geotasks.cancel_job")
    done = act(canceller, JOBS_URL, "cancel_jobs", job.id)
    assert "1 job(s) cancelled" in done.content.decode()
    assert job.status is JobState.CANCELLED


def test_an_anonymous_visitor_is_sent_to_log_in(django_here: str) -> None:
    from django.test import Client

    assert Client().get(JOBS_URL).status_code == 302


def test_retry_sends_a_jobs_arguments_again_and_dismiss_forgets_it(staff: Any) -> None:
    from geotasks.contrib.django.models import Job
    from geotasks.postgres.messages import job_arguments

    # Given: a job that failed, and one that succeeded (the broker has let go of its message)
    failed = geotasks.submit("parcels.tasks.divide", 1, 0)
    done = geotasks.submit("parcels.tasks.divide", 9, 3)
    failed.wait(timeout=30)
    done.wait(timeout=30)
    client = staff("geotasks.retry_job", "geotasks.dismiss_job")
    detail = client.get(f"{JOBS_URL}{failed.id}/change/").content.decode()
    assert "parcels.tasks.divide(1, 0)" in detail
    assert "ZeroDivisionError" in detail
    assert (
        "parcels.tasks.divide(9, 3)" in client.get(f"{JOBS_URL}{done.id}/change/").content.decode()
    )
    before = set(Job.objects.values_list("message_id", flat=True))
    # When: both are retried
    page = act(client, JOBS_URL, "retry_jobs", failed.id, done.id).content.decode()
    # Then: two new jobs with the same arguments were sent
    assert "2 job(s) sent again as new jobs" in page
    new = Job.objects.exclude(message_id__in=before)
    assert sorted(job_arguments(geotasks_database(), job.message_id).args for job in new) == [
        [1, 0],
        [9, 3],
    ]
    # When: the failed job is dismissed, its row is gone
    act(client, JOBS_URL, "dismiss_jobs", failed.id)
    assert not Job.objects.filter(message_id=failed.id).exists()


def test_dead_letters_are_requeued_and_purged(staff: Any) -> None:
    from geotasks.contrib.django.models import DeadLetter

    # Given: two jobs that failed for good
    jobs = [geotasks.submit("parcels.tasks.divide", n, 0) for n in (2, 3)]
    for job in jobs:
        job.wait(timeout=30)
    letters = {
        letter.message_id: letter.dead_letter_id
        for letter in DeadLetter.objects.filter(message_id__in=[job.id for job in jobs])
    }
    assert set(letters) == {job.id for job in jobs}
    client = staff("geotasks.requeue_deadletter", "geotasks.purge_deadletter")
    listing = client.get(DEAD_LETTERS_URL).content.decode()
    assert all(job.id in listing for job in jobs)
    # When: one is requeued, it runs again (and fails again: a new dead letter)
    act(client, DEAD_LETTERS_URL, "requeue", letters[jobs[0].id])
    wait_until(
        lambda: (
            DeadLetter.objects.filter(message_id=jobs[0].id)
            .exclude(dead_letter_id=letters[jobs[0].id])
            .exists()
        ),
        30,
        "the requeued message to fail again",
    )
    # When: the other is purged, it is gone
    act(client, DEAD_LETTERS_URL, "purge", letters[jobs[1].id])
    assert not DeadLetter.objects.filter(message_id=jobs[1].id).exists()


def test_the_schedules_page_shows_the_last_tick_and_its_job(staff: Any, django_here: str) -> None:
    import psycopg2

    # Given: a tick of a periodic actor that ran as a job
    job = geotasks.submit("parcel_areas", [3.0])
    job.wait(timeout=30)
    with psycopg2.connect(django_here) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO geotasks.periodic_tick (actor_name, slot, message_id) "
            "VALUES ('nightly_tiles', '2026-01-02 03:04+00', %s)",
            (job.id,),
        )
    conn.close()
    # When: staff who may view schedules open the page
    page = staff("geotasks.view_schedule").get("/admin/geotasks/schedule/")
    # Then: the actor, its last run and a link to that run's job
    html = page.content.decode()
    assert page.status_code == 200
    assert "nightly_tiles" in html and "2026-01-02 03:04" in html
    assert f"/admin/geotasks/job/{job.id}/change/" in html
    assert "no running scheduler sends it" in html


def test_the_models_match_their_migrations(migrated_project: str) -> None:
    from .conftest import manage

    done = manage(migrated_project, "makemigrations", "geotasks", "--check", "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
