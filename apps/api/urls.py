from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import views

urlpatterns = [
    path("health", views.HealthApi.as_view(), name="health"),
    path("alerts", views.AlertListApi.as_view(), name="alerts"),
    path("metrics/<str:symbol>", views.MetricsDetailApi.as_view(), name="metrics"),
    path("symbols", views.SymbolListApi.as_view(), name="symbols"),
    path("rules", views.RuleListApi.as_view(), name="rules"),
    path("candles/<str:symbol>", views.CandleListApi.as_view(), name="candles"),
    path("settings", views.SettingsApi.as_view(), name="settings"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]
