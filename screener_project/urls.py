from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from screener_project.metrics_view import metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("apps.api.urls")),
    path("metrics", metrics, name="metrics"),
]
