from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularSwaggerView

from . import views
from .schema_view import CachedSchemaApi
from .threads import pooled_view
from .throttling import AnonIpThrottle, UserIdThrottle

urlpatterns = [
    path("health", pooled_view(views.HealthApi.as_view()), name="health"),
    path("alerts", pooled_view(views.AlertListApi.as_view()), name="alerts"),
    path("metrics/<str:symbol>", pooled_view(views.MetricsDetailApi.as_view()), name="metrics"),
    path("symbols", pooled_view(views.SymbolListApi.as_view()), name="symbols"),
    path("rules", pooled_view(views.RuleListApi.as_view()), name="rules"),
    path("rules/<str:rule_type>/stats", pooled_view(views.RuleStatsApi.as_view()), name="rule-stats"),
    path("candles/<str:symbol>", pooled_view(views.CandleListApi.as_view()), name="candles"),
    path("settings", pooled_view(views.SettingsApi.as_view()), name="settings"),
    path("schema/", CachedSchemaApi.as_view(), name="schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="schema", throttle_classes=[AnonIpThrottle, UserIdThrottle]),
        name="docs",
    ),
]
