"""GET {p}/api/alerts (apps/api/compat/README.md): fired alerts in the client's shape, with its rule ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from apps.alerts.models import AlertHistory, AlertRule
from apps.alerts.services import rules_builtin_seed

pytestmark = pytest.mark.django_db

P = f"/{settings.COMPAT_PREFIX}"
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
FIRED = [("BTCUSDT", "pioneer_bull"), ("ETHUSDT", "big_bull_60m"), ("BTCUSDT", "top_hunter"), ("SOLUSDT", "flat_8h")]


@pytest.fixture
def fired(settings) -> list[AlertHistory]:
    # flat_8h has no switch in the client: shown here only because the operator sends every rule (the default
    # leaves it out; see test_client_contract).
    settings.COMPAT_SEND_ALL_RULES = True
    rules_builtin_seed()
    return [
        AlertHistory.objects.create(
            triggered_at=T0 + timedelta(minutes=n),
            symbol=symbol,
            alert_type=alert_type,
            timeframe="5m",
            price=100.5 + n,
            volume=1e6,
            change_pct=1.5,
            metadata={"n": n},
        )
        for n, (symbol, alert_type) in enumerate(FIRED)
    ]


def get(**params):
    return APIClient().get(f"{P}/api/alerts", params)


def test_alerts_are_a_bare_array_newest_first_in_the_client_shape(fired):
    response = get()
    assert response.status_code == 200
    body = response.json()
    assert [alert["metadata"]["n"] for alert in body] == [3, 2, 1, 0]
    eth = next(alert for alert in fired if alert.symbol == "ETHUSDT")
    rule = AlertRule.objects.get(rule_type="big_bull_60m")
    assert body[2] == {
        "id": str(eth.id),
        "symbol": "ETHUSDT",
        "rule_type": "futures_big_bull_60",
        "description": rule.description or rule.name,
        "timestamp": "2026-11-20T10:01:00Z",
        "price": 101.5,
        "metadata": {"n": 1},
    }
    assert [alert["rule_type"] for alert in body] == [
        "futures_flat_8h",
        "futures_top_hunter",
        "futures_big_bull_60",
        "futures_pioneer_bull",
    ]


def test_description_follows_the_rule_and_falls_back_to_its_name(fired):
    AlertRule.objects.filter(rule_type="top_hunter").update(description="", name="Top Hunter")
    AlertRule.objects.filter(rule_type="flat_8h").update(description="Eight quiet hours")
    body = get().json()
    assert body[0]["description"] == "Eight quiet hours" and body[1]["description"] == "Top Hunter"


def test_rule_type_filter_takes_the_client_ids_and_plain_rule_types(fired):
    assert [a["symbol"] for a in get(rule_type="futures_big_bull_60").json()] == ["ETHUSDT"]
    assert [a["symbol"] for a in get(rule_type="futures_flat_8h").json()] == ["SOLUSDT"]
    assert [a["symbol"] for a in get(rule_type="top_hunter").json()] == ["BTCUSDT"]
    assert get(rule_type="futures_no_such_rule").json() == []


def test_symbol_since_and_limit_filter(fired):
    assert [a["metadata"]["n"] for a in get(symbol="btcusdt").json()] == [2, 0]
    assert [a["metadata"]["n"] for a in get(since="2026-11-20T10:02:00Z").json()] == [3, 2]
    since_ms = int((T0 + timedelta(minutes=2)).timestamp() * 1000)
    assert [a["metadata"]["n"] for a in get(since=str(since_ms)).json()] == [3, 2]
    assert [a["metadata"]["n"] for a in get(since="2026-11-20T10:02:00").json()] == [3, 2]  # naive = UTC
    assert [a["metadata"]["n"] for a in get(limit=2).json()] == [3, 2]
    assert len(get(limit=2000).json()) == 4


def test_empty_parameters_mean_absent(fired):
    assert len(get(symbol="", rule_type="", since="", limit="").json()) == 4


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "2001"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"since": "99999999999999999999"}, "since"),
        ({"symbol": "BTC-USDT"}, "symbol"),
        ({"symbol": "X" * 40}, "symbol"),
        ({"rule_type": "futures_Bad Rule!"}, "rule_type"),
    ],
)
def test_bad_parameters_get_400_naming_the_field(params, field):
    response = get(**params)
    assert response.status_code == 400
    assert field in response.json()
