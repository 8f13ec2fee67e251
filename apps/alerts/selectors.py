"""Reads of rules and fired alerts, and the public shape of an alert (docs/api.md)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db.models import QuerySet

from .models import AlertHistory, AlertRule


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with a trailing Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def alert_payload(alert: AlertHistory) -> dict:
    """The alert object of docs/api.md, as REST returns it and WebSocket clients receive it."""
    return {
        "id": str(alert.id),
        "triggered_at": iso_utc(alert.triggered_at),
        "symbol": alert.symbol,
        "alert_type": alert.alert_type,
        "timeframe": alert.timeframe,
        "price": alert.price,
        "volume": alert.volume,
        "change_pct": alert.change_pct,
        "metadata": alert.metadata,
    }


def rules_list(*, enabled: bool | None = None) -> QuerySet[AlertRule]:
    rules = AlertRule.objects.order_by("id")
    return rules if enabled is None else rules.filter(enabled=enabled)


def alerts_list(
    *,
    symbol: str | None = None,
    alert_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[AlertHistory], int]:
    """Fired alerts newest first, filtered; returns (page, total matching)."""
    alerts = AlertHistory.objects.all()
    if symbol:
        alerts = alerts.filter(symbol=symbol)
    if alert_type:
        alerts = alerts.filter(alert_type=alert_type)
    if since is not None:
        alerts = alerts.filter(triggered_at__gte=since)
    if until is not None:
        alerts = alerts.filter(triggered_at__lte=until)
    total = alerts.count()
    page = list(alerts.order_by("-triggered_at", "symbol", "alert_type")[offset : offset + limit])
    return page, total
