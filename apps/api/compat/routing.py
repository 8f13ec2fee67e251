"""WebSocket routes of the compatibility surface (README.md), under settings.COMPAT_PREFIX, behind the origin check."""

from __future__ import annotations

from django.conf import settings
from django.urls import path

from apps.api.ws_origin import SettingsOriginValidator

from .consumers import CompatAlertConsumer

alerts_app = SettingsOriginValidator(CompatAlertConsumer.as_asgi())

websocket_urlpatterns: list = (
    [
        path(f"{settings.COMPAT_PREFIX}/ws/alerts", alerts_app),
        path(f"{settings.COMPAT_PREFIX}/ws/alerts/", alerts_app),
    ]
    if settings.COMPAT_PREFIX
    else []
)
