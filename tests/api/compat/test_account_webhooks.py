"""Users' webhooks of the compatibility surface (its README): CRUD, ownership, validation, and real delivery of alerts
through the notifications pipeline to a local HTTP receiver."""

# Fixtures come from account_fixtures by import (this package keeps no conftest of its own), hence F401/F811.
# ruff: noqa: F401, F811
from __future__ import annotations

import hashlib
import hmac

import pytest

from apps.alerts.notifications.models import Delivery, Destination
from apps.alerts.notifications.services import notifications_enqueue
from apps.alerts.notifications.transports import transport_for
from apps.api.compat.models import UserWebhook
from tests.alerts.notifications.receiver import Reply

from .account_fixtures import (
    anon,
    client_of,
    drain,
    fast_notifications,
    make_alert,
    make_user,
    prefix,
    receiver,
    signed_in,
    user,
)

pytestmark = pytest.mark.django_db

WEBHOOK_FIELDS = {
    "id",
    "user_id",
    "name",
    "webhook_type",
    "webhook_url",
    "scope",
    "is_enabled",
    "max_alerts_per_minute",
    "config",
    "created_at",
    "updated_at",
}


def create(client, **body):
    values = {"name": "mine", "webhook_type": "http", "webhook_url": "https://hooks.example.com/in"}
    values.update(body)
    return client.post(prefix() + "/api/webhooks", values, format="json")


def url(webhook_id, tail: str = "") -> str:
    return f"{prefix()}/api/webhooks/{webhook_id}{tail}"


# --- CRUD and ownership ------------------------------------------------------------------------------


def test_create_returns_the_webhook_and_mirrors_it_as_a_destination(client_of, user):
    response = create(client_of, max_alerts_per_minute=4, scope="all")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == WEBHOOK_FIELDS
    assert (body["user_id"], body["name"], body["webhook_type"], body["scope"]) == (user.pk, "mine", "http", "all")
    assert body["is_enabled"] is True and body["max_alerts_per_minute"] == 4
    # The signature key of an HTTP webhook is generated and shown to its owner, who verifies with it.
    assert len(body["config"]["secret"]) >= 32
    destination = UserWebhook.objects.get(pk=body["id"]).destination
    assert (destination.owner, destination.kind, destination.url) == (user, "webhook", "https://hooks.example.com/in")
    assert destination.secret == body["config"]["secret"] and destination.enabled
    assert destination.min_interval_seconds == 15.0
    assert transport_for(destination).interval() == 15.0


def test_list_get_update_and_delete(client_of, user):
    first = create(client_of, name="one").json()
    second = create(client_of, name="two", webhook_type="discord", webhook_url="https://discord.com/api/webhooks/1/x")
    second = second.json()

    assert [w["name"] for w in client_of.get(prefix() + "/api/webhooks").json()["webhooks"]] == ["one", "two"]
    assert client_of.get(url(first["id"])).json() == first

    response = client_of.patch(url(second["id"]), {"name": "renamed", "scope": "watchlist"}, format="json")
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["scope"]) == ("renamed", "watchlist")
    assert response.json()["webhook_url"] == "https://discord.com/api/webhooks/1/x"
    response = client_of.put(
        url(second["id"]),
        {"webhook_type": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/x"},
        format="json",
    )
    assert response.status_code == 200 and response.json()["webhook_type"] == "slack"
    assert UserWebhook.objects.get(pk=second["id"]).destination.kind == "slack"

    destination_id = UserWebhook.objects.get(pk=first["id"]).destination_id
    response = client_of.delete(url(first["id"]))
    assert response.status_code == 200 and response.json() == {"success": True, "id": first["id"]}
    assert client_of.get(url(first["id"])).status_code == 404
    assert not Destination.objects.filter(pk=destination_id).exists()
    assert [w["name"] for w in client_of.get(prefix() + "/api/webhooks/").json()["webhooks"]] == ["renamed"]


def test_another_users_webhook_is_404_for_every_operation(make_user, signed_in):
    alice, bob = signed_in(make_user("alice@example.com")), signed_in(make_user("bob@example.com"))
    webhook_id = create(alice).json()["id"]

    assert bob.get(prefix() + "/api/webhooks").json()["webhooks"] == []
    assert bob.get(url(webhook_id)).status_code == 404
    assert bob.patch(url(webhook_id), {"name": "mine now"}, format="json").status_code == 404
    assert bob.delete(url(webhook_id)).status_code == 404
    assert bob.patch(url(webhook_id, "/toggle"), {"enabled": False}, format="json").status_code == 404
    assert bob.post(url(webhook_id, "/test")).status_code == 404
    assert alice.get(url(webhook_id)).json()["name"] == "mine"
    assert UserWebhook.objects.get(pk=webhook_id).is_enabled


@pytest.mark.parametrize("webhook_id", ["abc", "0", "-1", "99999999999999999999999"])
def test_a_malformed_id_is_404(client_of, webhook_id):
    assert client_of.get(url(webhook_id)).status_code == 404


def test_webhooks_need_a_signed_in_user(anon):
    assert anon.get(prefix() + "/api/webhooks").status_code == 401
    assert create(anon).status_code == 401


def test_toggle_switches_the_destination_and_validates(client_of):
    webhook_id = create(client_of).json()["id"]

    response = client_of.patch(url(webhook_id, "/toggle"), {"enabled": False}, format="json")

    assert response.status_code == 200 and response.json()["is_enabled"] is False
    assert not UserWebhook.objects.get(pk=webhook_id).destination.enabled
    response = client_of.patch(url(webhook_id, "/toggle"), {"enabled": "later"}, format="json")
    assert response.status_code == 400 and [k for k in response.json() if k != "error"] == ["enabled"]
    assert client_of.patch(url(webhook_id, "/toggle"), {"enabled": True}, format="json").json()["is_enabled"] is True


def test_toggling_on_lifts_a_pause(client_of):
    webhook_id = create(client_of).json()["id"]
    client_of.patch(url(webhook_id, "/toggle"), {"enabled": False}, format="json")
    destination = UserWebhook.objects.get(pk=webhook_id).destination
    Destination.objects.filter(pk=destination.pk).update(paused_reason="HTTP 404", paused_at="2026-11-23T10:00:00Z")

    client_of.patch(url(webhook_id, "/toggle"), {"enabled": True}, format="json")

    destination.refresh_from_db()
    assert destination.paused_at is None and destination.enabled


# --- Validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"webhook_type": "email"}, "webhook_type"),
        ({"webhook_type": None}, "webhook_type"),
        ({"webhook_url": ""}, "webhook_url"),
        ({"webhook_url": "ftp://hooks.example.com/in"}, "webhook_url"),
        ({"webhook_url": "https://user:pw@hooks.example.com/in"}, "webhook_url"),
        ({"webhook_url": "http://10.0.0.5/in"}, "webhook_url"),
        ({"webhook_url": "http://169.254.169.254/latest"}, "webhook_url"),
        ({"webhook_url": "http://127.0.0.1:8000/in"}, "webhook_url"),
        ({"webhook_url": "not a url"}, "webhook_url"),
        ({"scope": "everything"}, "scope"),
        ({"max_alerts_per_minute": 0}, "max_alerts_per_minute"),
        ({"max_alerts_per_minute": "many"}, "max_alerts_per_minute"),
        ({"config": ["a"]}, "config"),
        ({"config": {"secret": "short"}}, "config"),
        ({"is_enabled": "perhaps"}, "is_enabled"),
    ],
)
def test_bad_fields_are_400_naming_the_field(client_of, body, field):
    response = create(client_of, **body)
    assert response.status_code == 400, response.json()
    assert field in response.json()
    assert not UserWebhook.objects.exists() and not Destination.objects.exists()


def test_a_missing_type_is_400(client_of):
    response = client_of.post(prefix() + "/api/webhooks", {"webhook_url": "https://a.example.com"}, format="json")
    assert response.status_code == 400 and [k for k in response.json() if k != "error"] == ["webhook_type"]


@pytest.mark.parametrize(
    ("config", "missing"),
    [
        ({}, {"bot_token", "chat_id"}),
        ({"bot_token": "123456:ABC-def"}, {"chat_id"}),
        ({"chat_id": "-1001234"}, {"bot_token"}),
        ({"bot_token": "no-colon", "chat_id": "42"}, {"bot_token"}),
        ({"bot_token": "123456:ABC", "chat_id": "not a chat"}, {"chat_id"}),
    ],
)
def test_telegram_needs_bot_token_and_chat_id_in_config(client_of, config, missing):
    response = create(client_of, webhook_type="telegram", webhook_url="", config=config)
    assert response.status_code == 400
    assert set(response.json()["config"]) == missing


def test_a_telegram_webhook_is_mirrored_with_its_chat(client_of):
    body = create(client_of, webhook_type="telegram", webhook_url="", config={"bot_token": "123:AB", "chat_id": -100})
    assert body.status_code == 201 and body.json()["config"] == {"bot_token": "123:AB", "chat_id": "-100"}
    destination = Destination.objects.get()
    assert (destination.kind, destination.telegram_bot_token, destination.telegram_chat_id) == (
        "telegram",
        "123:AB",
        "-100",
    )


def test_an_update_is_validated_against_the_stored_fields(client_of):
    webhook_id = create(client_of).json()["id"]
    response = client_of.patch(url(webhook_id), {"webhook_type": "telegram"}, format="json")
    assert response.status_code == 400 and "config" in response.json()
    response = client_of.patch(url(webhook_id), {"webhook_url": "gopher://x"}, format="json")
    assert response.status_code == 400 and [k for k in response.json() if k != "error"] == ["webhook_url"]
    assert UserWebhook.objects.get(pk=webhook_id).webhook_type == "http"


# --- Real delivery through the notifications pipeline ----------------------------------------------


def received_symbols(receiver) -> list[str]:
    return [a["symbol"] for r in receiver.requests for a in r.json()["alerts"]]


def test_a_fired_alert_reaches_the_users_http_webhook_signed(
    fast_notifications, receiver, client_of, make_alert, drain
):
    body = create(client_of, webhook_url=receiver.url + "/hook", max_alerts_per_minute=60).json()
    destination = UserWebhook.objects.get(pk=body["id"]).destination
    alert = make_alert(symbol="ETHUSDT")

    notifications_enqueue(alerts=[alert])
    drain(destination.pk)

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request.path == "/hook"
    timestamp = request.headers["X-Screener-Timestamp"]
    expected = hmac.new(body["config"]["secret"].encode(), timestamp.encode() + b"." + request.body, hashlib.sha256)
    assert request.headers["X-Screener-Signature"] == "sha256=" + expected.hexdigest()
    assert [a["id"] for a in request.json()["alerts"]] == [str(alert.id)]
    assert Delivery.objects.get(destination=destination).status == "sent"


def test_scope_watchlist_sends_only_the_users_watchlist_symbols(
    fast_notifications, receiver, client_of, make_alert, drain
):
    webhook_id = create(client_of, webhook_url=receiver.url, scope="watchlist", max_alerts_per_minute=600).json()["id"]
    destination = UserWebhook.objects.get(pk=webhook_id).destination

    # An empty watchlist wants nothing (not everything).
    notifications_enqueue(alerts=[make_alert(symbol="BTCUSDT")])
    assert not Delivery.objects.exists()

    client_of.put(prefix() + "/api/watchlist", {"symbols": ["SOLUSDT", "ethusdt"]}, format="json")
    notifications_enqueue(alerts=[make_alert(symbol=s) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")])
    drain(destination.pk)
    assert sorted(received_symbols(receiver)) == ["ETHUSDT", "SOLUSDT"]

    client_of.delete(prefix() + "/api/watchlist?symbol=SOLUSDT")
    notifications_enqueue(alerts=[make_alert(symbol=s) for s in ("ETHUSDT", "SOLUSDT")])
    drain(destination.pk)
    assert sorted(received_symbols(receiver)) == ["ETHUSDT", "ETHUSDT", "SOLUSDT"]


def test_max_alerts_per_minute_spaces_the_messages_and_drops_nothing(
    fast_notifications, receiver, client_of, make_alert, drain
):
    webhook_id = create(client_of, webhook_url=receiver.url, max_alerts_per_minute=120).json()["id"]
    destination_id = UserWebhook.objects.get(pk=webhook_id).destination_id
    notifications_enqueue(alerts=[make_alert(symbol="BTCUSDT")])
    drain(destination_id)
    notifications_enqueue(alerts=[make_alert(symbol="ETHUSDT"), make_alert(symbol="SOLUSDT")])
    drain(destination_id)

    assert [len(r.json()["alerts"]) for r in receiver.requests] == [1, 2]
    assert receiver.requests[1].at - receiver.requests[0].at >= 0.5  # 60 s / 120


def test_a_users_rule_switch_filters_their_webhooks_only(
    fast_notifications, receiver, make_user, signed_in, make_alert, drain
):
    alice, bob = signed_in(make_user("alice@example.com")), signed_in(make_user("bob@example.com"))
    alice_hook = UserWebhook.objects.get(pk=create(alice, webhook_url=receiver.url + "/alice").json()["id"])
    bob_hook = UserWebhook.objects.get(pk=create(bob, webhook_url=receiver.url + "/bob").json()["id"])
    alice.put(prefix() + "/api/alert-rules/futures_big_bear_60", {"enabled": False}, format="json")

    notifications_enqueue(alerts=[make_alert(alert_type="big_bull_60m"), make_alert(alert_type="big_bear_60m")])
    drain(alice_hook.destination_id)
    drain(bob_hook.destination_id)

    types = {
        path: sorted(a["alert_type"] for r in receiver.requests if r.path == path for a in r.json()["alerts"])
        for path in ("/alice", "/bob")
    }
    assert types == {"/alice": ["big_bull_60m"], "/bob": ["big_bear_60m", "big_bull_60m"]}


def test_a_disabled_webhook_receives_nothing(fast_notifications, receiver, client_of, make_alert):
    webhook_id = create(client_of, webhook_url=receiver.url, is_enabled=False).json()["id"]
    notifications_enqueue(alerts=[make_alert()])
    assert not Delivery.objects.filter(destination__compat_webhook__pk=webhook_id).exists()


def test_a_slack_webhook_gets_a_text_message(fast_notifications, receiver, client_of, make_alert, drain):
    webhook_id = create(client_of, webhook_type="slack", webhook_url=receiver.url + "/services/T/B/x").json()["id"]
    notifications_enqueue(alerts=[make_alert(symbol="SOLUSDT"), make_alert(symbol="ETHUSDT")])
    drain(UserWebhook.objects.get(pk=webhook_id).destination_id)

    assert len(receiver.requests) == 1
    text = receiver.requests[0].json()["text"]
    assert set(receiver.requests[0].json()) == {"text"}
    assert text.startswith("2 alerts") and "SOLUSDT" in text and "ETHUSDT" in text


def test_a_telegram_webhook_gets_send_message(fast_notifications, receiver, client_of, make_alert, drain):
    config = {"bot_token": "123456:ABC", "chat_id": "777"}
    webhook_id = create(client_of, webhook_type="telegram", webhook_url="", config=config).json()["id"]
    notifications_enqueue(alerts=[make_alert(symbol="SOLUSDT")])
    drain(UserWebhook.objects.get(pk=webhook_id).destination_id)

    assert [r.path for r in receiver.requests] == ["/bot123456:ABC/sendMessage"]
    assert receiver.requests[0].json()["chat_id"] == "777"


# --- The test endpoint -------------------------------------------------------------------------------


def test_the_test_endpoint_sends_one_message_now(fast_notifications, receiver, client_of):
    webhook_id = create(client_of, webhook_url=receiver.url + "/t").json()["id"]

    response = client_of.post(url(webhook_id, "/test"))

    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "Test message delivered.", "status_code": 200}
    assert len(receiver.requests) == 1 and receiver.requests[0].path == "/t"
    sent = receiver.requests[0].json()["alerts"][0]
    assert (sent["alert_type"], sent["metadata"]) == ("test", {"test": True})
    assert not Delivery.objects.exists()  # a test is not an alert


def test_the_test_endpoint_reports_the_failure(fast_notifications, receiver, client_of):
    webhook_id = create(client_of, webhook_type="discord", webhook_url=receiver.url + "/gone").json()["id"]
    receiver.replies = [Reply(404, body=b'{"message": "Unknown Webhook"}')]

    response = client_of.post(url(webhook_id, "/test"))

    assert response.status_code == 502
    body = response.json()
    assert body["success"] is False and body["status_code"] == 404 and "Unknown Webhook" in body["message"]
    assert "embeds" in receiver.requests[0].json()


def test_the_test_endpoint_refuses_a_loopback_address_unless_allowed(receiver, client_of, settings):
    settings.NOTIFICATIONS_ALLOW_LOOPBACK = True
    webhook_id = create(client_of, webhook_url=f"http://localhost:{receiver.port}/t").json()["id"]
    settings.NOTIFICATIONS_ALLOW_LOOPBACK = False

    response = client_of.post(url(webhook_id, "/test"))

    assert response.status_code == 502 and "refused" in response.json()["message"]
    assert receiver.requests == []


def test_a_successful_test_resumes_a_paused_webhook_and_sends_what_waited(
    fast_notifications, receiver, client_of, make_alert, drain
):
    webhook_id = create(client_of, webhook_url=receiver.url).json()["id"]
    destination = UserWebhook.objects.get(pk=webhook_id).destination
    Destination.objects.filter(pk=destination.pk).update(paused_reason="HTTP 404", paused_at="2026-11-23T10:00:00Z")
    alert = make_alert()
    notifications_enqueue(alerts=[alert])

    assert client_of.post(url(webhook_id, "/test")).status_code == 200
    drain(destination.pk)

    destination.refresh_from_db()
    assert destination.paused_at is None
    assert [a["id"] for r in receiver.requests[1:] for a in r.json()["alerts"]] == [str(alert.id)]


def test_tests_are_rate_limited_per_user(fast_notifications, receiver, client_of, settings):
    settings.COMPAT_WEBHOOK_TEST_RATE_LIMIT = "2/minute"
    webhook_id = create(client_of, webhook_url=receiver.url).json()["id"]
    codes = [client_of.post(url(webhook_id, "/test")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert len(receiver.requests) == 2
