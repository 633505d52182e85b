"""The job admin's own pages: a result's download, its map preview, and the map's scripts.

The map page is the HTTP API's job page made small: the result drawn with the same vendored
Leaflet over the same Natural Earth land outline (``geotasks/http/static``), so it needs no
tiles, no network and no ``collectstatic``.
"""

from __future__ import annotations

import mimetypes
from importlib import resources
from typing import Any

from django.contrib.admin import ModelAdmin
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views import View

from ...errors import GeotasksError

#: Files the map page loads, by the name it asks for: where each lives in the package.
ASSETS = {
    "leaflet.js": ("geotasks.http", "static/leaflet/leaflet.js"),
    "leaflet.css": ("geotasks.http", "static/leaflet/leaflet.css"),
    "land.geojson": ("geotasks.http", "static/ne_110m_land.geojson"),
    "result_map.js": ("geotasks.http", "static/result_map.js"),
    "map.js": ("geotasks.contrib.django", "static_assets/map.js"),
}
#: How long a browser may keep an asset, in seconds (they change only with a release).
ASSET_MAX_AGE_S = 86_400


class JobAdminView(View):
    """A page of the job admin, for staff who may view jobs."""

    model_admin: ModelAdmin[Any] | None = None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        assert self.model_admin is not None
        if not self.model_admin.has_view_permission(request):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)


class JobResultView(JobAdminView):
    """The stored result, streamed as a download (GeoJSON or JSON)."""

    def get(self, request: HttpRequest, object_id: str) -> HttpResponse:
        from ...jobs import Job

        job = Job(object_id)
        try:
            stored = job.result_info()
            stream = job.open()
        except GeotasksError as exc:
            raise Http404(str(exc)) from exc
        return FileResponse(
            stream,
            content_type=stored.media_type,
            as_attachment=request.GET.get("inline") is None,
            filename=stored.file_name,
        )


class JobMapView(JobAdminView):
    """The result on a map: Leaflet over a land outline, every feature with a popup."""

    def get(self, request: HttpRequest, object_id: str) -> HttpResponse:
        assert self.model_admin is not None
        result_url = reverse("admin:geotasks_job_result", args=[object_id]) + "?inline=1"
        context = {
            **self.model_admin.admin_site.each_context(request),
            "opts": self.model_admin.model._meta,
            "title": f"Result of job {object_id}",
            "job_id": object_id,
            "job_url": reverse("admin:geotasks_job_change", args=[object_id]),
            "result_url": result_url,
            "asset_url": reverse("admin:geotasks_job_asset", args=["_"])[:-1],
        }
        return render(request, "admin/geotasks/job_map.html", context)


class JobAssetsView(JobAdminView):
    """Leaflet, the land outline and the map script, from inside the package."""

    def get(self, request: HttpRequest, name: str) -> HttpResponse:
        if name not in ASSETS:
            raise Http404(name)
        package, relative = ASSETS[name]
        data = resources.files(package).joinpath(relative).read_bytes()
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if name.endswith(".geojson"):
            content_type = "application/geo+json"
        response = HttpResponse(data, content_type=content_type)
        response["Cache-Control"] = f"private, max-age={ASSET_MAX_AGE_S}"
        return response
