"""Origin check for WebSockets: browsers may connect only from this site or the configured origins."""

from __future__ import annotations

from channels.security.websocket import OriginValidator
from django.conf import settings


class SettingsOriginValidator(OriginValidator):
    """Allows WS_ALLOWED_ORIGINS and pages served from ALLOWED_HOSTS; read per connection so settings can change.

    A missing Origin header (a non-browser client) is allowed when WS_ALLOW_MISSING_ORIGIN is set: browsers always
    send one on WebSocket handshakes, so only they can be tricked into cross-site connections.
    """

    def __init__(self, application) -> None:
        super().__init__(application, allowed_origins=[])

    def valid_origin(self, parsed_origin) -> bool:
        if parsed_origin is None:
            return settings.WS_ALLOW_MISSING_ORIGIN
        self.allowed_origins = [*settings.WS_ALLOWED_ORIGINS, *settings.ALLOWED_HOSTS]
        return self.validate_origin(parsed_origin)
