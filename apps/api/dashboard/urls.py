"""The dashboard's pages at the site root, and its read-only endpoints beside the REST API under /api."""

from __future__ import annotations

from django.urls import path

from apps.api.threads import pooled_view

from . import apis, views

app_name = "dashboard"

urlpatterns = [
    path("", views.screener, name="screener"),
    path("symbol/<str:symbol>", views.symbol, name="symbol"),
    path("history", views.history, name="history"),
    path("rules", views.rules, name="rules"),
    path("feed", views.feed, name="feed"),
    path("api/screener", pooled_view(apis.ScreenerApi.as_view()), name="api-screener"),
    path("api/alerts/counts", pooled_view(apis.AlertCountsApi.as_view()), name="api-alert-counts"),
    path("api/feed", pooled_view(apis.FeedApi.as_view()), name="api-feed"),
]
