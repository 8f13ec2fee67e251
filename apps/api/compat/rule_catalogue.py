"""The web client's rule catalogue: the 19 rules it has a switch for, in its order, with its groups and defaults.

Rules of this screener outside the catalogue (its own whale, volume and flat rules, and any rule made in the admin)
have no switch in the client: their alerts are left out of this surface (alert history, alert socket, webhooks)
unless COMPAT_SEND_ALL_RULES is set. Catalogue rules this screener does not have yet keep each user's switch all
the same, so it is there when the rule arrives.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class ClientRule:
    rule_type: str
    category: str  # the client's group: original | optimized | whale | v4
    enabled_by_default: bool  # the client's default: off until the user switches it on
    description: str


CLIENT_RULES: tuple[ClientRule, ...] = (
    ClientRule("big_bull_60m", "original", True, "Sustained bullish momentum over the hour"),
    ClientRule("big_bear_60m", "original", True, "Sustained bearish momentum over the hour"),
    ClientRule("pioneer_bull", "original", True, "Early bullish move on 5m/15m"),
    ClientRule("pioneer_bear", "original", True, "Early bearish move on 5m/15m"),
    ClientRule("big_bull_5m", "original", True, "Explosive 5m rise"),
    ClientRule("big_bear_5m", "original", True, "Explosive 5m drop"),
    ClientRule("big_bull_15m", "original", True, "Strong 15m uptrend"),
    ClientRule("big_bear_15m", "original", True, "Strong 15m downtrend"),
    ClientRule("bottom_hunter", "original", True, "Bottom reversal"),
    ClientRule("top_hunter", "original", True, "Top reversal"),
    ClientRule("bottom_hunter_v2", "optimized", True, "Bottom reversal, deeper, RSI oversold"),
    ClientRule("top_hunter_v2", "optimized", True, "Top reversal, deeper, RSI overbought"),
    ClientRule("big_bull_60m_v2", "optimized", True, "Hourly surge, daily positive, ahead of BTC"),
    ClientRule("big_bear_60m_v2", "optimized", True, "Hourly drop, daily negative, behind BTC"),
    ClientRule("whale_detector", "whale", False, "Volume anomaly without a price move"),
    ClientRule("whale_accumulation", "whale", True, "Volume anomaly, bullish context"),
    ClientRule("whale_distribution", "whale", True, "Volume anomaly, bearish context"),
    ClientRule("surge_42", "v4", False, "Capitulation drop after a failed bounce"),
    ClientRule("knife_catcher", "v4", False, "Deep capitulation flush after a failed bounce"),
    ClientRule("capitulation_catcher", "v4", False, "Capitulation in a deep drawdown, no bounce"),
)
CLIENT_RULE_TYPES: frozenset[str] = frozenset(rule.rule_type for rule in CLIENT_RULES)
CLIENT_RULES_BY_TYPE: dict[str, ClientRule] = {rule.rule_type: rule for rule in CLIENT_RULES}
OTHER_CATEGORY = "other"


def rules_switched_off(*, disabled: list[str], switched_on: list[str]) -> frozenset[str]:
    """The rule types a user does not receive: the ones they switched off, and the catalogue's default-off rules they
    have not switched on."""
    default_off = {rule.rule_type for rule in CLIENT_RULES if not rule.enabled_by_default}
    return frozenset(set(disabled) | (default_off - set(switched_on)))


def send_all_rules() -> bool:
    """Whether this surface also sends the rules the client has no switch for (an operator's choice)."""
    return bool(getattr(settings, "COMPAT_SEND_ALL_RULES", False))


def client_can_switch(rule_type: str) -> bool:
    return rule_type in CLIENT_RULE_TYPES


def rule_shown(rule_type: str) -> bool:
    """Whether this surface shows alerts of the rule type at all."""
    return send_all_rules() or client_can_switch(rule_type)
