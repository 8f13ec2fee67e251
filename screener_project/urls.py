from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from screener_project.metrics_view import metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("apps.api.urls")),
    path("metrics", metrics, name="metrics"),
    # The trader's dashboard at the site root (where the admin's "View site" leads), and its few read endpoints.
    path("", include("apps.api.dashboard.urls")),
]
if settings.COMPAT_PREFIX:  # the existing web client's contract (apps/api/compat/README.md), under its own prefix
    urlpatterns.append(path(f"{settings.COMPAT_PREFIX}/", include("apps.api.compat.urls")))
