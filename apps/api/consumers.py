"""WebSocket consumers. Alerts reach them through the channel layer group ALERTS_GROUP."""

from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer

ALERTS_GROUP = "alerts"


class AlertConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        await self.channel_layer.group_add(ALERTS_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(ALERTS_GROUP, self.channel_name)

    async def alert_message(self, event: dict) -> None:
        await self.send_json({"type": "alert", "data": event["data"]})
