"""The geotasks schema (geotasks' own SQL migrations), and the read-only models over it.

``manage.py migrate`` then runs ``geotasks db init``'s migrations in the database geotasks uses
(Django's default unless ``GEOTASKS_DATABASE_URL`` names another); later geotasks releases'
schema changes are applied at the end of every ``migrate`` (see ``apps.upgrade_schema``).
"""

from typing import Any

import django.db.models.deletion
from django.db import DEFAULT_DB_ALIAS, migrations, models


def create_geotasks_schema(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.alias != DEFAULT_DB_ALIAS:
        return
    from geotasks.contrib.django.schema import migrate_schema

    migrate_schema()


class Migration(migrations.Migration):
    initial = True
    # geotasks' migrations run in their own transaction, under their own advisory lock.
    atomic = False

    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.RunPython(create_geotasks_schema, migrations.RunPython.noop, elidable=False),
        migrations.CreateModel(
            name="DeadLetter",
            fields=[
                (
                    "dead_letter_id",
                    models.BigIntegerField(primary_key=True, serialize=False, verbose_name="id"),
                ),
                ("message_id", models.TextField(verbose_name="job id")),
                ("queue_name", models.TextField(verbose_name="queue")),
                ("actor_name", models.TextField(null=True, verbose_name="actor")),
                ("body", models.TextField(verbose_name="message")),
                ("error", models.TextField()),
                ("redeliveries", models.IntegerField()),
                ("enqueued_at", models.DateTimeField(verbose_name="enqueued")),
                ("dead_at", models.DateTimeField(verbose_name="dead since")),
            ],
            options={
                "db_table": 'geotasks"."broker_dead_letters',
                "ordering": ("-dead_letter_id",),
                "permissions": (
                    ("requeue_deadletter", "Can put a dead letter back in its queue"),
                    ("purge_deadletter", "Can delete dead letters"),
                ),
                "managed": False,
                "default_permissions": ("view",),
            },
        ),
        migrations.CreateModel(
            name="Job",
            fields=[
                (
                    "message_id",
                    models.TextField(primary_key=True, serialize=False, verbose_name="job id"),
                ),
                ("actor_name", models.TextField(verbose_name="actor")),
                ("queue_name", models.TextField(verbose_name="queue")),
                (
                    "status",
                    models.TextField(
                        choices=[
                            ("PENDING", "Pending"),
                            ("THROTTLED", "Throttled"),
                            ("RETRYING", "Retrying"),
                            ("STARTED", "Started"),
                            ("SUCCESS", "Success"),
                            ("FAILURE", "Failure"),
                            ("SKIPPED", "Skipped"),
                            ("CANCELLED", "Cancelled"),
                            ("EXPIRED", "Expired"),
                        ]
                    ),
                ),
                ("attempt", models.IntegerField()),
                ("runs", models.IntegerField()),
                ("created_at", models.DateTimeField(verbose_name="created")),
                ("updated_at", models.DateTimeField(verbose_name="updated")),
                ("pending_at", models.DateTimeField(null=True, verbose_name="pending since")),
                ("started_at", models.DateTimeField(null=True, verbose_name="started")),
                ("finished_at", models.DateTimeField(null=True, verbose_name="finished")),
                ("next_at", models.DateTimeField(null=True, verbose_name="next run")),
                ("expires_at", models.DateTimeField(null=True, verbose_name="result expires")),
                ("progress_done", models.BigIntegerField(null=True)),
                ("progress_total", models.BigIntegerField(null=True)),
                ("error_type", models.TextField(null=True)),
                ("error_message", models.TextField(null=True)),
            ],
            options={
                "db_table": 'geotasks"."job',
                "ordering": ("-created_at",),
                "permissions": (
                    ("cancel_job", "Can cancel a pending job"),
                    ("retry_job", "Can send a job's arguments again"),
                    ("dismiss_job", "Can dismiss a finished job"),
                ),
                "managed": False,
                "default_permissions": ("view",),
            },
        ),
        migrations.CreateModel(
            name="Result",
            fields=[
                (
                    "job",
                    models.OneToOneField(
                        db_column="message_id",
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        primary_key=True,
                        related_name="result",
                        serialize=False,
                        to="geotasks.job",
                    ),
                ),
                ("kind", models.TextField()),
                ("media_type", models.TextField()),
                ("size_bytes", models.BigIntegerField()),
                ("error_type", models.TextField(null=True)),
                ("error_message", models.TextField(null=True)),
                ("error_traceback", models.TextField(null=True)),
                ("stored_at", models.DateTimeField()),
                ("expires_at", models.DateTimeField()),
            ],
            options={
                "db_table": 'geotasks"."result',
                "managed": False,
                "default_permissions": (),
            },
        ),
        migrations.CreateModel(
            name="Schedule",
            fields=[
                (
                    "actor_name",
                    models.TextField(primary_key=True, serialize=False, verbose_name="actor"),
                ),
            ],
            options={
                "managed": False,
                "default_permissions": ("view",),
            },
        ),
    ]
