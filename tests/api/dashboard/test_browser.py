"""The dashboard in Debian's Chromium against a real daphne: every page fills from the API and the alert socket."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.alerts.models import AlertRule
from apps.alerts.notifications.models import Destination
from apps.alerts.services import rules_builtin_seed
from screener_project.kernel.redis_keys import collector_heartbeat_key, indicators_last_key, tick_last_key

from .conftest import hub_subscribed, publish, staff_login
from .seed import (
    MINUTE,
    NOW,
    alert_make,
    alerts_insert,
    candles_insert,
    exchange_clock_set,
    snapshots_write,
    symbols_named,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TIMEFRAME_ROW = {"5m": 0, "15m": 1, "1h": 2, "4h": 3, "8h": 4, "1d": 5}


def row_symbols(page) -> list[str]:
    return page.eval_on_selector_all("#screener-body [data-symbol]", "rows => rows.map(r => r.dataset.symbol)")


def wait_rows(page, count: int) -> None:
    page.wait_for_function("n => document.querySelectorAll('#screener-body [data-symbol]').length === n", arg=count)


def ranked(values, symbols: list[str], field: str, timeframe: str, *, descending: bool) -> list[str]:
    row = values[field][TIMEFRAME_ROW[timeframe]]
    return [symbol for _, symbol in sorted(zip(row, symbols, strict=True), reverse=descending)]


# --- screener -------------------------------------------------------------------------------------------------


def test_screener_table_fills_sorts_filters_and_follows_new_snapshots(page, redis_client):
    symbols = symbols_named(30)
    values = snapshots_write(redis_client, symbols=symbols, minute=NOW, price={"S007USDT": 12345.5})
    page.goto("/?poll=300")
    wait_rows(page, 30)
    # Default order: the day's volume, largest first.
    assert row_symbols(page) == ranked(values, symbols, "volume", "1d", descending=True)
    price = page.locator('[data-symbol="S007USDT"] [role="cell"]').nth(1)
    assert price.text_content() == "12345.5"
    assert page.locator("#clock").text_content() == "11-20 12:01 UTC"

    page.locator('#screener-head [data-key="change_1h"]').click()
    assert row_symbols(page) == ranked(values, symbols, "change_pct", "1h", descending=True)
    page.locator('#screener-head [data-key="change_1h"]').click()
    assert row_symbols(page) == ranked(values, symbols, "change_pct", "1h", descending=False)

    page.fill("#filter-text", "s01")
    wait_rows(page, 10)
    assert sorted(row_symbols(page)) == [f"S01{i}USDT" for i in range(10)]
    page.fill("#filter-text", "")
    page.select_option("#filter-rsi", "lt30")
    oversold = {s for s, rsi in zip(symbols, values["rsi_14"][TIMEFRAME_ROW["1h"]], strict=True) if rsi < 30}
    wait_rows(page, len(oversold))
    assert set(row_symbols(page)) == oversold
    page.select_option("#indicator-tf", "4h")
    oversold_4h = {s for s, rsi in zip(symbols, values["rsi_14"][TIMEFRAME_ROW["4h"]], strict=True) if rsi < 30}
    wait_rows(page, len(oversold_4h))
    assert set(row_symbols(page)) == oversold_4h
    page.select_option("#filter-rsi", "")
    wait_rows(page, 30)

    # A new minute's snapshot reaches the open page by itself, in the order of its new values.
    newer = snapshots_write(redis_client, symbols=symbols, minute=NOW + MINUTE, seed=7, price={"S007USDT": 23456.25})
    page.wait_for_function(
        "() => document.querySelector('[data-symbol=\"S007USDT\"] [role=cell]:nth-child(2)').textContent === '23456.25'"
    )
    assert row_symbols(page) == ranked(newer, symbols, "change_pct", "1h", descending=False)

    page.locator('[data-symbol="S007USDT"]').click()
    page.wait_for_url("**/symbol/S007USDT")


# --- live alert feed ----------------------------------------------------------------------------------------------


def test_published_alert_appears_in_the_feed_within_a_second_and_feed_filters_apply(page, redis_client):
    rules_builtin_seed()
    earlier = alerts_insert(symbol="SOLUSDT", alert_type="bottom_hunter", times=[NOW - MINUTE * 3])[0]
    page.goto("/")
    page.wait_for_selector(f'#feed li[data-id="{earlier.id}"]')
    page.wait_for_function("() => document.querySelector('#socket-state').textContent === 'live'")
    hub_subscribed()

    bull = alert_make(symbol="BTCUSDT", alert_type="pioneer_bull", at=NOW)
    sent = time.perf_counter()
    publish(bull)
    page.wait_for_selector(f'#feed li[data-id="{bull["id"]}"]', timeout=1000)
    print(f"alert on the page {1000 * (time.perf_counter() - sent):.1f} ms after group_send")
    item = page.locator(f'#feed li[data-id="{bull["id"]}"]')
    assert item.locator(".rule").text_content() == "Pioneer Bull"
    assert "bull" in item.get_attribute("class")
    # Newest first.
    assert page.locator("#feed li").first.get_attribute("data-id") == bull["id"]

    page.select_option("#feed-rule", "top_hunter")
    assert page.locator("#feed li").count() == 0
    bear = alert_make(symbol="ETHUSDT", alert_type="top_hunter", at=NOW + MINUTE)
    other = alert_make(symbol="ETHUSDT", alert_type="pioneer_bull", at=NOW + MINUTE)
    publish(other)
    publish(bear)
    page.wait_for_selector(f'#feed li[data-id="{bear["id"]}"]', timeout=1000)
    assert page.locator("#feed li").count() == 1

    page.select_option("#feed-rule", "")
    page.fill("#feed-symbol", "eth")
    page.wait_for_function("() => document.querySelectorAll('#feed li').length === 2")
    assert {page.locator("#feed li").nth(i).get_attribute("data-id") for i in range(2)} == {bear["id"], other["id"]}
    page.fill("#feed-symbol", "")
    page.wait_for_function("() => document.querySelectorAll('#feed li').length === 4")


def test_desktop_notification_and_sound_follow_the_switches(page, browser, server, redis_client):
    rules_builtin_seed()
    page.context.grant_permissions(["notifications"], origin=server)
    page.add_init_script(
        """
        window.shown = [];
        window.Notification = class { constructor(title, options) { window.shown.push(title); } };
        window.Notification.permission = "granted";
        window.Notification.requestPermission = async () => "granted";
        """
    )
    page.goto("/")
    page.wait_for_function("() => document.querySelector('#socket-state').textContent === 'live'")
    hub_subscribed()
    page.check("#feed-notify")
    page.check("#feed-sound")
    publish(alert_make(symbol="BTCUSDT", alert_type="pioneer_bull", at=NOW))
    page.wait_for_function("() => window.shown.length === 1")
    assert page.evaluate("window.shown") == ["BTCUSDT · Pioneer Bull"]
    page.uncheck("#feed-notify")
    quiet = alert_make(symbol="ETHUSDT", alert_type="pioneer_bull", at=NOW)
    publish(quiet)
    page.wait_for_selector(f'#feed li[data-id="{quiet["id"]}"]')
    assert page.evaluate("window.shown") == ["BTCUSDT · Pioneer Bull"]
    # The choices survive a reload.
    page.reload()
    page.wait_for_function("() => document.querySelector('#feed-sound').checked")
    assert not page.is_checked("#feed-notify")


# --- symbol view ----------------------------------------------------------------------------------------------


STEPS = {"1m": 1, "5m": 5, "15m": 15, "1h": 60, "4h": 240, "8h": 480, "1d": 1440}


def test_symbol_chart_draws_bars_for_each_interval_with_alert_markers(page, redis_client):
    rules_builtin_seed()
    minutes = 3 * 1440
    candles_insert(symbol="BTCUSDT", end=NOW, minutes=minutes)
    snapshots_write(redis_client, symbols=["BTCUSDT", "ETHUSDT"], minute=NOW)
    fired = alerts_insert(symbol="BTCUSDT", alert_type="pioneer_bull", times=[NOW - MINUTE * 9])[0]
    alerts_insert(symbol="ETHUSDT", alert_type="pioneer_bull", times=[NOW - MINUTE * 9])
    page.goto("/symbol/BTCUSDT")
    page.wait_for_selector("#metrics tbody tr >> nth=5")
    assert [page.locator("#metrics tbody tr").nth(i).get_attribute("data-tf") for i in range(6)] == list(TIMEFRAME_ROW)
    assert page.locator("#sym-alerts li").count() == 1
    assert page.locator("#sym-alerts li").first.get_attribute("data-id") == str(fired.id)

    first_open = NOW - MINUTE * (minutes - 1)
    for interval, step in STEPS.items():
        page.click(f'button[data-interval="{interval}"]')
        # Bars on UTC boundaries over the stored minutes, at most the 160 the page asks for.
        epoch_minutes = [int((first_open + MINUTE * i).timestamp() // 60) for i in range(minutes)]
        expected = min(160, len({m // step for m in epoch_minutes}))
        page.wait_for_function(
            "([iv, n]) => { const c = document.querySelector('#chart');"
            " return c.dataset.interval === iv && c.querySelectorAll('rect.bar').length === n; }",
            arg=[interval, expected],
        )
        assert page.locator("#chart line.wick").count() == expected
        # The alert fired at the close of minute NOW - 10 min: one marker, on the bar holding that minute.
        assert page.locator("#chart path.marker.bull").count() == 1, interval
        minute = int((NOW - MINUTE * 10).timestamp() // 60)
        bar_open = datetime.fromtimestamp(minute // step * step * 60, tz=UTC)
        marked = page.locator("#chart path.marker").get_attribute("data-time")
        assert marked == bar_open.isoformat().replace("+00:00", "Z"), interval

    # A live alert for the symbol joins the list.
    hub_subscribed()
    live = alert_make(symbol="BTCUSDT", alert_type="pioneer_bull", at=NOW)
    publish(live)
    page.wait_for_selector(f'#sym-alerts li[data-id="{live["id"]}"]')


def test_symbol_page_for_an_unknown_symbol_says_so(page):
    page.goto("/symbol/NOPEUSDT")
    page.wait_for_selector("text=NOPEUSDT is not a symbol this screener knows.")
    # The API's 404s, which the browser logs; nothing else.
    assert page.script_errors and all("404" in error for error in page.script_errors)
    page.script_errors.clear()


# --- alert history --------------------------------------------------------------------------------------------


def test_history_pages_and_filters(page):
    rules_builtin_seed()
    btc = alerts_insert(symbol="BTCUSDT", alert_type="pioneer_bull", times=[NOW - MINUTE * 2 * k for k in range(70)])
    odd_minutes = [NOW - MINUTE * (2 * k + 1) for k in range(50)]
    eth = alerts_insert(symbol="ETHUSDT", alert_type="top_hunter", times=odd_minutes)
    newest_first = sorted(btc + eth, key=lambda a: a.triggered_at, reverse=True)
    page.goto("/history")
    page.wait_for_function("() => document.querySelectorAll('#hist tbody tr').length === 50")
    assert page.locator("#hist-range").text_content() == "1–50 of 120"
    assert page.is_disabled("#hist-prev")
    ids = lambda: page.eval_on_selector_all("#hist tbody tr", "rows => rows.map(r => r.dataset.id)")  # noqa: E731
    assert ids() == [str(a.id) for a in newest_first[:50]]

    page.click("#hist-next")
    page.wait_for_function("() => document.querySelector('#hist-range').textContent === '51–100 of 120'")
    assert ids() == [str(a.id) for a in newest_first[50:100]]
    page.click("#hist-next")
    page.wait_for_function("() => document.querySelector('#hist-range').textContent === '101–120 of 120'")
    assert page.is_disabled("#hist-next")
    page.go_back()  # the page is in the address: back shows the previous page
    page.wait_for_function("() => document.querySelector('#hist-range').textContent === '51–100 of 120'")

    page.fill("#hist-form [name=symbol]", "ethusdt")
    page.select_option("#hist-form [name=limit]", "25")
    page.click("#hist-form button[type=submit]")
    page.wait_for_function("() => document.querySelector('#hist-range').textContent === '1–25 of 50'")
    assert "symbol=ETHUSDT" in page.url
    assert set(page.eval_on_selector_all("#hist tbody tr td:nth-child(2)", "c => c.map(x => x.textContent)")) == {
        "ETHUSDT"
    }

    page.fill("#hist-form [name=symbol]", "")
    page.select_option("#hist-form [name=type]", "pioneer_bull")
    page.fill("#hist-form [name=since]", (NOW - MINUTE * 20).strftime("%Y-%m-%dT%H:%M"))
    page.click("#hist-form button[type=submit]")
    # Minutes 0, 2, ..., 20 before NOW: eleven BTC alerts.
    page.wait_for_function("() => document.querySelector('#hist-range').textContent === '1–11 of 11'")
    page.click("#hist-form button[type=reset]")
    page.wait_for_function("() => document.querySelector('#hist-range').textContent === '1–25 of 120'")


# --- rules ----------------------------------------------------------------------------------------------------


def test_rules_show_conditions_enabled_state_and_counts_over_the_exchange_day(page, redis_client):
    rules_builtin_seed()
    AlertRule.objects.filter(rule_type="bull_whale").update(enabled=False)
    exchange_clock_set(redis_client, NOW)
    alerts_insert(symbol="BTCUSDT", alert_type="pioneer_bull", times=[NOW - MINUTE * k for k in (1, 2, 3)])
    alerts_insert(symbol="BTCUSDT", alert_type="top_hunter", times=[NOW - timedelta(hours=30)])
    page.goto("/rules")
    rules = AlertRule.objects.order_by("id")
    page.wait_for_function("n => document.querySelectorAll('#rules .card').length === n", arg=rules.count())
    pioneer = page.locator('[data-rule="pioneer_bull"]')
    assert pioneer.locator(".count").text_content() == "3"
    assert page.locator('[data-rule="top_hunter"] .count').text_content() == "0"
    condition = AlertRule.objects.get(rule_type="pioneer_bull").conditions[0]
    assert condition in pioneer.locator("code").text_content()
    assert "disabled" in page.locator('[data-rule="bull_whale"]').get_attribute("class")
    assert page.locator('[data-rule="bull_whale"] .badge').text_content() == "disabled"
    assert page.locator("#rules-total").text_content().endswith("3 alerts in 24 h")


# --- feed health ----------------------------------------------------------------------------------------------


def health_signals(redis_client, *, now_ms: int, exchange_ms: int, tick_minute_ms: int) -> None:
    import json

    redis_client.hset(
        collector_heartbeat_key(),
        "0",
        json.dumps({"ts_ms": now_ms, "last_event_ms": exchange_ms, "symbols": 3, "state": "live", "connections": 1}),
    )
    redis_client.set(tick_last_key(), json.dumps({"minute_ms": tick_minute_ms, "finished_ms": now_ms}))
    redis_client.set(indicators_last_key(), json.dumps({"minute_ms": tick_minute_ms, "finished_ms": now_ms}))


def test_feed_health_shows_services_tick_lag_and_gaps_and_staff_see_paused_destinations(page, server, redis_client):
    now_ms = int(time.time() * 1000)
    exchange_ms = int((NOW + MINUTE + timedelta(seconds=20)).timestamp() * 1000)
    health_signals(redis_client, now_ms=now_ms, exchange_ms=exchange_ms, tick_minute_ms=int(NOW.timestamp() * 1000))
    candles_insert(symbol="BTCUSDT", end=NOW, minutes=90)
    candles_insert(symbol="ETHUSDT", end=NOW, minutes=90, missing=frozenset({5, 6, 7}))
    Destination.objects.create(
        name="desk discord",
        kind="discord",
        url="https://discord.com/api/webhooks/1/x",
        paused_at=timezone.now(),
        paused_reason="401 Unauthorized",
    )
    staff_login(page, server, get_user_model().objects.create_user("ops", password="x", is_staff=True))
    page.goto("/feed")
    page.wait_for_function("() => document.querySelectorAll('#services .tile').length === 5")
    assert page.locator('[data-service="data_collector"] .state').text_content() == "up"
    facts = page.locator("#health-details").text_content()
    assert "Last tick minute11-20 12:00 UTC" in facts
    # The feed is at 12:01:20 on the exchange's clock, the tick finished minute 12:00 (closing 12:01): 20 s behind.
    assert "Tick lag behind the feed20.0 s of exchange time" in facts
    page.wait_for_function("() => document.querySelectorAll('#gaps tbody tr').length === 2")
    first = page.locator("#gaps tbody tr").first
    assert first.get_attribute("data-symbol") == "ETHUSDT"
    assert first.locator("td").nth(2).text_content() == "3"
    page.wait_for_selector('#paused tbody tr >> text="desk discord"')
    assert page.locator("#paused tbody tr td").nth(4).text_content() == "401 Unauthorized"


def test_feed_health_without_details_shows_status_only(page):
    # An anonymous caller may get only the status and the services: the page shows those and nothing breaks.
    page.route(
        "**/api/health",
        lambda route: route.fulfill(
            status=200,
            content_type="application/json",
            body='{"status": "degraded", "services": {"data_collector": "stale", "metrics_calculator": "up",'
            ' "alert_engine": "up", "database": "up", "redis": "up"}, "timestamp": "2025-11-20T12:00:00Z"}',
        ),
    )
    page.goto("/feed")
    page.wait_for_function("() => document.querySelector('#health-status').textContent === 'degraded'")
    assert page.locator('[data-service="data_collector"] .state').text_content() == "stale"
    assert page.locator("#health-details dt").count() == 0
    assert page.locator("#paused-panel").count() == 0
