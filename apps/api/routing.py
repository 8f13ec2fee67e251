"""WebSocket routes, each behind the origin check."""

from __future__ import annotations

from django.urls import path

from .consumers import AlertConsumer
from .ws_origin import SettingsOriginValidator

alerts_app = SettingsOriginValidator(AlertConsumer.as_asgi())

websocket_urlpatterns = [
    path("ws/alerts", alerts_app),
    path("ws/alerts/", alerts_app),
]
