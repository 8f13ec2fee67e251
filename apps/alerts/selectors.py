"""Reads of rules and fired alerts, and the public shape of an alert (docs/api.md)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from screener_project.kernel.clock import iso_utc

from .models import AlertHistory, AlertRule


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


# Horizons of the forward returns in the rule statistics, as the backtest reports them (apps.alerts.backtest).
STATS_HORIZONS = {"5m": 5, "15m": 15, "1h": 60, "4h": 240, "1d": 1440}
STATS_QUANTILES = {"p10": 0.10, "p25": 0.25, "median": 0.50, "p75": 0.75, "p90": 0.90}
DIRECTION = {"bull": 1.0, "bear": -1.0}


def rule_stats(*, rule: AlertRule, since: datetime | None = None, until: datetime | None = None) -> dict:
    """A rule's stored alerts and what the price did after them (docs/api.md, rule statistics).

    The forward return after horizon h of an alert at minute t is (close of the candle at t + h - close at t) / close
    at t * 100, from candles_1m, so it exists only while both candles are stored (RETENTION_HOURS). The hit rate is
    the share of those returns in the rule's direction: above zero for a bull rule, below for a bear rule; neutral
    rules have none.
    """
    from django.db import connection

    clauses, params = ["a.alert_type = %s"], [rule.rule_type]
    if since is not None:
        clauses.append("a.triggered_at >= %s")
        params.append(since)
    if until is not None:
        clauses.append("a.triggered_at <= %s")
        params.append(until)
    # candles_1m.time is the open time; an alert's triggered_at is the close of its minute t (t + 1 minute).
    joins = "".join(
        f" LEFT JOIN candles_1m c{i} ON c{i}.symbol = a.symbol"
        f" AND c{i}.time = a.triggered_at + interval '{minutes - 1} minutes'"
        for i, minutes in enumerate(STATS_HORIZONS.values())
    )
    columns = ", ".join(f"c{i}.close" for i in range(len(STATS_HORIZONS)))
    query = (
        f"SELECT a.symbol, a.triggered_at, c.close, {columns} FROM alert_history a"
        f" LEFT JOIN candles_1m c ON c.symbol = a.symbol AND c.time = a.triggered_at - interval '1 minute'"
        f"{joins} WHERE {' AND '.join(clauses)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        rows = cursor.fetchall()
    direction = DIRECTION.get(rule.category)
    horizons = {}
    for i, horizon in enumerate(STATS_HORIZONS):
        returns = sorted(
            (row[3 + i] - row[2]) / row[2] * 100 for row in rows if row[2] is not None and row[3 + i] is not None
        )
        horizons[horizon] = _distribution(returns, direction)
    return {
        "rule_type": rule.rule_type,
        "category": rule.category,
        "alerts": len(rows),
        "symbols": len({row[0] for row in rows}),
        "first": iso_utc(min(row[1] for row in rows)) if rows else None,
        "last": iso_utc(max(row[1] for row in rows)) if rows else None,
        "horizons": horizons,
    }


def _distribution(returns: list[float], direction: float | None) -> dict:
    """count, mean, quantiles (linear interpolation, as numpy's default) and hit rate of sorted returns (%)."""
    count = len(returns)
    out: dict[str, float | int | None] = {"count": count, "mean": sum(returns) / count if count else None}
    for name, q in STATS_QUANTILES.items():
        if not count:
            out[name] = None
            continue
        position = q * (count - 1)
        low = int(position)
        high = min(low + 1, count - 1)
        out[name] = returns[low] + (returns[high] - returns[low]) * (position - low)
    out["min"] = returns[0] if count else None
    out["max"] = returns[-1] if count else None
    hits = sum(1 for value in returns if value * direction > 0) if direction is not None else 0
    out["hit_rate"] = hits / count * 100 if count and direction is not None else None
    return out
