from __future__ import annotations

from django.urls import path

from .consumers import AlertConsumer

websocket_urlpatterns = [
    path("ws/alerts", AlertConsumer.as_asgi()),
    path("ws/alerts/", AlertConsumer.as_asgi()),
]
