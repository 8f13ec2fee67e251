"""The client's rule ids (apps/api/compat/README.md) map to rule types and back, for every built-in rule."""

from __future__ import annotations

import pytest

from apps.alerts.builtin_rules import BUILTIN_RULES
from apps.api.compat.base import rule_id, rule_type_of


@pytest.mark.parametrize(
    "rule_type, expected",
    [
        ("big_bull_60m", "futures_big_bull_60"),
        ("big_bear_15m", "futures_15_big_bear"),
        ("bull_whale", "futures_bull_whale"),
        ("flat_8h", "futures_flat_8h"),
        ("top_hunter", "futures_top_hunter"),
    ],
)
def test_rule_ids_of_the_spec(rule_type, expected):
    assert rule_id(rule_type) == expected


def test_every_builtin_rule_round_trips():
    types = [rule["rule_type"] for rule in BUILTIN_RULES]
    assert len({rule_id(t) for t in types}) == len(types)
    assert all(rule_type_of(rule_id(t)) == t for t in types)
