"""The channel-layer contract between the alert engine (publisher) and the API's WebSocket fan-out (subscriber)."""

from __future__ import annotations

# Every fired alert is sent once to this group as `{"type": ALERT_MESSAGE_TYPE, "data": <alert payload>}`.
ALERTS_GROUP = "alerts"
ALERT_MESSAGE_TYPE = "alert.message"


def alert_message(payload: dict) -> dict:
    """The channel-layer message that carries one alert."""
    return {"type": ALERT_MESSAGE_TYPE, "data": payload}
