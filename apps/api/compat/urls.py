"""Routes of the compatibility surface, relative to settings.COMPAT_PREFIX (apps/api/compat/README.md)."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    # Market data, alerts, health: what the client polls.
    path("", include("apps.api.compat.market_urls")),
    # Login, the user, watchlist, rule switches, webhooks.
    path("", include("apps.api.compat.account_urls")),
]
