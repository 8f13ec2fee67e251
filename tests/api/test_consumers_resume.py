"""/ws/alerts resumption: a reconnecting client gets the alerts created after the last one it received, from
alert_history, then the live feed, with neither a gap nor a duplicate at the seam (real PostgreSQL and Redis)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from apps.alerts.models import AlertHistory
from apps.alerts.selectors import alert_payload
from apps.api import consumers
from apps.api.fanout import alert_hub

from .test_consumers import connect, publish

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def stored(*specs: tuple[str, str], ago: float = 60.0) -> list[dict]:
    """Alerts in alert_history, created one second apart ending `ago` seconds back, oldest first; their payloads."""
    now = timezone.now()
    payloads = []
    for n, (symbol, alert_type) in enumerate(specs):
        alert = AlertHistory.objects.create(
            id=uuid.uuid4(),
            triggered_at=datetime(2026, 11, 23, 10, n, tzinfo=UTC),
            symbol=symbol,
            alert_type=alert_type,
            price=1.0 + n,
            metadata={"n": n},
        )
        created = now - timedelta(seconds=ago - n)
        AlertHistory.objects.filter(id=alert.id).update(created_at=created)
        alert.created_at = created
        payloads.append(alert_payload(alert))
    return payloads


async def frames_until(client, kind: str) -> list[dict]:
    """Every frame up to and including the first of type `kind`."""
    out = []
    while True:
        frame = await client.receive_json_from(timeout=3)
        out.append(frame)
        if frame["type"] == kind:
            return out


def ids(frames: list[dict]) -> list[str]:
    return [f["data"]["id"] for f in frames if f["type"] == "alert"]


async def test_resume_replays_the_alerts_after_the_last_one_received_then_goes_on_live():
    alerts = await stored(("BTCUSDT", "pioneer_bull"), ("ETHUSDT", "top_hunter"), ("SOLUSDT", "bull_whale"))
    client = await connect()
    await client.send_json_to({"type": "resume", "since": alerts[0]["id"]})
    frames = await frames_until(client, "resumed")
    assert [f["data"] for f in frames[:-1]] == alerts[1:]
    assert frames[-1] == {"type": "resumed", "since": alerts[0]["id"], "replayed": 2, "truncated": False}
    live = {**alerts[2], "id": str(uuid.uuid4()), "symbol": "XRPUSDT"}
    await publish(live)
    assert (await client.receive_json_from(timeout=3))["data"] == live
    await client.disconnect()


async def test_resume_from_the_newest_alert_replays_nothing():
    (newest,) = await stored(("BTCUSDT", "pioneer_bull"))
    client = await connect()
    await client.send_json_to({"type": "resume", "since": newest["id"]})
    assert await client.receive_json_from(timeout=3) == {
        "type": "resumed",
        "since": newest["id"],
        "replayed": 0,
        "truncated": False,
    }
    await client.disconnect()


async def test_resume_honours_the_subscription_filters():
    alerts = await stored(
        ("BTCUSDT", "pioneer_bull"), ("ETHUSDT", "pioneer_bull"), ("ETHUSDT", "top_hunter"), ("BTCUSDT", "top_hunter")
    )
    client = await connect()
    await client.send_json_to({"type": "subscribe", "symbols": ["ETHUSDT"], "alert_types": ["top_hunter"]})
    assert (await client.receive_json_from(timeout=3))["type"] == "subscribed"
    await client.send_json_to({"type": "resume", "since": alerts[0]["id"]})
    frames = await frames_until(client, "resumed")
    assert ids(frames) == [alerts[2]["id"]]
    await client.disconnect()


async def test_resume_is_bounded_to_the_newest_alerts_and_says_so(settings):
    settings.WS_RESUME_MAX_ALERTS = 2
    alerts = await stored(*[(f"COIN{n}USDT", "pioneer_bull") for n in range(5)])
    client = await connect()
    await client.send_json_to({"type": "resume", "since": alerts[0]["id"]})
    frames = await frames_until(client, "resumed")
    assert ids(frames) == [alerts[3]["id"], alerts[4]["id"]]
    assert frames[-1]["truncated"] is True
    await client.disconnect()


@pytest.mark.parametrize("case", ["unknown", "too old"])
async def test_an_unknown_or_expired_id_gets_an_error_and_the_socket_stays_live(case, settings):
    settings.WS_RESUME_WINDOW_SECONDS = 600
    since = str(uuid.uuid4()) if case == "unknown" else (await stored(("BTCUSDT", "pioneer_bull"), ago=900))[0]["id"]
    client = await connect()
    await client.send_json_to({"type": "resume", "since": since})
    reply = await client.receive_json_from(timeout=3)
    assert reply["type"] == "error" and reply["error"] == "resume_unknown" and since in reply["message"]
    live = {**(await stored(("ETHUSDT", "top_hunter")))[0]}
    await publish(live)
    assert (await client.receive_json_from(timeout=3))["data"] == live
    await client.disconnect()


@pytest.mark.parametrize("since", [None, 42, "not-a-uuid", ""])
async def test_a_malformed_resume_is_a_bad_request(since):
    client = await connect()
    await client.send_json_to({"type": "resume", "since": since})
    reply = await client.receive_json_from(timeout=3)
    assert reply["type"] == "error" and reply["error"] == "bad_request" and "'since'" in reply["message"]
    await client.disconnect()


async def test_a_connection_resumes_once():
    (first,) = await stored(("BTCUSDT", "pioneer_bull"))
    client = await connect()
    await client.send_json_to({"type": "resume", "since": first["id"]})
    assert (await client.receive_json_from(timeout=3))["type"] == "resumed"
    await client.send_json_to({"type": "resume", "since": first["id"]})
    reply = await client.receive_json_from(timeout=3)
    assert reply["type"] == "error" and reply["error"] == "bad_request"
    await client.disconnect()


async def test_the_seam_has_no_gap_and_no_duplicate(monkeypatch):
    """Live frames before the resume, during its read and after it, for alerts the replay also holds or not: each
    alert reaches the client once, the replay first, then the live ones it did not hold."""
    anchor, before, during, late, beyond = await stored(
        ("BTCUSDT", "pioneer_bull"),
        ("ETHUSDT", "pioneer_bull"),  # went out live between the reconnect and the resume
        ("SOLUSDT", "pioneer_bull"),  # its push arrives while the replay is read
        ("XRPUSDT", "pioneer_bull"),  # its push arrives after the replay was sent
        ("ADAUSDT", "pioneer_bull"),  # replayed; never pushed again
    )
    new = {**beyond, "id": str(uuid.uuid4()), "symbol": "DOGEUSDT"}  # committed after the read: live only
    client = await connect()
    (consumer,) = alert_hub().clients
    await publish(before)
    assert (await client.receive_json_from(timeout=3))["data"] == before

    read = consumers._alerts_after

    async def read_while_pushes_arrive(*args, **kwargs):
        found = await read(*args, **kwargs)
        await publish(during)
        await publish(new)
        for _ in range(300):
            if len(consumer.held) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(consumer.held) == 2, "the live frames were not held during the replay"
        return found

    monkeypatch.setattr(consumers, "_alerts_after", read_while_pushes_arrive)
    await client.send_json_to({"type": "resume", "since": anchor["id"]})
    frames = await frames_until(client, "resumed")
    assert ids(frames) == [during["id"], late["id"], beyond["id"]]
    assert frames[-1]["replayed"] == 3
    assert (await client.receive_json_from(timeout=3))["data"] == new
    await publish(late)  # its push was under way when the replay read it: the replay sent it already
    after = {**new, "id": str(uuid.uuid4()), "symbol": "TRXUSDT"}
    await publish(after)
    assert (await client.receive_json_from(timeout=3))["data"] == after
    assert await client.receive_nothing(timeout=0.3)
    await client.disconnect()
