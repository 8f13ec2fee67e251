"""The stock Channels fan-out (every consumer joins the group), served only so bench_ws --stock can compare."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "screener_project.settings.local")
django_asgi_app = get_asgi_application()

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from screener_project.kernel.channels import ALERTS_GROUP  # noqa: E402


class StockAlertConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        await self.channel_layer.group_add(ALERTS_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(ALERTS_GROUP, self.channel_name)

    async def alert_message(self, event: dict) -> None:
        await self.send_json({"type": "alert", "data": event["data"]})


application = ProtocolTypeRouter(
    {"http": django_asgi_app, "websocket": URLRouter([path("ws/alerts", StockAlertConsumer.as_asgi())])}
)
