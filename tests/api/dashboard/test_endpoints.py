"""The dashboard's pages and its read-only endpoints, through Django's test client on the real PostgreSQL and Redis."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from apps.alerts.notifications.models import Destination
from apps.alerts.services import rules_builtin_seed
from apps.api.dashboard.selectors import SCREENER_COLUMNS
from apps.collector.models import Symbol
from screener_project.kernel.redis_keys import snapshot_key

from .seed import MINUTE, NOW, alerts_insert, candles_insert, exchange_clock_set, snapshots_write, symbols_named

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(client):
    client.defaults["HTTP_HOST"] = "localhost"
    return client


# --- pages ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/symbol/btcusdt", "/history", "/rules", "/feed"])
def test_pages_render_with_only_local_assets_which_are_served(api, path):
    page = api.get(path)
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:href|src)="([^"]+\.(?:css|js))"', html)
    assert assets and all(asset.startswith("/static/dashboard/") for asset in assets)
    for asset in assets:
        assert api.get(asset).status_code == 200, asset
    assert "http://" not in html and "https://" not in html


def test_every_script_imports_only_its_siblings(api):
    # No CDN and no bundler: modules load one another by relative path from the same static directory.
    for name in ("common", "screener", "symbol", "chart", "history", "rules", "feed"):
        source = b"".join(api.get(f"/static/dashboard/{name}.js").streaming_content).decode()
        imports = re.findall(r'from "([^"]+)"', source)
        assert all(re.fullmatch(r"\./[a-z]+\.js", found) for found in imports), (name, imports)


def test_symbol_page_upper_cases_and_refuses_a_non_symbol(api):
    assert 'data-symbol="ETHUSDT"' in api.get("/symbol/ethusdt").content.decode()
    assert api.get("/symbol/not-a-symbol!").status_code == 404


def test_staff_see_the_paused_destinations_panel_others_do_not(api):
    assert 'id="paused-panel"' not in api.get("/feed").content.decode()
    staff = get_user_model().objects.create_user("ops", password="x", is_staff=True)
    api.force_login(staff)
    assert 'id="paused-panel"' in api.get("/feed").content.decode()


def test_admin_view_site_leads_to_the_dashboard(api):
    staff = get_user_model().objects.create_superuser("root", password="x")
    api.force_login(staff)
    admin = api.get("/admin/").content.decode()
    assert 'href="/"' in admin
    assert api.get("/").status_code == 200


# --- GET /api/screener -------------------------------------------------------------------------------------------


def test_screener_returns_every_symbol_as_one_row_in_column_order(api, redis_client):
    symbols = symbols_named(40)
    values = snapshots_write(redis_client, symbols=symbols, minute=NOW)
    body = api.get("/api/screener").json()
    assert body["count"] == 40 and body["columns"] == list(SCREENER_COLUMNS)
    assert body["timestamp"] == "2025-11-20T12:01:00Z"
    rows = {row[0]: dict(zip(body["columns"], row, strict=True)) for row in body["rows"]}
    assert list(rows) == sorted(symbols)
    i = symbols.index("S017USDT")
    row = rows["S017USDT"]
    assert row["price"] == pytest.approx(values["close"][0, i])
    # WINDOWS order: 5m, 15m, 1h, 4h, 8h, 1d.
    assert row["change_1h"] == pytest.approx(values["change_pct"][2, i])
    assert row["volume_1d"] == pytest.approx(values["volume"][5, i])
    assert row["vcp_4h"] == pytest.approx(values["vcp"][3, i])
    assert row["rsi_15m"] == pytest.approx(values["rsi_14"][1, i])


def test_screener_answers_304_until_a_newer_snapshot_is_written(api, redis_client):
    symbols = symbols_named(5)
    snapshots_write(redis_client, symbols=symbols, minute=NOW)
    first = api.get("/api/screener")
    etag = first.headers["ETag"]
    again = api.get("/api/screener", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b""
    snapshots_write(redis_client, symbols=symbols, minute=NOW + MINUTE, seed=1)
    changed = api.get("/api/screener", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert changed.json()["timestamp"] == "2025-11-20T12:02:00Z"


def test_screener_without_snapshots_is_an_empty_table(api, redis_client):
    body = api.get("/api/screener").json()
    assert body == {"timestamp": None, "columns": list(SCREENER_COLUMNS), "rows": [], "count": 0}


def test_screener_leaves_out_an_unreadable_snapshot(api, redis_client):
    snapshots_write(redis_client, symbols=["AAAUSDT", "BBBUSDT"], minute=NOW)
    redis_client.hset(snapshot_key(), "BBBUSDT", b"{not json")
    assert [row[0] for row in api.get("/api/screener").json()["rows"]] == ["AAAUSDT"]


# --- GET /api/alerts/counts ------------------------------------------------------------------------------------


def test_alert_counts_cover_the_24_hours_before_the_exchange_clock(api, redis_client):
    rules_builtin_seed()
    exchange_clock_set(redis_client, NOW)
    alerts_insert(symbol="BTCUSDT", alert_type="pioneer_bull", times=[NOW - MINUTE * k for k in (0, 5, 60 * 23)])
    alerts_insert(symbol="ETHUSDT", alert_type="pioneer_bull", times=[NOW - MINUTE * 60 * 25])  # too old
    alerts_insert(symbol="ETHUSDT", alert_type="top_hunter", times=[NOW - MINUTE * 30])
    alerts_insert(symbol="ETHUSDT", alert_type="top_hunter", times=[NOW + MINUTE])  # after the clock
    body = api.get("/api/alerts/counts").json()
    assert body["counts"] == {"pioneer_bull": 3, "top_hunter": 1}
    assert body["total"] == 4
    assert (body["since"], body["until"]) == ("2025-11-19T12:00:00Z", "2025-11-20T12:00:00Z")
    assert api.get("/api/alerts/counts?hours=1").json()["counts"] == {"pioneer_bull": 2, "top_hunter": 1}


def test_alert_counts_without_a_collector_use_the_wall_clock(api, redis_client):
    alerts_insert(symbol="BTCUSDT", alert_type="pioneer_bull", times=[timezone.now() - MINUTE])
    assert api.get("/api/alerts/counts").json()["counts"] == {"pioneer_bull": 1}


@pytest.mark.parametrize("hours", ["0", "49", "x"])
def test_alert_counts_refuse_a_bad_window_naming_the_field(api, hours):
    answer = api.get(f"/api/alerts/counts?hours={hours}")
    assert answer.status_code == 400 and "hours" in answer.json()


# --- GET /api/feed -----------------------------------------------------------------------------------------------


def test_feed_counts_missing_and_behind_minutes_per_symbol(api):
    candles_insert(symbol="BTCUSDT", end=NOW, minutes=120)
    candles_insert(symbol="ETHUSDT", end=NOW, minutes=120, missing=frozenset({10, 11, 12, 50}))
    candles_insert(symbol="SOLUSDT", end=NOW - MINUTE * 3, minutes=60)
    Symbol.objects.create(symbol="NEWUSDT")
    body = api.get("/api/feed?hours=1").json()
    rows = {row["symbol"]: row for row in body["symbols"]}
    assert body["newest"] == "2025-11-20T12:00:00Z" and body["hours"] == 1
    assert rows["BTCUSDT"] | {} == {
        "symbol": "BTCUSDT",
        "candles": 60,
        "missing": 0,
        "behind": 0,
        "last": "2025-11-20T12:00:00Z",
    }
    assert (rows["ETHUSDT"]["candles"], rows["ETHUSDT"]["missing"], rows["ETHUSDT"]["behind"]) == (56, 4, 0)
    # Three minutes behind the newest: 57 of the hour's candles, the last three counted missing.
    assert (rows["SOLUSDT"]["candles"], rows["SOLUSDT"]["missing"], rows["SOLUSDT"]["behind"]) == (57, 3, 3)
    assert rows["NEWUSDT"] == {"symbol": "NEWUSDT", "candles": 0, "missing": None, "behind": None, "last": None}
    assert body["with_gaps"] == 2
    assert "paused_destinations" not in body


def test_feed_shows_paused_destinations_to_staff_only(api):
    Destination.objects.create(
        name="ops discord",
        kind="discord",
        url="https://discord.com/api/webhooks/1/x",
        paused_at=timezone.now(),
        paused_reason="404 Not Found",
    )
    assert "paused_destinations" not in api.get("/api/feed").json()
    api.force_login(get_user_model().objects.create_user("viewer", password="x"))
    assert "paused_destinations" not in api.get("/api/feed").json()
    api.force_login(get_user_model().objects.create_user("ops", password="x", is_staff=True))
    paused = api.get("/api/feed").json()["paused_destinations"]
    assert [(d["name"], d["reason"]) for d in paused] == [("ops discord", "404 Not Found")]


def test_feed_on_an_empty_database(api):
    assert api.get("/api/feed").json() == {"newest": None, "hours": 24, "symbols": [], "with_gaps": 0}


# --- schema --------------------------------------------------------------------------------------------------


def test_new_endpoints_are_in_the_openapi_schema_without_warnings(tmp_path):
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "schema.yaml"))
    schema = (tmp_path / "schema.yaml").read_text()
    for path in ("/api/screener:", "/api/alerts/counts:", "/api/feed:"):
        assert path in schema
