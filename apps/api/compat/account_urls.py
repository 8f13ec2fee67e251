"""Routes of the client's accounts (see README.md), relative to settings.COMPAT_PREFIX; a trailing slash is optional."""

from __future__ import annotations

from django.urls import re_path

from apps.api.threads import pooled_view

from . import account_views as views


def route(pattern: str, view, name: str):
    return re_path(rf"^{pattern}(?:/)?$", pooled_view(view.as_view()), name=name)


urlpatterns = [
    route("auth/login", views.LoginApi, "compat-login"),
    route("api/refresh", views.RefreshApi, "compat-refresh"),
    route("api/me", views.MeApi, "compat-me"),
    route("api/alert-rules", views.AlertRuleListApi, "compat-alert-rules"),
    route(r"api/alert-rules/(?P<rule_type>[^/]+)", views.AlertRuleDetailApi, "compat-alert-rule"),
    route("api/watchlist", views.WatchlistApi, "compat-watchlist"),
    route(r"api/watchlist/(?P<symbol>[^/]+)", views.WatchlistSymbolApi, "compat-watchlist-symbol"),
    route("api/webhooks", views.WebhookListApi, "compat-webhooks"),
    route(r"api/webhooks/(?P<webhook_id>[^/]+)", views.WebhookDetailApi, "compat-webhook"),
    route(r"api/webhooks/(?P<webhook_id>[^/]+)/toggle", views.WebhookToggleApi, "compat-webhook-toggle"),
    route(r"api/webhooks/(?P<webhook_id>[^/]+)/test", views.WebhookTestApi, "compat-webhook-test"),
]
