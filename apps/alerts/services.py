"""Firing alerts: cooldown, the exactly-once claim in alert_history, notification hand-off, then the push.

The claim is `INSERT ... ON CONFLICT DO NOTHING RETURNING` on alert_history's primary key (triggered_at, symbol,
alert_type), so of any number of evaluations of the same minute exactly one inserts each alert. Its webhook
deliveries are inserted in the same transaction, so a process killed after the commit cannot leave an alert that no
destination will ever receive. The browser push follows the commit; an alert whose push never happened (the process
died in between) is pushed by `alerts_push_sweep`.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.collector.candles import MINUTE_MS
from screener_project.kernel.channels import ALERTS_GROUP, alert_batch_message, group_send_blocking
from screener_project.kernel.clock import now_ms
from screener_project.kernel.redis_keys import alert_pushed_key, redis_client
from screener_project.observability import ALERTS_FIRED

from .builtin_rules import BUILTIN_RULES
from .engine import CompiledRule, RuleContext, cooldown_suppresses
from .models import AlertHistory, AlertRule
from .selectors import alert_payload

logger = logging.getLogger(__name__)

_COLUMNS = (
    "id",
    "triggered_at",
    "symbol",
    "alert_type",
    "timeframe",
    "price",
    "volume",
    "change_pct",
    "metadata",
    "webhook_sent",
    "created_at",
)


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def ms_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _candidates(
    *,
    minute_ms: int,
    symbols: Sequence[str],
    fired: dict[str, np.ndarray],
    context: RuleContext,
    rules: list[CompiledRule],
    timestamps: dict[str, int],
    source: str,
) -> list[AlertHistory]:
    """One unsaved AlertHistory per fired (symbol, rule), values read from the context row of the symbol."""
    triggered_at = ms_datetime(minute_ms + MINUTE_MS)
    price = context.value("close")
    out = []
    for rule in rules:
        rows = np.flatnonzero(fired.get(rule.rule_type, ()))
        if rows.size == 0:
            continue
        # Only the fired rows' values: an indicator the rule read was loaded for its candidate rows only.
        inputs = context.values_at(rows, rule.inputs)
        volume, change = context.timeframe_values(rule.timeframe)
        vcp = context.value(f"vcp_{rule.timeframe}") if rule.timeframe != "1m" else None
        for position, row in enumerate(rows):
            metadata = {
                "rule": rule.name,
                "category": rule.category,
                "metrics": {label: _finite(values[position]) for label, values in inputs.items()},
                "parameters": dict(rule.parameters),
                "vcp": _finite(vcp[row]) if vcp is not None else None,
                "candle_open_ms": minute_ms,
                "source": source,
                "timestamps": dict(timestamps),
            }
            out.append(
                AlertHistory(
                    id=uuid.uuid4(),
                    triggered_at=triggered_at,
                    symbol=symbols[row],
                    alert_type=rule.rule_type,
                    timeframe=rule.timeframe,
                    price=float(price[row]),
                    volume=_finite(volume[row]),
                    change_pct=_finite(change[row]),
                    metadata=metadata,
                )
            )
    return out


def _recent_alerts(*, minute_ms: int, candidates: list[AlertHistory], longest_cooldown: int) -> dict[tuple, int]:
    """(symbol, alert_type) -> open time (ms) of the pair's newest alert within the longest cooldown before t."""
    if longest_cooldown <= 1 or not candidates:
        return {}
    close = ms_datetime(minute_ms + MINUTE_MS)
    since = ms_datetime(minute_ms + MINUTE_MS - longest_cooldown * MINUTE_MS)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT symbol, alert_type, MAX(triggered_at) FROM alert_history"
            " WHERE triggered_at > %s AND triggered_at < %s AND symbol = ANY(%s) AND alert_type = ANY(%s)"
            " GROUP BY symbol, alert_type",
            [since, close, sorted({a.symbol for a in candidates}), sorted({a.alert_type for a in candidates})],
        )
        return {
            (symbol, alert_type): round(last.timestamp() * 1000) - MINUTE_MS
            for symbol, alert_type, last in cursor.fetchall()
        }


def _claim(alerts: list[AlertHistory]) -> list[AlertHistory]:
    """Insert the alerts; return those this call inserted (a key that exists already is someone else's)."""
    if not alerts:
        return []
    created_at = timezone.now()
    placeholders = "(" + ", ".join(["%s"] * (len(_COLUMNS) - 3)) + ", %s::jsonb, %s, %s)"
    params: list[object] = []
    for alert in alerts:
        alert.created_at = created_at
        params += [
            alert.id,
            alert.triggered_at,
            alert.symbol,
            alert.alert_type,
            alert.timeframe,
            alert.price,
            alert.volume,
            alert.change_pct,
            json.dumps(alert.metadata),
            False,
            created_at,
        ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO alert_history ({', '.join(_COLUMNS)}) VALUES {', '.join([placeholders] * len(alerts))}"
            " ON CONFLICT DO NOTHING RETURNING symbol, alert_type",
            params,
        )
        won = {(symbol, alert_type) for symbol, alert_type in cursor.fetchall()}
    claimed = [a for a in alerts if (a.symbol, a.alert_type) in won]
    for alert in claimed:
        alert._state.adding = False
        alert._state.db = connection.alias
    return claimed


def alerts_fire(
    *,
    minute_ms: int,
    symbols: Sequence[str],
    fired: dict[str, np.ndarray],
    context: RuleContext,
    rules: list[CompiledRule],
    timestamps: dict[str, int],
    source: str = "closed",
) -> list[AlertHistory]:
    """Record the alerts of minute t that pass the cooldown, exactly once; push and notify the new ones.

    `fired` is rules_evaluate's output over `symbols` (the context's rows). Returns the alerts this call created;
    a repeated evaluation of the same minute returns [] and pushes nothing. `source` says what was evaluated:
    "closed" (minute t's closed candles) or "forming" (the near-real-time mode's forming candle of minute t).
    """
    if len(symbols) != context.rows:
        raise ValueError(f"{len(symbols)} symbols for a context of {context.rows} rows")
    by_type = {rule.rule_type: rule for rule in rules}
    candidates = _candidates(
        minute_ms=minute_ms,
        symbols=symbols,
        fired=fired,
        context=context,
        rules=rules,
        timestamps=timestamps,
        source=source,
    )
    if not candidates:
        return []
    with transaction.atomic():
        recent = _recent_alerts(
            minute_ms=minute_ms,
            candidates=candidates,
            longest_cooldown=max(by_type[a.alert_type].cooldown_minutes for a in candidates),
        )
        allowed = [
            alert
            for alert in candidates
            if not cooldown_suppresses(
                previous_ms=recent.get((alert.symbol, alert.alert_type)),
                minute_ms=minute_ms,
                cooldown_minutes=by_type[alert.alert_type].cooldown_minutes,
            )
        ]
        claimed = _claim(allowed)
        if claimed:
            from apps.alerts.notifications.services import notifications_enqueue

            # Inside the claim's transaction (in a savepoint of its own, never raising): alert and deliveries
            # commit together; the send tasks are queued on commit.
            notifications_enqueue(alerts=claimed)
            transaction.on_commit(lambda: alerts_push(alerts=claimed))
    for alert in claimed:
        ALERTS_FIRED.labels(rule_type=alert.alert_type).inc()
    return claimed


def alerts_push(*, alerts: list[AlertHistory]) -> None:
    """After the claim committed: push to browsers, then record that they were pushed. Never raises.

    The record is a Redis marker per alert (read by the sweep first, cheap) and the push moment in the alert's
    metadata; either one keeps the sweep from pushing the alert a second time.
    """
    pushed_ms = now_ms()
    # In creation order, (created_at, id), the order a resuming WebSocket client's replay follows (apps.api.consumers).
    alerts = sorted(alerts, key=lambda alert: (alert.created_at, str(alert.id)))
    for alert in alerts:
        alert.metadata["timestamps"]["pushed_ms"] = pushed_ms
    try:
        alerts_broadcast([alert_payload(alert) for alert in alerts])
    except Exception:
        # Left unrecorded: the sweep pushes them once the channel layer is back.
        logger.exception("push of %d alerts to the channel layer failed", len(alerts))
        return
    try:
        _pushed_mark(alerts=alerts)
    except Exception:
        logger.exception("marking %d alerts as pushed failed", len(alerts))
    try:
        _pushed_record(alerts=alerts, pushed_ms=pushed_ms)
    except Exception:
        logger.exception("recording the push moment of %d alerts failed", len(alerts))


# The sweep pushes alerts created between PUSH_SWEEP_MAX_AGE and PUSH_SWEEP_MIN_AGE ago that were never pushed: older
# than the time a live push takes by far, young enough to still matter to a trader watching the feed.
PUSH_SWEEP_MIN_AGE_SECONDS = 10
PUSH_SWEEP_MAX_AGE_SECONDS = 600


def _pushed_marker(alert_id) -> str:
    return alert_pushed_key(alert_id)


def _pushed_mark(*, alerts: list[AlertHistory]) -> None:
    pipe = redis_client().pipeline(transaction=False)
    for alert in alerts:
        pipe.set(_pushed_marker(alert.id), 1, ex=2 * PUSH_SWEEP_MAX_AGE_SECONDS)
    pipe.execute()


def alerts_push_sweep() -> int:
    """Push the recent alerts whose push never happened (the process died between commit and push, or the channel
    layer was away); returns how many were pushed."""
    now = timezone.now()
    unpushed = list(
        AlertHistory.objects.filter(
            created_at__gte=now - timedelta(seconds=PUSH_SWEEP_MAX_AGE_SECONDS),
            created_at__lt=now - timedelta(seconds=PUSH_SWEEP_MIN_AGE_SECONDS),
        )
        .exclude(metadata__timestamps__has_key="pushed_ms")
        .order_by("created_at")
    )
    if not unpushed:
        return 0
    marked = redis_client().mget([_pushed_marker(alert.id) for alert in unpushed])
    alerts = [alert for alert, mark in zip(unpushed, marked, strict=True) if mark is None]
    if alerts:
        logger.warning("pushing %d alerts whose push never happened", len(alerts))
        alerts_push(alerts=alerts)
    return len(alerts)


def _pushed_record(*, alerts: list[AlertHistory], pushed_ms: int) -> None:
    keys = ", ".join(["(%s, %s, %s)"] * len(alerts))
    params: list[object] = [pushed_ms]
    for alert in alerts:
        params += [alert.triggered_at, alert.symbol, alert.alert_type]
    # The commit need not wait for the disk: the record only spares the sweep a Redis lookup, and the Redis marker
    # written before it already keeps the alerts from being pushed twice. The worker goes on to its next batch sooner.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")
        cursor.execute(
            "UPDATE alert_history SET metadata = jsonb_set(metadata, '{timestamps,pushed_ms}', to_jsonb(%s::bigint))"
            f" WHERE (triggered_at, symbol, alert_type) IN ({keys})",
            params,
        )


def rules_builtin_seed(*, model: type[AlertRule] = AlertRule) -> int:
    """Create the built-in rules that are missing, with their defaults; returns how many were missing.

    Existing rows are left alone: an operator's edits survive. `model` lets a data migration pass its
    historical model.
    """
    existing = set(model.objects.values_list("rule_type", flat=True))
    missing = [
        model(**rule, is_builtin=True, cooldown_minutes=settings.ALERT_DEFAULT_COOLDOWN_MINUTES)
        for rule in BUILTIN_RULES
        if rule["rule_type"] not in existing
    ]
    # One query for all of them; a rule another process created meanwhile is left as that process made it.
    model.objects.bulk_create(missing, ignore_conflicts=True)
    return len(missing)


# Alerts per channel-layer message: a whole evaluation's alerts usually fit in one; a market-wide move (every symbol
# firing) is split so that no single message grows without bound.
BROADCAST_BATCH_SIZE = 200


def alerts_broadcast(payloads: Sequence[dict]) -> None:
    """Send alert payloads, in order, to the WebSocket fan-out of every web process ("alerts" group), in as few
    channel-layer messages as possible."""
    messages = [
        alert_batch_message(payloads[first : first + BROADCAST_BATCH_SIZE])
        for first in range(0, len(payloads), BROADCAST_BATCH_SIZE)
    ]
    group_send_blocking(ALERTS_GROUP, messages)
