"""Shapes the web client reads, written from its code: webhook list, errors, watchlist by base asset, its rule
catalogue and switches, the alerts of rules it cannot switch, CORS for a client served from this machine."""

# Fixtures come from account_fixtures by import (this package keeps no conftest of its own), hence F401/F811.
# ruff: noqa: F401, F811
from __future__ import annotations

import importlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from apps.alerts.models import AlertHistory, AlertRule
from apps.alerts.notifications.models import Destination
from apps.alerts.services import rules_builtin_seed
from apps.api.compat.account_selectors import compat_user_watchlist
from apps.api.compat.account_services import account_profile_get
from apps.api.compat.rule_catalogue import CLIENT_RULES
from apps.collector.models import Symbol

from .account_fixtures import anon, client_of, make_user, prefix, signed_in, user

pytestmark = pytest.mark.django_db

# The client's FUTURES_ALERT_PRESETS (src/types/alert.ts), in its order, with its groups.
CLIENT_IDS = {
    "futures_big_bull_60": "original",
    "futures_big_bear_60": "original",
    "futures_pioneer_bull": "original",
    "futures_pioneer_bear": "original",
    "futures_5_big_bull": "original",
    "futures_5_big_bear": "original",
    "futures_15_big_bull": "original",
    "futures_15_big_bear": "original",
    "futures_bottom_hunter": "original",
    "futures_top_hunter": "original",
    "futures_bottom_hunter_v2": "optimized",
    "futures_top_hunter_v2": "optimized",
    "futures_big_bull_60_v2": "optimized",
    "futures_big_bear_60_v2": "optimized",
    "futures_whale_detector": "whale",
    "futures_whale_accumulation": "whale",
    "futures_whale_distribution": "whale",
    "futures_surge_42": "v4",
    "futures_knife_catcher": "v4",
    "futures_capitulation_catcher": "v4",
}
DEFAULT_OFF = {"futures_whale_detector", "futures_surge_42", "futures_knife_catcher", "futures_capitulation_catcher"}


@pytest.fixture
def seeded(db):
    rules_builtin_seed()


def rules_of(client) -> list[dict]:
    body = client.get(prefix() + "/api/alert-rules").json()
    assert body["count"] == len(body["rules"])
    return body["rules"]


# --- Webhooks: {webhooks, count, limit} --------------------------------------------------------------------


def test_the_webhook_list_is_an_object_with_count_and_limit(client_of, settings):
    settings.COMPAT_WEBHOOKS_PER_USER = 2
    assert client_of.get(prefix() + "/api/webhooks").json() == {"webhooks": [], "count": 0, "limit": 2}
    body = {"name": "Desk", "webhook_type": "discord", "webhook_url": "https://discord.example.com/api/webhooks/1/x"}
    created = client_of.post(prefix() + "/api/webhooks", body, format="json")
    assert created.status_code == 201
    listed = client_of.get(prefix() + "/api/webhooks").json()
    assert listed["count"] == 1 and listed["limit"] == 2
    assert listed["webhooks"] == [created.json()]
    assert set(listed["webhooks"][0]) == {
        "id", "user_id", "name", "webhook_type", "webhook_url", "scope", "is_enabled", "max_alerts_per_minute",
        "config", "created_at", "updated_at",
    }  # fmt: skip


def test_creating_past_the_limit_is_400_with_an_error(client_of, settings):
    settings.COMPAT_WEBHOOKS_PER_USER = 1
    body = {"name": "A", "webhook_type": "slack", "webhook_url": "https://hooks.slack.example.com/services/1"}
    assert client_of.post(prefix() + "/api/webhooks", body, format="json").status_code == 201
    refused = client_of.post(prefix() + "/api/webhooks", body, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"] == "You can have at most 1 webhooks; delete one first."
    assert client_of.get(prefix() + "/api/webhooks").json()["count"] == 1


def test_toggle_edit_and_delete_survive_a_fresh_list(client_of):
    body = {"name": "Desk", "webhook_type": "discord", "webhook_url": "https://discord.example.com/api/webhooks/1/x"}
    webhook_id = client_of.post(prefix() + "/api/webhooks", body, format="json").json()["id"]
    path = f"{prefix()}/api/webhooks/{webhook_id}"
    assert client_of.patch(path + "/toggle", {"enabled": False}, format="json").status_code == 200
    assert client_of.get(prefix() + "/api/webhooks").json()["webhooks"][0]["is_enabled"] is False
    edited = {**body, "name": "Renamed", "scope": "watchlist", "is_enabled": True}
    assert client_of.put(path, edited, format="json").json()["name"] == "Renamed"
    (listed,) = client_of.get(prefix() + "/api/webhooks").json()["webhooks"]
    assert (listed["name"], listed["scope"], listed["is_enabled"]) == ("Renamed", "watchlist", True)
    assert client_of.delete(path).status_code == 200
    assert client_of.get(prefix() + "/api/webhooks").json() == {"webhooks": [], "count": 0, "limit": 10}


# --- Every error carries `error` -----------------------------------------------------------------------------


def test_a_wrong_password_shows_its_reason(anon, user):
    response = anon.post(prefix() + "/auth/login", {"email": user.email, "password": "wrong"}, format="json")
    assert response.status_code == 401 and response.json()["error"] == "Invalid email or password."


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("post", "/auth/login", {"email": "a@b.c"}, 400, "password: This field is required."),
        ("get", "/api/webhooks/999", None, 404, "Unknown webhook."),
        ("post", "/api/webhooks", {"webhook_type": "fax"}, 400, 'webhook_type: "fax" is not a valid choice.'),
        ("put", "/api/alert-rules/futures_nope", {"enabled": True}, 404, "Unknown rule: futures_nope"),
        ("post", "/api/watchlist", {"symbol": "BTC/USDT"}, 400, None),
        ("get", "/api/klines", {"symbol": "BTCUSDT"}, 400, "interval: This field is required."),
    ],
)
def test_every_error_body_carries_error(client_of, method, path, body, status, error):
    if method == "get":
        response = client_of.get(prefix() + path, body or {})
    else:
        response = getattr(client_of, method)(prefix() + path, body, format="json")
    assert response.status_code == status
    data = response.json()
    assert isinstance(data["error"], str) and data["error"]
    if error:
        assert data["error"] == error
    # The field details stay for callers that read them.
    assert len(data) >= 2


def test_a_missing_token_is_401_with_an_error(anon):
    response = anon.get(prefix() + "/api/me")
    assert response.status_code == 401 and response.json()["error"]


def test_the_login_limit_is_429_with_an_error(anon, settings):
    settings.COMPAT_LOGIN_RATE_LIMIT = "2/minute"
    for _ in range(2):
        anon.post(prefix() + "/auth/login", {"email": "x@example.com", "password": "nope"}, format="json")
    response = anon.post(prefix() + "/auth/login", {"email": "x@example.com", "password": "nope"}, format="json")
    assert response.status_code == 429 and "throttled" in response.json()["error"].lower()


# --- Watchlist by base asset -----------------------------------------------------------------------------------


@pytest.fixture
def universe(db):
    for symbol, base, quote in (("BTCUSDT", "BTC", "USDT"), ("ETHUSDT", "ETH", "USDT"), ("EURTRY", "EUR", "TRY")):
        Symbol.objects.create(symbol=symbol, base_asset=base, quote_asset=quote)


def test_the_client_adds_and_reads_base_assets(client_of, user, universe):
    response = client_of.post(prefix() + "/api/watchlist", {"symbol": "ETH"}, format="json")
    assert response.status_code == 200 and response.json() == {"symbols": ["ETH"], "count": 1}
    assert compat_user_watchlist(user) == ["ETHUSDT"]  # webhooks filter by pair
    client_of.post(prefix() + "/api/watchlist", {"symbol": "eur"}, format="json")
    assert client_of.get(prefix() + "/api/watchlist").json() == {"symbols": ["ETH", "EUR"], "count": 2}
    assert compat_user_watchlist(user) == ["ETHUSDT", "EURTRY"]


def test_a_pair_stored_server_side_reads_as_its_base_asset(client_of, user, universe):
    profile = account_profile_get(user=user)
    profile.watchlist = ["ETHUSDT", "BTCUSDT"]
    profile.save()
    assert client_of.get(prefix() + "/api/watchlist").json() == {"symbols": ["ETH", "BTC"], "count": 2}


def test_the_client_removes_by_base_asset_and_full_pairs_still_work(client_of, user, universe):
    client_of.put(prefix() + "/api/watchlist", {"symbols": ["ETH", "BTCUSDT"]}, format="json")
    assert compat_user_watchlist(user) == ["ETHUSDT", "BTCUSDT"]
    response = client_of.delete(prefix() + "/api/watchlist", {"symbol": "ETH"}, format="json")
    assert response.json() == {"symbols": ["BTC"], "count": 1}
    assert client_of.delete(prefix() + "/api/watchlist/btc").json() == {"symbols": [], "count": 0}


def test_an_unknown_base_asset_is_404_with_an_error(client_of, universe):
    response = client_of.post(prefix() + "/api/watchlist", {"symbol": "NOPE"}, format="json")
    assert response.status_code == 404 and "NOPE" in response.json()["error"]


# --- The client's rule catalogue -----------------------------------------------------------------------------


def test_the_rule_list_is_the_clients_catalogue_in_its_groups(client_of, seeded):
    rules = rules_of(client_of)
    assert [r["rule_type"] for r in rules] == list(CLIENT_IDS)
    assert {r["rule_type"]: r["category"] for r in rules} == CLIENT_IDS
    assert {r["rule_type"] for r in rules if not r["enabled"]} == DEFAULT_OFF
    assert all(set(r) == {"rule_type", "description", "enabled", "category"} and r["description"] for r in rules)
    assert len(CLIENT_RULES) == len(CLIENT_IDS)


@pytest.mark.parametrize("rule_id", ["futures_knife_catcher", "futures_big_bull_60_v2", "futures_whale_accumulation"])
def test_a_switch_of_a_rule_this_screener_lacks_is_kept(client_of, seeded, rule_id):
    # A screener whose operator deleted catalogue rules (or predates them) still keeps the users' switches.
    AlertRule.objects.filter(rule_type__in=["knife_catcher", "big_bull_60m_v2", "whale_accumulation"]).delete()
    for enabled in (True, False, True):
        response = client_of.put(f"{prefix()}/api/alert-rules/{rule_id}", {"enabled": enabled}, format="json")
        assert response.status_code == 200 and response.json()["enabled"] is enabled
        assert {r["rule_type"]: r["enabled"] for r in rules_of(client_of)}[rule_id] is enabled


def test_every_client_rule_can_be_switched_off_and_on(client_of, seeded):
    for rule_id in CLIENT_IDS:
        assert (
            client_of.put(f"{prefix()}/api/alert-rules/{rule_id}", {"enabled": False}, format="json").status_code == 200
        )
    assert not any(r["enabled"] for r in rules_of(client_of))
    for rule_id in CLIENT_IDS:
        assert (
            client_of.put(f"{prefix()}/api/alert-rules/{rule_id}", {"enabled": True}, format="json").status_code == 200
        )
    assert all(r["enabled"] for r in rules_of(client_of))


def test_the_servers_own_rules_are_listed_only_when_the_operator_sends_them(client_of, seeded, settings):
    assert "futures_bull_whale" not in {r["rule_type"] for r in rules_of(client_of)}
    settings.COMPAT_SEND_ALL_RULES = True
    extra = {r["rule_type"]: r for r in rules_of(client_of)[len(CLIENT_IDS) :]}
    assert {"futures_bull_whale", "futures_flat_8h"} <= set(extra)
    assert extra["futures_bull_whale"]["category"] == "other"


# --- Alerts of rules the client cannot switch ------------------------------------------------------------------


def test_alert_history_leaves_out_rules_the_client_cannot_switch(seeded, settings):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    for n, rule_type in enumerate(["bull_whale", "pioneer_bull", "flat_8h", "top_hunter"]):
        AlertHistory.objects.create(
            triggered_at=now - timedelta(minutes=n), symbol="BTCUSDT", alert_type=rule_type, price=1.0, volume=1.0
        )
    shown = Client().get(prefix() + "/api/alerts").json()
    assert [a["rule_type"] for a in shown] == ["futures_pioneer_bull", "futures_top_hunter"]
    assert Client().get(prefix() + "/api/alerts", {"rule_type": "futures_bull_whale"}).json() == []
    settings.COMPAT_SEND_ALL_RULES = True
    assert len(Client().get(prefix() + "/api/alerts").json()) == 4


def test_webhooks_receive_only_rules_the_client_can_switch(client_of, user, seeded, settings):
    body = {"name": "Desk", "webhook_type": "discord", "webhook_url": "https://discord.example.com/api/webhooks/1/x"}
    client_of.post(prefix() + "/api/webhooks", body, format="json")
    destination = Destination.objects.get(owner=user)
    assert destination.matches(alert_type="pioneer_bull", symbol="BTCUSDT")
    assert not destination.matches(alert_type="bull_whale", symbol="BTCUSDT")
    settings.COMPAT_SEND_ALL_RULES = True
    client_of.put(prefix() + "/api/alert-rules/futures_top_hunter", {"enabled": False}, format="json")
    destination.refresh_from_db()
    assert destination.matches(alert_type="bull_whale", symbol="BTCUSDT")
    assert not destination.matches(alert_type="top_hunter", symbol="BTCUSDT")


# --- CORS for a client served from this machine ------------------------------------------------------------------


def test_local_settings_allow_localhost_on_any_port_and_nothing_else():
    local = importlib.import_module("screener_project.settings.local")
    (pattern,) = local.CORS_ALLOWED_ORIGIN_REGEXES
    for origin in ("http://localhost:4173", "http://127.0.0.1:5173", "http://localhost", "https://[::1]:8443"):
        assert re.match(pattern, origin), origin
    for origin in ("http://localhost.evil.com", "https://evil.com", "http://127.0.0.1.nip.io:80", "null"):
        assert not re.match(pattern, origin), origin


@pytest.mark.parametrize("origin", ["http://localhost:4173", "http://127.0.0.1:39123"])
def test_a_local_client_passes_the_preflight_of_login(settings, origin):
    local = importlib.import_module("screener_project.settings.local")
    settings.CORS_ALLOWED_ORIGIN_REGEXES = local.CORS_ALLOWED_ORIGIN_REGEXES
    preflight = Client().options(
        prefix() + "/auth/login",
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type,authorization",
    )
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == origin
    assert "authorization" in preflight["Access-Control-Allow-Headers"].lower()
    assert "PATCH" in preflight["Access-Control-Allow-Methods"]


def test_without_the_local_allowance_a_local_origin_gets_no_cors_headers(settings):
    settings.CORS_ALLOWED_ORIGIN_REGEXES = []
    settings.CORS_ALLOWED_ORIGINS = []
    response = Client().get(prefix() + "/api/health", HTTP_ORIGIN="http://localhost:4173")
    assert "Access-Control-Allow-Origin" not in response


def test_webhooks_made_before_the_catalogue_filter_get_it_on_migration(client_of, user, seeded):
    import importlib

    from django.apps import apps as django_apps

    migration = importlib.import_module("apps.api.compat.migrations.0003_webhooks_client_rules_only")
    body = {"name": "Desk", "webhook_type": "discord", "webhook_url": "https://discord.example.com/api/webhooks/1/x"}
    client_of.post(prefix() + "/api/webhooks", body, format="json")
    Destination.objects.filter(owner=user).update(rule_types=[])  # as synced before
    migration.forwards(django_apps, None)
    destination = Destination.objects.get(owner=user)
    assert not destination.matches(alert_type="flat_1m", symbol="BTCUSDT")
    assert destination.matches(alert_type="big_bear_60m", symbol="BTCUSDT")
