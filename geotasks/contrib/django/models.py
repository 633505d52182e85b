"""Read-only models over geotasks' own tables (``managed = False``): no copy of the data.

The admin reads jobs, their stored results and the Postgres broker's dead letters where
geotasks writes them; what it changes (cancel, retry, dismiss, requeue, purge) goes through
geotasks' own functions, never through these models.
"""

from __future__ import annotations

from django.db import models

#: Statuses of a job, as ``geotasks.JobState`` names them.
JOB_STATUSES = [
    (name, name.capitalize())
    for name in (
        "PENDING",
        "THROTTLED",
        "RETRYING",
        "STARTED",
        "SUCCESS",
        "FAILURE",
        "SKIPPED",
        "CANCELLED",
        "EXPIRED",
    )
]


def geotasks_table(name: str) -> str:
    """``"geotasks"."name"``: Django quotes ``db_table`` whole, so the dot goes inside quotes."""
    return f'geotasks"."{name}'


class Job(models.Model):
    """One message's job status (``geotasks.job``), written by the workers' middleware."""

    message_id = models.TextField("job id", primary_key=True)
    actor_name = models.TextField("actor")
    queue_name = models.TextField("queue")
    status = models.TextField(choices=JOB_STATUSES)
    attempt = models.IntegerField()
    runs = models.IntegerField()
    created_at = models.DateTimeField("created")
    updated_at = models.DateTimeField("updated")
    pending_at = models.DateTimeField("pending since", null=True)
    started_at = models.DateTimeField("started", null=True)
    finished_at = models.DateTimeField("finished", null=True)
    next_at = models.DateTimeField("next run", null=True)
    expires_at = models.DateTimeField("result expires", null=True)
    progress_done = models.BigIntegerField(null=True)
    progress_total = models.BigIntegerField(null=True)
    error_type = models.TextField(null=True)
    error_message = models.TextField(null=True)

    class Meta:
        managed = False
        db_table = geotasks_table("job")
        ordering = ("-created_at",)
        default_permissions = ("view",)
        permissions = (
            ("cancel_job", "Can cancel a pending job"),
            ("retry_job", "Can send a job's arguments again"),
            ("dismiss_job", "Can dismiss a finished job"),
        )

    def __str__(self) -> str:
        return f"{self.actor_name} {self.message_id}"


class Result(models.Model):
    """A finished job's stored result or failure (``geotasks.result``)."""

    job = models.OneToOneField(
        Job,
        primary_key=True,
        db_column="message_id",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="result",
    )
    kind = models.TextField()
    media_type = models.TextField()
    size_bytes = models.BigIntegerField()
    error_type = models.TextField(null=True)
    error_message = models.TextField(null=True)
    error_traceback = models.TextField(null=True)
    stored_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = geotasks_table("result")
        default_permissions = ()


class DeadLetter(models.Model):
    """A message the Postgres broker rejected, kept with its error
    (``geotasks.broker_dead_letters``)."""

    dead_letter_id = models.BigIntegerField("id", primary_key=True)
    message_id = models.TextField("job id")
    queue_name = models.TextField("queue")
    actor_name = models.TextField("actor", null=True)
    body = models.TextField("message")
    error = models.TextField()
    redeliveries = models.IntegerField()
    enqueued_at = models.DateTimeField("enqueued")
    dead_at = models.DateTimeField("dead since")

    class Meta:
        managed = False
        db_table = geotasks_table("broker_dead_letters")
        ordering = ("-dead_letter_id",)
        default_permissions = ("view",)
        permissions = (
            ("requeue_deadletter", "Can put a dead letter back in its queue"),
            ("purge_deadletter", "Can delete dead letters"),
        )

    def __str__(self) -> str:
        return f"{self.actor_name or '?'} {self.message_id}"


class Schedule(models.Model):
    """A periodic actor's schedule. There is no table: the admin page reads the schedules from
    the alive schedulers and the ticks that ran (:func:`geotasks.monitoring.schedules.
    schedule_states`, which the schedules work extends with its own); the model only gives the
    page its place in the admin and its ``view`` permission."""

    actor_name = models.TextField("actor", primary_key=True)

    class Meta:
        managed = False
        default_permissions = ("view",)

    def __str__(self) -> str:
        return self.actor_name
