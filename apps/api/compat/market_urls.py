"""Market data, alerts and health of the compatibility surface (README.md), each with or without a trailing slash."""

from __future__ import annotations

from django.urls import re_path

from apps.api.threads import pooled_view

from . import market

urlpatterns = [
    re_path(r"^api/metrics/?$", pooled_view(market.MetricsListApi.as_view()), name="compat-metrics"),
    re_path(r"^api/tickers/?$", pooled_view(market.TickerListApi.as_view()), name="compat-tickers"),
    re_path(r"^api/alerts/?$", pooled_view(market.AlertListApi.as_view()), name="compat-alerts"),
    re_path(r"^api/klines/?$", pooled_view(market.KlineListApi.as_view()), name="compat-klines"),
    re_path(r"^api/health/?$", pooled_view(market.HealthApi.as_view()), name="compat-health"),
]
