"""Each built-in rule on the smallest candle sequence that fires it, and on the same missing one threshold by a hair.

The rules come from the database as seeded (their defaults, docs/rules.md). Every scenario is a right-aligned row of one
(fields, rows, 1440) block, so the tests also exercise evaluation of many rows at once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from apps.alerts.builtin_rules import BUILTIN_RULES
from apps.alerts.engine import rule_context, rules_evaluate, rules_load
from apps.metrics.windows import window_metrics

from .factories import Segment, block_of, candles_from_segments

HAIR = 1e-6
# Volumes at which the whale and volume rules sit exactly on their >= thresholds (see the scenarios below).
WHALE_VOLUME = 3 * 1439 * 1000 / (1440 - 3)
VOLUME_RUN = 2.5 * 57 * 1000 / 60 / (1 - 2.5 * 3 / 60)


def _big_60m(k: int, sign: int) -> list[Segment]:
    # change_1h around 1.6; 8h and 1d keep rising; vol_1h 0.9M, vol_8h 5.1M, vol_1d 9.9M.
    return [
        Segment(960, sign * 1, 5000),
        Segment(420, sign * 1, 10000),
        Segment(60, sign * 1.6 * (1 + k * HAIR), 15000),
    ]


def _pioneer(k: int, sign: int) -> list[Segment]:
    # change_5m around 1, change_15m about 1.5; vol_5m 10.5k of vol_15m 20.5k.
    return [Segment(10, sign * 0.5, 1000), Segment(5, sign * 1 * (1 + k * HAIR), 2100)]


def _big_5m(k: int, sign: int) -> list[Segment]:
    # change_5m around 0.6 < change_15m 0.9 < change_1h 1.4; vol_5m 200k, vol_15m 400k, vol_1h 1.075M, vol_8h 5.3M.
    return [
        Segment(1380, 0, 10000),
        Segment(45, sign * 0.5, 15000),
        Segment(10, sign * 0.3, 20000),
        Segment(5, sign * 0.6 * (1 + k * HAIR), 40000),
    ]


def _big_15m(k: int, sign: int) -> list[Segment]:
    # change_15m around 1 < change_1h 1.5 < change_8h 2.0; vol_15m 450k, vol_1h 1.125M, vol_8h 5.3M.
    return [
        Segment(960, 0, 10000),
        Segment(420, sign * 0.5, 10000),
        Segment(45, sign * 0.5, 15000),
        Segment(15, sign * 1 * (1 + k * HAIR), 30000),
    ]


def _hunter(k: int, sign: int) -> list[Segment]:
    # 1h down 1.4 and 15m down 0.9, then the 5m turns around 0.5 on triple volume (bottom; top mirrored).
    return [
        Segment(45, -sign * 0.5, 1000),
        Segment(10, -sign * 1.5, 1000),
        Segment(5, sign * 0.5 * (1 + k * HAIR), 3000),
    ]


def _whale(k: int, sign: int) -> list[Segment]:
    # A day of flat candles at 1000, then one candle moving 0.5 % on a volume around 3x the day's average.
    return [Segment(1439, 0, 1000), Segment(1, sign * 0.5, WHALE_VOLUME * (1 + k * HAIR))]


def _volume(k: int, sign: int) -> list[Segment]:
    # Three candles each moving 0.3 % on a volume around 2.5x the hour's average.
    return [Segment(57, 0, 1000), Segment(3, sign * 0.9, VOLUME_RUN * (1 + k * HAIR))]


def _flat_1m(k: int, sign: int) -> list[Segment]:
    # Ten candles whose range is 2 * wick, around 0.001 of the price.
    return [Segment(10, 0, 1000, wick=0.0005 * (1 - k * HAIR))]


def _flat_8h(k: int, sign: int) -> list[Segment]:
    # Eight hours whose range is 2 * wick, around 0.02 of the price.
    return [Segment(480, 0, 1000, wick=0.01 * (1 - k * HAIR))]


SCENARIOS: dict[str, Callable[[int], list[Segment]]] = {
    "big_bull_60m": lambda k: _big_60m(k, 1),
    "big_bear_60m": lambda k: _big_60m(k, -1),
    "pioneer_bull": lambda k: _pioneer(k, 1),
    "pioneer_bear": lambda k: _pioneer(k, -1),
    "big_bull_5m": lambda k: _big_5m(k, 1),
    "big_bear_5m": lambda k: _big_5m(k, -1),
    "big_bull_15m": lambda k: _big_15m(k, 1),
    "big_bear_15m": lambda k: _big_15m(k, -1),
    "bottom_hunter": lambda k: _hunter(k, 1),
    "top_hunter": lambda k: _hunter(k, -1),
    "bull_whale": lambda k: _whale(k, 1),
    "bear_whale": lambda k: _whale(k, -1),
    "bull_volume": lambda k: _volume(k, 1),
    "bear_volume": lambda k: _volume(k, -1),
    "flat_1m": lambda k: _flat_1m(k, 1),
    "flat_8h": lambda k: _flat_8h(k, 1),
}


def evaluate(sequences: list[np.ndarray]) -> dict[str, np.ndarray]:
    block = block_of(sequences)
    return rules_evaluate(rules_load(), rule_context(candles=block, metrics=window_metrics(block)))


def test_every_builtin_rule_has_a_scenario():
    # The sixteen original rules; the client's catalogue rules are checked against pandas in
    # test_builtin_rules_catalogue.
    assert set(SCENARIOS) == {rule["rule_type"] for rule in BUILTIN_RULES[:16]}


@pytest.mark.django_db
@pytest.mark.parametrize("rule_type", list(SCENARIOS))
def test_rule_fires_on_its_scenario_and_not_a_hair_below(rule_type):
    fires = candles_from_segments(SCENARIOS[rule_type](1))
    misses = candles_from_segments(SCENARIOS[rule_type](-1))
    one_short = fires[:, 1:]  # the same candles without the oldest: a window the rule needs is incomplete
    fired = evaluate([fires, misses, one_short])[rule_type]
    assert fired.tolist() == [True, False, False]


@pytest.mark.django_db
def test_rows_are_evaluated_independently():
    sequences = [candles_from_segments(build(k)) for build in SCENARIOS.values() for k in (1, -1)]
    together = evaluate(sequences)
    for row, sequence in enumerate(sequences):
        alone = evaluate([sequence])
        for rule_type, values in together.items():
            assert values[row] == alone[rule_type][0], (rule_type, row)


@pytest.mark.django_db
def test_rules_load_reads_enabled_rules_each_call():
    from apps.alerts.models import AlertRule

    # The sixteen original rules and the client's catalogue rules that start enabled.
    enabled = {rule["rule_type"] for rule in BUILTIN_RULES if rule.get("enabled", True)}
    assert set(SCENARIOS) < enabled
    assert {rule.rule_type for rule in rules_load()} == enabled
    AlertRule.objects.filter(rule_type="flat_8h").update(enabled=False)
    assert "flat_8h" not in {rule.rule_type for rule in rules_load()}


@pytest.mark.django_db
def test_a_rule_that_does_not_compile_is_skipped_not_fatal():
    from apps.alerts.models import AlertRule

    AlertRule.objects.filter(rule_type="flat_1m").update(conditions=["max_n(range_pct, 10) <= no_such_parameter"])
    loaded = {rule.rule_type for rule in rules_load()}
    assert "flat_1m" not in loaded
    assert len(loaded) == sum(rule.get("enabled", True) for rule in BUILTIN_RULES) - 1


def test_nan_compares_false_in_every_direction():
    from apps.alerts.engine import rule_compile

    block = block_of([candles_from_segments([Segment(10, 1, 1000)])])  # every window above 5m is NaN
    context = rule_context(candles=block, metrics=window_metrics(block))
    for text in ("change_1h > 0", "change_1h < 0", "change_1h >= 0", "change_1h <= 0", "-change_1h < 0"):
        rule = rule_compile(rule_type="r", conditions=[text], parameters={})
        assert not rules_evaluate([rule], context)["r"][0], text
    rule = rule_compile(rule_type="r", conditions=["change_5m > 0"], parameters={})
    assert rules_evaluate([rule], context)["r"][0]


@pytest.mark.django_db
def test_seeding_creates_only_the_missing_builtin_rules_and_keeps_an_operators_edits(settings):
    from apps.alerts.models import AlertRule
    from apps.alerts.services import rules_builtin_seed

    assert AlertRule.objects.count() == len(BUILTIN_RULES)  # the data migration seeded them
    edited, removed = BUILTIN_RULES[0]["rule_type"], BUILTIN_RULES[1]["rule_type"]
    AlertRule.objects.filter(rule_type=edited).update(enabled=False, cooldown_minutes=42, name="Mine")
    AlertRule.objects.filter(rule_type=removed).delete()
    settings.ALERT_DEFAULT_COOLDOWN_MINUTES = 7

    assert rules_builtin_seed() == 1
    assert AlertRule.objects.count() == len(BUILTIN_RULES)
    kept = AlertRule.objects.get(rule_type=edited)
    assert (kept.enabled, kept.cooldown_minutes, kept.name) == (False, 42, "Mine")
    again = AlertRule.objects.get(rule_type=removed)
    assert again.is_builtin and again.cooldown_minutes == 7 and again.conditions == BUILTIN_RULES[1]["conditions"]
    assert again.updated_at is not None
    assert rules_builtin_seed() == 0
