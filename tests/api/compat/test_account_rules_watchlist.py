"""Per-user rule switches and the watchlist of the compatibility surface (apps/api/compat/README.md)."""

# Fixtures come from account_fixtures by import (this package keeps no conftest of its own), hence F401/F811.
# ruff: noqa: F401, F811
from __future__ import annotations

import pytest

from apps.alerts.models import AlertRule
from apps.api.compat.account_selectors import compat_user_alert_types, compat_user_watchlist
from apps.api.compat.account_services import WATCHLIST_MAX
from apps.api.compat.base import rule_id
from apps.api.compat.rule_catalogue import CLIENT_RULE_TYPES, CLIENT_RULES
from apps.collector.models import Symbol

from .account_fixtures import anon, client_of, make_user, prefix, signed_in, user

pytestmark = pytest.mark.django_db


def rules_of(client) -> dict[str, dict]:
    body = client.get(prefix() + "/api/alert-rules").json()
    assert body["count"] == len(body["rules"])
    return {r["rule_type"]: r for r in body["rules"]}


# --- Rule switches -----------------------------------------------------------------------------------


def test_rules_are_listed_with_the_clients_ids_and_the_global_state(client_of):
    AlertRule.objects.filter(rule_type="top_hunter").update(enabled=False)
    rules = rules_of(client_of)
    assert set(rules) == {rule_id(rule.rule_type) for rule in CLIENT_RULES}
    assert "futures_big_bull_60" in rules and "futures_flat_8h" not in rules  # no switch in the client
    assert set(rules["futures_big_bull_60"]) == {"rule_type", "description", "enabled", "category"}
    assert rules["futures_big_bull_60"]["enabled"] is True
    assert rules["futures_big_bull_60"]["category"] == "original"
    assert rules["futures_top_hunter"]["enabled"] is False


def test_a_users_switch_does_not_affect_another_user(make_user, signed_in):
    alice, bob = signed_in(make_user("alice@example.com")), signed_in(make_user("bob@example.com"))

    response = alice.put(prefix() + "/api/alert-rules/futures_big_bull_60", {"enabled": False}, format="json")

    assert response.status_code == 200
    assert response.json() == {**rules_of(bob)["futures_big_bull_60"], "enabled": False}
    assert rules_of(alice)["futures_big_bull_60"]["enabled"] is False
    assert rules_of(bob)["futures_big_bull_60"]["enabled"] is True
    assert AlertRule.objects.get(rule_type="big_bull_60m").enabled is True


def test_a_switch_accepts_the_plain_rule_type_and_can_be_turned_back_on(client_of, user):
    assert (
        client_of.put(prefix() + "/api/alert-rules/pioneer_bull", {"enabled": False}, format="json").status_code == 200
    )
    default_off = {"whale_detector", "surge_42", "knife_catcher", "capitulation_catcher"}
    assert compat_user_alert_types(user) == frozenset(
        AlertRule.objects.exclude(rule_type__in={"pioneer_bull", *default_off})
        .filter(rule_type__in=CLIENT_RULE_TYPES)
        .values_list("rule_type", flat=True)
    )
    assert (
        client_of.put(prefix() + "/api/alert-rules/futures_pioneer_bull", {"enabled": True}, format="json").status_code
        == 200
    )
    assert rules_of(client_of)["futures_pioneer_bull"]["enabled"] is True
    assert "pioneer_bull" in compat_user_alert_types(user)


def test_a_rule_off_by_the_clients_default_reaches_the_user_once_switched_on(client_of, user):
    assert rules_of(client_of)["futures_knife_catcher"]["enabled"] is False
    assert "knife_catcher" not in compat_user_alert_types(user)
    response = client_of.put(prefix() + "/api/alert-rules/futures_knife_catcher", {"enabled": True}, format="json")
    assert response.status_code == 200 and response.json()["enabled"] is True
    assert rules_of(client_of)["futures_knife_catcher"]["enabled"] is True
    assert "knife_catcher" in compat_user_alert_types(user)


def test_switching_on_a_globally_disabled_rule_leaves_it_disabled(client_of):
    AlertRule.objects.filter(rule_type="top_hunter").update(enabled=False)
    response = client_of.put(prefix() + "/api/alert-rules/futures_top_hunter", {"enabled": True}, format="json")
    assert response.status_code == 200 and response.json()["enabled"] is False


def test_an_unknown_rule_is_404(client_of):
    assert (
        client_of.put(prefix() + "/api/alert-rules/futures_nope", {"enabled": False}, format="json").status_code == 404
    )


@pytest.mark.parametrize("body", [{}, {"enabled": "maybe"}, {"enabled": None}])
def test_a_bad_enabled_is_400_naming_it(client_of, body):
    response = client_of.put(prefix() + "/api/alert-rules/futures_big_bull_60", body, format="json")
    assert response.status_code == 400 and [k for k in response.json() if k != "error"] == ["enabled"]


def test_rules_need_a_signed_in_user(anon):
    assert anon.get(prefix() + "/api/alert-rules").status_code == 401


# --- Watchlist ---------------------------------------------------------------------------------------


@pytest.fixture
def universe(db):
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"):
        Symbol.objects.create(symbol=symbol, base_asset=symbol[:-4])


def watchlist(client) -> dict:
    return client.get(prefix() + "/api/watchlist").json()


def test_an_empty_watchlist(client_of):
    assert watchlist(client_of) == {"symbols": [], "count": 0}


def test_post_appends_upper_cased_in_order_without_duplicates(client_of, user, universe):
    for symbol in ("ethusdt", "BTCUSDT", "EthUsdt"):
        response = client_of.post(prefix() + "/api/watchlist", {"symbol": symbol}, format="json")
        assert response.status_code == 200
    assert response.json() == {"symbols": ["ETH", "BTC"], "count": 2}  # the client keys by base asset
    assert watchlist(client_of) == response.json()
    assert compat_user_watchlist(user) == ["ETHUSDT", "BTCUSDT"]


def test_post_of_an_unknown_symbol_is_404_and_of_a_malformed_one_400(client_of, universe):
    assert client_of.post(prefix() + "/api/watchlist", {"symbol": "NOPEUSDT"}, format="json").status_code == 404
    response = client_of.post(prefix() + "/api/watchlist", {"symbol": "BTC/USDT"}, format="json")
    assert response.status_code == 400 and [k for k in response.json() if k != "error"] == ["symbol"]
    response = client_of.post(prefix() + "/api/watchlist", {}, format="json")
    assert response.status_code == 400 and [k for k in response.json() if k != "error"] == ["symbol"]
    assert watchlist(client_of)["count"] == 0


def test_without_a_universe_any_well_formed_symbol_is_accepted(client_of):
    assert not Symbol.objects.exists()
    assert client_of.post(prefix() + "/api/watchlist", {"symbol": "NEWUSDT"}, format="json").json()["symbols"] == [
        "NEW"
    ]
    assert client_of.post(prefix() + "/api/watchlist", {"symbol": "OTHER"}, format="json").json()["symbols"] == [
        "NEW",
        "OTHER",
    ]


def test_delete_by_body_query_or_path(client_of, universe):
    client_of.put(prefix() + "/api/watchlist", {"symbols": ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]}, format="json")
    assert client_of.delete(prefix() + "/api/watchlist", {"symbol": "ethusdt"}, format="json").json()["symbols"] == [
        "BTC",
        "SOL",
        "XRP",
    ]
    assert client_of.delete(prefix() + "/api/watchlist?symbol=BTCUSDT").json()["symbols"] == ["SOL", "XRP"]
    assert client_of.delete(prefix() + "/api/watchlist/solusdt").json() == {"symbols": ["XRP"], "count": 1}
    # Removing a symbol that is not listed changes nothing.
    assert client_of.delete(prefix() + "/api/watchlist?symbol=BTCUSDT").json() == {"symbols": ["XRP"], "count": 1}
    response = client_of.delete(prefix() + "/api/watchlist")
    assert response.status_code == 400 and [k for k in response.json() if k != "error"] == ["symbol"]


def test_put_replaces_validates_and_bounds(client_of, universe):
    response = client_of.put(prefix() + "/api/watchlist", {"symbols": ["solusdt", "BTCUSDT", "SOLUSDT"]}, format="json")
    assert response.json() == {"symbols": ["SOL", "BTC"], "count": 2}

    response = client_of.put(prefix() + "/api/watchlist", {"symbols": ["BTCUSDT", "NOPEUSDT"]}, format="json")
    assert response.status_code == 400 and "NOPEUSDT" in response.json()["symbols"][0]
    response = client_of.put(prefix() + "/api/watchlist", {"symbols": "BTCUSDT"}, format="json")
    assert response.status_code == 400 and [k for k in response.json() if k != "error"] == ["symbols"]
    response = client_of.put(prefix() + "/api/watchlist", {"symbols": ["BTC USDT"]}, format="json")
    assert response.status_code == 400 and [k for k in response.json() if k != "error"] == ["symbols"]
    assert watchlist(client_of)["symbols"] == ["SOL", "BTC"]

    assert client_of.put(prefix() + "/api/watchlist", {"symbols": []}, format="json").json()["count"] == 0


def test_the_watchlist_is_bounded(client_of):
    too_many = [f"S{i:04d}USDT" for i in range(WATCHLIST_MAX + 1)]
    response = client_of.put(prefix() + "/api/watchlist", {"symbols": too_many}, format="json")
    assert response.status_code == 400 and [k for k in response.json() if k != "error"] == ["symbols"]
    assert client_of.put(prefix() + "/api/watchlist", {"symbols": too_many[:-1]}, format="json").status_code == 200
    response = client_of.post(prefix() + "/api/watchlist", {"symbol": "LASTUSDT"}, format="json")
    assert response.status_code == 400 and [k for k in response.json() if k != "error"] == ["symbol"]


def test_watchlists_are_per_user(make_user, signed_in):
    alice, bob = signed_in(make_user("alice@example.com")), signed_in(make_user("bob@example.com"))
    alice.post(prefix() + "/api/watchlist", {"symbol": "BTCUSDT"}, format="json")
    assert watchlist(bob) == {"symbols": [], "count": 0}


def test_the_watchlist_needs_a_signed_in_user(anon):
    assert anon.get(prefix() + "/api/watchlist").status_code == 401
