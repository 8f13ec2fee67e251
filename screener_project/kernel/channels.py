"""The channel-layer contract between the alert engine (publisher) and the API's WebSocket fan-out (subscriber)."""

from __future__ import annotations

from collections.abc import Sequence

# The alerts of one committed evaluation are sent once to this group, in creation order, as
# `{"type": ALERT_BATCH_MESSAGE_TYPE, "data": [<alert payload>, ...]}`: one message, so the subscriber hands each
# client the whole batch at once and the client's socket takes it in one write. `{"type": ALERT_MESSAGE_TYPE,
# "data": <alert payload>}` carries a single alert (tools that publish one, a publisher of an earlier release).
ALERTS_GROUP = "alerts"
ALERT_MESSAGE_TYPE = "alert.message"
ALERT_BATCH_MESSAGE_TYPE = "alert.batch"


def alert_message(payload: dict) -> dict:
    """The channel-layer message that carries one alert."""
    return {"type": ALERT_MESSAGE_TYPE, "data": payload}


def alert_batch_message(payloads: Sequence[dict]) -> dict:
    """The channel-layer message that carries the alerts of one batch, in the order they are to be delivered."""
    return {"type": ALERT_BATCH_MESSAGE_TYPE, "data": list(payloads)}
