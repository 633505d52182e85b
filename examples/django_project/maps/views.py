"""Views that send work by name and follow it by job id (see docs/web.md, "Django")."""

import json

from django.http import FileResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

import geotasks


@csrf_exempt
@require_POST
def start_shapes(request):
    body = json.loads(request.body)
    try:
        job = geotasks.submit("get_shps", body["name"], min_area_km2=body.get("min_area_km2", 0))
    except (KeyError, ValueError) as exc:  # InputError, ActorNotRegistered
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"id": job.id}, status=202)


@require_GET
def job_status(request, job_id):
    try:
        return JsonResponse(geotasks.Job(job_id).info().to_dict())
    except geotasks.JobNotFound:
        return JsonResponse({"error": "no such job"}, status=404)


@require_GET
def job_result(request, job_id):
    job = geotasks.Job(job_id)
    try:
        stored = job.result_info()
    except geotasks.GeotasksError as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    return FileResponse(job.open(), content_type=stored.media_type)
