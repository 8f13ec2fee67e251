"""WebSocket routes of the compatibility surface, under settings.COMPAT_PREFIX (SPEC §5b)."""

from __future__ import annotations

websocket_urlpatterns: list = []
