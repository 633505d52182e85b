"""The Django admin over geotasks: jobs, dead letters and schedules, read-only, with a few
actions.

Rows are read straight from geotasks' tables (:mod:`.models`); actions go through geotasks'
own functions: cancel (a job that has not started), retry (send the same arguments again, as a
new job), dismiss (forget a finished job and its result), requeue and purge (dead letters).
Each action needs its own permission (``geotasks.cancel_job``…); seeing needs ``view``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from .database import geotasks_database
from .models import DeadLetter, Job, Schedule
from .views import JobAssetsView, JobMapView, JobResultView

#: Shown for a job whose arguments the broker no longer holds.
NOT_KEPT = (
    "(not kept: larger than a job records, and no longer in the broker, or sent without "
    "geotasks' job status)"
)
#: Finished statuses: a job in one of them has run (or never will).
FINISHED = ("SUCCESS", "FAILURE", "SKIPPED", "CANCELLED", "EXPIRED")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Nothing is added, edited or deleted through a form: the rows are geotasks' own."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ActorFilter(admin.SimpleListFilter):
    """Jobs of one actor; the choices come from the actor catalogue, not from the jobs."""

    title = "actor"
    parameter_name = "actor"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        from ...catalogue import list_actors

        return [(spec.name, spec.name) for spec in list_actors(database=geotasks_database())]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        value = self.value()
        return queryset if value is None else queryset.filter(actor_name=value)


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = (
        "message_id",
        "actor_name",
        "shown_status",
        "attempt",
        "progress",
        "created_at",
        "finished_at",
    )
    # Every filter and the search use an index or no query: the table may hold millions of rows.
    list_filter = ("status", ActorFilter, "created_at")
    search_fields = ("message_id",)
    search_help_text = "A job id, whole."
    list_select_related = ("result",)
    show_full_result_count = False
    actions = ("cancel_jobs", "retry_jobs", "dismiss_jobs")
    fields = (
        "message_id",
        "actor_name",
        "queue_name",
        "shown_status",
        "attempt",
        "runs",
        "progress",
        "created_at",
        "pending_at",
        "started_at",
        "finished_at",
        "next_at",
        "expires_at",
        "arguments",
        "error",
        "traceback",
        "result_links",
    )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        # An exact id finds its row by the primary key (Django's "=" would compare UPPER()s).
        term = search_term.strip()
        return (queryset.filter(message_id=term) if term else queryset), False

    @admin.display(description="status", ordering="status")
    def shown_status(self, job: Job) -> str:
        if job.status in FINISHED and job.expires_at and job.expires_at <= timezone.now():
            return "EXPIRED"
        return str(job.status)

    @admin.display(description="progress")
    def progress(self, job: Job) -> str:
        if job.progress_done is None:
            return ""
        if job.progress_total:
            return f"{job.progress_done:,}/{job.progress_total:,}"
        return f"{job.progress_done:,}"

    @admin.display(description="arguments")
    def arguments(self, job: Job) -> str:
        from ...postgres.messages import job_arguments

        kept = job_arguments(geotasks_database(), job.message_id)
        if kept is None:
            return NOT_KEPT
        shown = [repr(value) for value in kept.args]
        shown += [f"{name}={value!r}" for name, value in kept.kwargs.items()]
        return f"{kept.actor_name}({', '.join(shown)})"

    @admin.display(description="error")
    def error(self, job: Job) -> str:
        if job.error_type is None:
            return ""
        return f"{job.error_type}: {job.error_message or ''}"

    @admin.display(description="traceback")
    def traceback(self, job: Job) -> str:
        result = getattr(job, "result", None)
        if result is None or not result.error_traceback:
            return ""
        return format_html("<pre>{}</pre>", result.error_traceback)

    @admin.display(description="result")
    def result_links(self, job: Job) -> str:
        result = getattr(job, "result", None)
        if result is None or result.kind == "failure" or self.shown_status(job) == "EXPIRED":
            return ""
        links = [
            (
                reverse("admin:geotasks_job_result", args=[job.message_id]),
                "result-download",
                f"Download ({result.size_bytes:,} bytes, {result.media_type})",
            )
        ]
        if result.kind == "geojson":
            links.append(
                (
                    reverse("admin:geotasks_job_map", args=[job.message_id]),
                    "result-map",
                    "Map preview",
                )
            )
        return format_html_join(" · ", '<a href="{}" class="{}">{}</a>', links)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/result/",
                view(JobResultView.as_view(model_admin=self)),
                name="geotasks_job_result",
            ),
            path(
                "<path:object_id>/map/",
                view(JobMapView.as_view(model_admin=self)),
                name="geotasks_job_map",
            ),
            path(
                "assets/<path:name>",
                view(JobAssetsView.as_view(model_admin=self)),
                name="geotasks_job_asset",
            ),
            *super().get_urls(),
        ]

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("geotasks.cancel_job"))

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("geotasks.retry_job"))

    def has_dismiss_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("geotasks.dismiss_job"))

    @admin.action(permissions=["cancel"], description="Cancel the selected jobs (if not started)")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        from ...jobs import Job as GeotasksJob

        ids = list(queryset.values_list("message_id", flat=True))
        cancelled = [job_id for job_id in ids if GeotasksJob(job_id).cancel()]
        self._report(request, "cancelled", cancelled, len(ids), "had already started")

    @admin.action(permissions=["retry"], description="Send the selected jobs' arguments again")
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        from ...jobs import submit
        from ...postgres.messages import job_arguments

        sent = []
        ids = list(queryset.values_list("message_id", flat=True))
        for job_id in ids:
            kept = job_arguments(geotasks_database(), job_id)
            if kept is not None:
                sent.append(submit(kept.actor_name, *kept.args, **kept.kwargs).id)
        self._report(request, "sent again as new jobs", sent, len(ids), "had no arguments kept")

    @admin.action(permissions=["dismiss"], description="Dismiss the selected finished jobs")
    def dismiss_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        from ...jobs import Job as GeotasksJob

        ids = list(queryset.values_list("message_id", flat=True))
        dismissed = [job_id for job_id in ids if GeotasksJob(job_id).dismiss()]
        self._report(request, "dismissed", dismissed, len(ids), "had not finished")

    def _report(
        self, request: HttpRequest, done: str, ids: list[str], selected: int, why_not: str
    ) -> None:
        if ids:
            self.message_user(request, f"{len(ids)} job(s) {done}: {', '.join(ids)}")
        if len(ids) < selected:
            self.message_user(
                request, f"{selected - len(ids)} job(s) {why_not}", level=messages.WARNING
            )


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ("dead_letter_id", "message_id", "queue_name", "actor_name", "reason", "dead_at")
    list_filter = ("queue_name", "actor_name", "dead_at")
    search_fields = ("=message_id",)
    actions = ("requeue", "purge")
    fields = (
        "dead_letter_id",
        "message_id",
        "queue_name",
        "actor_name",
        "redeliveries",
        "enqueued_at",
        "dead_at",
        "body",
        "error",
    )

    @admin.display(description="error")
    def reason(self, letter: DeadLetter) -> str:
        lines = letter.error.strip().splitlines()
        return lines[-1][:120] if lines else ""

    def has_requeue_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("geotasks.requeue_deadletter"))

    def has_purge_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("geotasks.purge_deadletter"))

    @admin.action(permissions=["requeue"], description="Put the selected back in their queues")
    def requeue(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        from ...postgres.dead_letters import requeue_dead_letter

        ids = list(queryset.values_list("dead_letter_id", flat=True))
        requeued = [i for i in ids if requeue_dead_letter(geotasks_database(), i) is not None]
        self.message_user(request, f"{len(requeued)} message(s) back in their queues")

    @admin.action(permissions=["purge"], description="Delete the selected dead letters")
    def purge(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        from ...postgres.dead_letters import delete_dead_letters

        ids = list(queryset.values_list("dead_letter_id", flat=True))
        deleted = delete_dead_letters(geotasks_database(), ids)
        self.message_user(request, f"{deleted} dead letter(s) deleted")


@admin.register(Schedule)
class ScheduleAdmin(ReadOnlyAdmin):
    """Each periodic actor's cron spec, last run (its job) and next run, and whether it is late."""

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        from ...monitoring.schedules import read_schedules
        from ...settings import get_settings

        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Schedules",
            "schedules": read_schedules(geotasks_database(), get_settings()),
            **(extra_context or {}),
        }
        return render(request, "admin/geotasks/schedules.html", context)
