"""Routes of the client's accounts (see README.md), relative to settings.COMPAT_PREFIX; a trailing slash is optional."""

from __future__ import annotations

from django.urls import re_path

from apps.api.threads import pooled_view

from . import account_views as views
from . import auth_views


def route(pattern: str, view, name: str):
    return re_path(rf"^{pattern}(?:/)?$", pooled_view(view.as_view()), name=name)


urlpatterns = [
    route("auth/login", views.LoginApi, "compat-login"),
    route("auth/register", auth_views.RegisterApi, "compat-register"),
    route(r"auth/invite/(?P<code>[^/]+)", auth_views.InviteApi, "compat-invite"),
    route("auth/forgot-password", auth_views.ForgotPasswordApi, "compat-forgot-password"),
    route("auth/reset-password", auth_views.ResetPasswordApi, "compat-reset-password"),
    route("api/change-password", auth_views.ChangePasswordApi, "compat-change-password"),
    route("api/billing", auth_views.BillingApi, "compat-billing"),
    route("api/billing/confirm", auth_views.CheckoutApi, "compat-billing-confirm"),
    route("api/checkout", auth_views.CheckoutApi, "compat-checkout"),
    route("api/settings/tv-username", auth_views.TvUsernameApi, "compat-tv-username"),
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
