from django.contrib import admin
from django.urls import path

from maps import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("shapes", views.start_shapes),
    path("jobs/<str:job_id>", views.job_status),
    path("jobs/<str:job_id>/result", views.job_result),
]
