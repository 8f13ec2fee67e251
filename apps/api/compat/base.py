"""What every view of the compatibility surface shares: its tokens, its rate limits, its rule ids."""

from __future__ import annotations

from django.conf import settings
from rest_framework.views import APIView

from apps.api.throttling import AnonIpThrottle, UserIdThrottle

from .tokens import CompatTokenAuthentication

# The client's rule ids (apps/api/compat/README.md); the rule types not listed are `futures_<rule_type>`.
RULE_IDS = {
    "big_bull_60m": "futures_big_bull_60",
    "big_bear_60m": "futures_big_bear_60",
    "pioneer_bull": "futures_pioneer_bull",
    "pioneer_bear": "futures_pioneer_bear",
    "big_bull_5m": "futures_5_big_bull",
    "big_bear_5m": "futures_5_big_bear",
    "big_bull_15m": "futures_15_big_bull",
    "big_bear_15m": "futures_15_big_bear",
    "bottom_hunter": "futures_bottom_hunter",
    "top_hunter": "futures_top_hunter",
    "big_bull_60m_v2": "futures_big_bull_60_v2",
    "big_bear_60m_v2": "futures_big_bear_60_v2",
}
_RULE_TYPES = {rule_id: rule_type for rule_type, rule_id in RULE_IDS.items()}


def rule_id(rule_type: str) -> str:
    """The client's id of a rule type."""
    return RULE_IDS.get(rule_type, f"futures_{rule_type}")


def rule_type_of(rule_id_or_type: str) -> str:
    """The rule type a client id names (a plain rule type is accepted as itself)."""
    if rule_id_or_type in _RULE_TYPES:
        return _RULE_TYPES[rule_id_or_type]
    return rule_id_or_type.removeprefix("futures_")


class CompatUserThrottle(UserIdThrottle):
    """COMPAT_USER_RATE_LIMIT per signed-in user: the client polls ~75 requests a minute per open tab."""

    scope = "compat_user"

    def get_rate(self) -> str:
        return settings.COMPAT_USER_RATE_LIMIT


class CompatApi(APIView):
    """A view of the compatibility surface: its own bearer tokens (anonymous without a header), per-IP limit for
    anonymous calls as in /api (docs/api.md), a higher per-user limit for signed-in ones."""

    authentication_classes = [CompatTokenAuthentication]
    throttle_classes = [AnonIpThrottle, CompatUserThrottle]
