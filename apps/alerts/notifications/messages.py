"""What an alert looks like on the way out: the alert dict of docs/api.md plus the rule's display name and category."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from apps.alerts.models import AlertHistory, AlertRule
from apps.alerts.selectors import alert_payload


@dataclass(frozen=True)
class AlertMessage:
    payload: dict[str, Any]  # the alert object of docs/api.md
    rule_name: str
    category: str  # bull | bear | neutral
    description: str

    @property
    def title(self) -> str:
        return f"{self.rule_name} Signal"


def messages_build(*, alerts: list[AlertHistory]) -> list[AlertMessage]:
    rules = {r.rule_type: r for r in AlertRule.objects.filter(rule_type__in={a.alert_type for a in alerts})}
    result = []
    for alert in alerts:
        rule = rules.get(alert.alert_type)
        name = rule.name if rule else alert.alert_type.replace("_", " ").title()
        category = rule.category if rule else _category_guess(alert.alert_type)
        result.append(AlertMessage(alert_payload(alert), name, category, rule.description if rule else ""))
    return result


def _category_guess(alert_type: str) -> str:
    return (
        "bull"
        if "bull" in alert_type or "bottom" in alert_type
        else "bear"
        if "bear" in alert_type or "top" in alert_type
        else "neutral"
    )


def vcp_of(payload: dict[str, Any]) -> float | None:
    """The alert's VCP: `metadata.vcp`, else the first `vcp_<window>` found in `metadata` or `metadata.metrics`."""
    metadata = payload.get("metadata") or {}
    for source in (metadata, metadata.get("metrics") or {}):
        if not isinstance(source, dict):
            continue
        if _number(source.get("vcp")) is not None:
            return _number(source.get("vcp"))
        for name, value in source.items():
            if str(name).startswith("vcp_") and _number(value) is not None:
                return _number(value)
    return None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def fmt_price(value: Any) -> str:
    number = _number(value)
    return "n/a" if number is None else f"{number:.8g}"


def fmt_change(value: Any) -> str:
    number = _number(value)
    return "n/a" if number is None else f"{number:+.2f}%"


def fmt_volume(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "n/a"
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(number) >= limit:
            return f"{number / limit:.2f}{suffix} USDT"
    return f"{number:.0f} USDT"


def fmt_vcp(value: Any) -> str:
    number = _number(value)
    return "n/a" if number is None else f"{number:.3f}"
