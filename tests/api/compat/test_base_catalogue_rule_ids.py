"""The web client's ids of the catalogue rules (the built-in rows after the original sixteen)."""

from __future__ import annotations

from apps.alerts.builtin_rules import BUILTIN_RULES
from apps.api.compat.base import rule_id, rule_type_of

CLIENT_IDS = {
    "bottom_hunter_v2": "futures_bottom_hunter_v2",
    "top_hunter_v2": "futures_top_hunter_v2",
    "big_bull_60m_v2": "futures_big_bull_60_v2",
    "big_bear_60m_v2": "futures_big_bear_60_v2",
    "whale_detector": "futures_whale_detector",
    "whale_accumulation": "futures_whale_accumulation",
    "whale_distribution": "futures_whale_distribution",
    "surge_42": "futures_surge_42",
    "knife_catcher": "futures_knife_catcher",
    "capitulation_catcher": "futures_capitulation_catcher",
}


def test_every_catalogue_rule_has_the_client_id():
    assert {rule["rule_type"] for rule in BUILTIN_RULES[16:]} == set(CLIENT_IDS)
    for rule_type, client_id in CLIENT_IDS.items():
        assert rule_id(rule_type) == client_id
        assert rule_type_of(client_id) == rule_type
