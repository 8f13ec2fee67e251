"""The rule admin: edits validated with messages naming the bad part, and applied at the next evaluation."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from apps.alerts.engine import rule_context, rules_evaluate, rules_load
from apps.alerts.models import AlertHistory, AlertRule, UserSettings
from apps.metrics.windows import window_metrics

from .factories import Segment, block_of, candles_from_segments

pytestmark = pytest.mark.django_db


def form_data(rule: AlertRule, **changes) -> dict:
    data = {
        "rule_type": rule.rule_type,
        "name": rule.name,
        "description": rule.description,
        "category": rule.category,
        "timeframe": rule.timeframe,
        "enabled": "on" if rule.enabled else "",
        "cooldown_minutes": rule.cooldown_minutes,
        "parameters": json.dumps(rule.parameters),
        "conditions": "\n".join(rule.conditions),
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


def change(admin_client, rule: AlertRule, **changes):
    url = reverse("admin:alerts_alertrule_change", args=[rule.pk])
    return admin_client.post(url, form_data(rule, **changes))


def errors_of(response) -> dict[str, list[str]]:
    form = response.context["adminform"].form
    return {name: [str(e) for e in errors] for name, errors in form.errors.items()}


def pioneer_fired() -> bool:
    # change_5m 0.9, change_15m 1.4: pioneer_bull holds only once its 5m threshold drops below 0.9.
    sequence = candles_from_segments([Segment(10, 0.5, 1000), Segment(5, 0.9, 2100)])
    block = block_of([sequence])
    fired = rules_evaluate(rules_load(), rule_context(candles=block, metrics=window_metrics(block)))
    return bool(fired.get("pioneer_bull", [False])[0])


def test_change_form_shows_conditions_one_per_line(admin_client):
    rule = AlertRule.objects.get(rule_type="bull_volume")
    response = admin_client.get(reverse("admin:alerts_alertrule_change", args=[rule.pk]))
    assert response.status_code == 200
    assert "min_n(body, consecutive_candles) &gt; 0\n" in response.content.decode()


def test_parameter_edit_changes_the_next_evaluation(admin_client):
    rule = AlertRule.objects.get(rule_type="pioneer_bull")
    assert not pioneer_fired()
    response = change(admin_client, rule, parameters=json.dumps({**rule.parameters, "change_5m_min": 0.8}))
    assert response.status_code == 302
    assert pioneer_fired()
    rule.refresh_from_db()
    response = change(admin_client, rule, enabled="")
    assert response.status_code == 302
    assert not pioneer_fired()


def test_condition_edit_changes_the_next_evaluation(admin_client):
    rule = AlertRule.objects.get(rule_type="pioneer_bull")
    edited = "\n".join(c.replace("change_5m > change_5m_min", "change_5m > 0.85") for c in rule.conditions)
    assert change(admin_client, rule, conditions=edited).status_code == 302
    assert pioneer_fired()


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"conditions": "change_1h > change_1h_min\nchnage_5m > 1"}, "conditions", "unknown name 'chnage_5m'"),
        ({"conditions": "change_1h >> 1"}, "conditions", "'>>'"),
        ({"conditions": "__import__('os').system('x') > 1"}, "conditions", "unknown function"),
        ({"conditions": "change_1h == 1"}, "conditions", "'=='"),
        ({"conditions": "max_n(range_pct, minutes) < 1"}, "conditions", "unknown name 'minutes'"),
        ({"conditions": "change_1h > 1\nrsi_14_2h < 30"}, "conditions", "unknown name 'rsi_14_2h'"),
        ({"conditions": "rsi_15_1h < 30"}, "conditions", "unknown name 'rsi_15_1h'"),
        ({"parameters": '{"rsi_14_1h": 30}'}, "parameters", "would hide the metric"),
        ({"conditions": "min_n(body, 2000) > 0"}, "conditions", "from 1 to 1440"),
        ({"conditions": "  \n "}, "conditions", "at least one condition"),
        ({"parameters": '{"change_1h_min": "high"}'}, "parameters", "parameter 'change_1h_min' must be a finite"),
        ({"parameters": '{"vol_1h": 3}'}, "parameters", "would hide the metric"),
        ({"parameters": "[1, 2]"}, "parameters", "must be an object"),
        ({"parameters": "{not json"}, "parameters", "JSON"),
        ({"timeframe": "2h"}, "timeframe", "2h"),
        ({"cooldown_minutes": "-1"}, "cooldown_minutes", ""),
        ({"cooldown_minutes": "5000"}, "cooldown_minutes", "At most 1440"),
    ],
)
def test_invalid_edit_is_refused_naming_the_field_and_token(admin_client, changes, field, fragment):
    rule = AlertRule.objects.get(rule_type="big_bull_60m")
    before = (rule.parameters, rule.conditions, rule.timeframe, rule.cooldown_minutes)
    response = change(admin_client, rule, **changes)
    assert response.status_code == 200
    errors = errors_of(response)
    assert field in errors, errors
    assert any(fragment in message for message in errors[field]), errors[field]
    rule.refresh_from_db()
    assert (rule.parameters, rule.conditions, rule.timeframe, rule.cooldown_minutes) == before


def test_compose_a_new_rule_without_code(admin_client):
    response = admin_client.post(
        reverse("admin:alerts_alertrule_add"),
        {
            "rule_type": "quiet_climb",
            "name": "Quiet Climb",
            "category": "bull",
            "timeframe": "15m",
            "enabled": "on",
            "cooldown_minutes": 10,
            "parameters": '{"rise": 1.0}',
            "conditions": "change_15m > rise\nmax_n(range_pct, 15) < 0.01\nvcp_15m > 0",
        },
    )
    assert response.status_code == 302
    rule = AlertRule.objects.get(rule_type="quiet_climb")
    assert rule.conditions == ["change_15m > rise", "max_n(range_pct, 15) < 0.01", "vcp_15m > 0"]
    assert not rule.is_builtin
    climb = candles_from_segments([Segment(15, 1.4, 1000)])
    flat = candles_from_segments([Segment(15, 0.2, 1000)])
    block = block_of([climb, flat])
    fired = rules_evaluate(rules_load(), rule_context(candles=block, metrics=window_metrics(block)))
    assert fired["quiet_climb"].tolist() == [True, False]


def test_a_rule_naming_indicators_is_accepted_and_knows_its_timeframes(admin_client):
    response = admin_client.post(
        reverse("admin:alerts_alertrule_add"),
        {
            "rule_type": "oversold_bounce",
            "name": "Oversold Bounce",
            "category": "bull",
            "timeframe": "1h",
            "enabled": "on",
            "cooldown_minutes": 30,
            "parameters": '{"oversold": 30}',
            "conditions": "rsi_14_1h < oversold\nmacd_hist_15m > 0\nclose < bb_lower_4h",
        },
    )
    assert response.status_code == 302
    (rule,) = [r for r in rules_load() if r.rule_type == "oversold_bounce"]
    assert rule.indicator_timeframes == ("15m", "1h", "4h")
    assert rule.inputs == ("rsi_14_1h", "macd_hist_15m", "close", "bb_lower_4h")


def test_builtin_rule_type_is_read_only_and_not_deletable(admin_client):
    rule = AlertRule.objects.get(rule_type="flat_8h")
    assert change(admin_client, rule, rule_type="flat_9h").status_code == 302
    rule.refresh_from_db()
    assert rule.rule_type == "flat_8h"
    response = admin_client.post(reverse("admin:alerts_alertrule_delete", args=[rule.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert AlertRule.objects.filter(rule_type="flat_8h").exists()


def test_reset_action_restores_defaults(admin_client):
    rule = AlertRule.objects.get(rule_type="flat_1m")
    AlertRule.objects.filter(pk=rule.pk).update(parameters={"volatility_threshold": 0.5, "duration_minutes": 3})
    admin_client.post(
        reverse("admin:alerts_alertrule_changelist"), {"action": "rules_reset", "_selected_action": [rule.pk]}
    )
    rule.refresh_from_db()
    assert rule.parameters == {"volatility_threshold": 0.001, "duration_minutes": 10}


def test_user_settings_admin_lists_settings(admin_client):
    UserSettings.objects.create(user_id="user-1", selected_alerts=["flat_1m"])
    response = admin_client.get(reverse("admin:alerts_usersettings_changelist"))
    assert response.status_code == 200
    assert "user-1" in response.content.decode()


def test_admin_edit_applies_at_the_next_minute_tick(admin_client, redis_client):
    """Through the tick's own shard pass: a threshold edited between two minutes changes the second one."""
    from apps.alerts.tick import shard_tick_run
    from apps.collector.candles import FIELDS, MINUTE_MS, Candle
    from apps.collector.store import active_symbols_set, candles_store

    symbol, t = "FLATUSDT", 1_800_000_000_000 // MINUTE_MS * MINUTE_MS
    # Flat candles whose range is 0.0012 of the price: above flat_1m's default 0.001.
    sequence = candles_from_segments([Segment(12, 0, 1000, wick=0.0006)])
    candles = []
    for m in range(sequence.shape[1]):
        row = dict(zip(FIELDS, sequence[:, m].tolist(), strict=True))
        row["open_time"], row["trades"] = t - (10 - m) * MINUTE_MS, int(row["trades"])
        candles.append(Candle(symbol=symbol, **row))
    active_symbols_set(redis_client, [symbol])
    candles_store(redis_client, candles, mark_closed=False)

    def tick(minute: int) -> set[str]:
        shard_tick_run(
            redis_client,
            minute_ms=minute,
            shard=0,
            symbols=[symbol],
            received_ms=minute + MINUTE_MS,
            enqueue_indicators=lambda *args: None,
        )
        opened = {
            a.alert_type
            for a in AlertHistory.objects.filter(symbol=symbol)
            if a.triggered_at.timestamp() * 1000 == minute + MINUTE_MS
        }
        return opened

    assert "flat_1m" not in tick(t)
    rule = AlertRule.objects.get(rule_type="flat_1m")
    parameters = {**rule.parameters, "volatility_threshold": 0.0015}
    assert change(admin_client, rule, parameters=json.dumps(parameters)).status_code == 302
    assert "flat_1m" in tick(t + MINUTE_MS)
