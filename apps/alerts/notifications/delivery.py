"""Send one destination's due deliveries, one rate-limited batch at a time, recording every attempt.

Per destination, in Redis (keys under settings.REDIS_KEY_PREFIX, written `P`):
- `P:notif:lock:<id>`: held while a batch is being sent, so one process at a time talks to a destination and a
  delivery is never in two requests at once. It lasts LOCK_SECONDS and is renewed while the batch is out, so a worker
  killed mid-send blocks its destination for seconds; a task that finds it busy runs again once it could expire.
- `P:notif:next:<id>`: the earliest moment (epoch seconds) of the next request: the channel's interval after the
  last one, or longer when the server said so (Retry-After, Discord's empty bucket).
Alerts that arrive while a destination must wait stay pending in the database and go out together in the next
batch: a burst costs fewer messages and nothing is dropped. A failing batch is retried (backoff doubling up to
NOTIFICATIONS_MAX_BACKOFF) for NOTIFICATIONS_RETRY_SECONDS and at least NOTIFICATIONS_MAX_ATTEMPTS times, ahead of
everything newer: a destination down for minutes gets, once back, every alert once and in order.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import timedelta
from functools import reduce
from operator import or_

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Min, Q
from django.utils import timezone
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_before_delay, wait_exponential

from apps.alerts.models import AlertHistory
from screener_project.kernel.redis_keys import notif_lock_key, notif_next_key, redis_client
from screener_project.locks import RenewedLock
from screener_project.observability import WEBHOOK_DELIVERIES

from .messages import messages_build
from .models import Delivery, DeliveryAttempt, Destination
from .transports import SendResult, TransportError, idempotency_key, transport_for

logger = logging.getLogger(__name__)

LOCK_SECONDS = 10


def destination_deliver(*, destination_id: int) -> float | None:
    """Send at most one batch to the destination; returns seconds until it should run again, None when idle."""
    destination = Destination.objects.filter(pk=destination_id).first()
    if destination is None or not destination.enabled or destination.is_paused:
        return None
    lock = RenewedLock(redis_client(), notif_lock_key(destination_id), timeout=LOCK_SECONDS)
    if not lock.acquire(blocking=False):
        # Another process is sending and looks for what is still pending when done; should it have been killed,
        # its lock expires within LOCK_SECONDS and this run takes over.
        return float(LOCK_SECONDS)
    try:
        _send_batch(destination)
    finally:
        lock.release()
    return _next_run_in(destination_id)


def _next_run_in(destination_id: int) -> float | None:
    destination = Destination.objects.filter(pk=destination_id).first()
    if destination is None or not destination.enabled or destination.is_paused:
        return None
    pending = Delivery.objects.filter(destination_id=destination_id, status=Delivery.Status.PENDING)
    unfinished = pending.exclude(batch_key="")
    # An unfinished batch goes first (see _send_batch), so its retry moment is the next run's, whatever came after.
    earliest = (unfinished if unfinished.exists() else pending).aggregate(earliest=Min("next_attempt_at"))["earliest"]
    if earliest is None:
        return None
    not_before = float(redis_client().get(notif_next_key(destination_id)) or 0)
    return max(0.0, (earliest - timezone.now()).total_seconds(), not_before - time.time())


def _send_batch(destination: Destination) -> None:
    if time.time() < float(redis_client().get(notif_next_key(destination.pk)) or 0):
        return
    transport = transport_for(destination)
    now = timezone.now()
    pending = Delivery.objects.filter(destination=destination, status=Delivery.Status.PENDING)
    unfinished = list(pending.exclude(batch_key="").order_by("alert_triggered_at", "id"))
    if unfinished:
        # A batch whose outcome was never recorded (its sender died, or it waits for a retry) goes again as it was,
        # under the same Idempotency-Key, before anything newer: a receiver that honours the key sees it once.
        due = [d for d in unfinished if d.batch_key == unfinished[0].batch_key]
        if due[0].next_attempt_at > now:
            return
    else:
        due = list(
            pending.filter(next_attempt_at__lte=now).order_by("alert_triggered_at", "id")[
                : getattr(settings, f"NOTIFICATIONS_BATCH_{destination.kind.upper()}")
            ]
        )
    if not due:
        return
    alerts = _alerts_of(due)
    gone = [d for d in due if _alert_key(d) not in alerts]
    if gone:
        Delivery.objects.filter(pk__in=[d.pk for d in gone]).update(
            status=Delivery.Status.FAILED, last_error="the alert no longer exists"
        )
        due = [d for d in due if _alert_key(d) in alerts]
        if not due:
            return
    messages = messages_build(alerts=[alerts[_alert_key(d)] for d in due])
    count = transport.batch_size(messages)
    batch, messages = due[:count], messages[:count]
    batch_key = idempotency_key(messages)
    if any(d.batch_key != batch_key for d in batch):
        # Committed before the request leaves, so that whoever sends next knows this batch may have arrived.
        Delivery.objects.filter(pk__in=[d.pk for d in batch]).update(batch_key=batch_key)
        for delivery in batch:
            delivery.batch_key = batch_key
    started = time.monotonic()
    try:
        result: SendResult | None = transport.send(messages)
        error: TransportError | None = None
    except TransportError as exc:
        result, error = None, exc
    except Exception as exc:  # a bug in formatting must not lose the deliveries: retry like a network error
        logger.exception("notifications: unexpected error sending to destination %s", destination.pk)
        result, error = None, TransportError(f"internal error: {type(exc).__name__}: {exc}", retryable=True)
    duration_ms = int((time.monotonic() - started) * 1000)
    _record_surely(destination=destination, batch=batch, result=result, error=error, duration_ms=duration_ms)
    wait = transport.interval()
    if result is not None:
        wait = max(wait, result.wait_after)
    elif error is not None and error.retry_after is not None:
        wait = max(wait, min(error.retry_after, settings.NOTIFICATIONS_MAX_RETRY_AFTER))
    redis_client().set(notif_next_key(destination.pk), f"{time.time() + wait:.3f}", px=int(wait * 1000) + 1000)


# The batch is out: its outcome must be recorded, or it is sent again. A database that is away for a moment is
# waited for (the send lock is renewed meanwhile, so no one else sends these deliveries) rather than given up on.
RECORD_RETRY_SECONDS = 60.0


def _record_retry_prepare(state: RetryCallState) -> None:
    logger.warning(
        "notifications: recording a sent batch failed (%s); retrying in %.1f s",
        state.outcome.exception() if state.outcome else None,
        state.upcoming_sleep,
    )
    connection.close()  # the next attempt opens a new connection


def _record_surely(**outcome) -> None:
    for attempt in Retrying(
        retry=retry_if_exception_type((OperationalError, InterfaceError)),
        wait=wait_exponential(multiplier=0.5, max=5.0),  # 0.5, 1, 2, 4, 5, 5, ... s
        stop=stop_before_delay(RECORD_RETRY_SECONDS),
        before_sleep=_record_retry_prepare,
        reraise=True,
    ):
        with attempt:
            _record(**outcome)


def _record(
    *,
    destination: Destination,
    batch: list[Delivery],
    result: SendResult | None,
    error: TransportError | None,
    duration_ms: int,
) -> None:
    now = timezone.now()
    max_attempts = settings.NOTIFICATIONS_MAX_ATTEMPTS
    # Retried for NOTIFICATIONS_RETRY_SECONDS, and at least max_attempts times: an outage of minutes loses nothing.
    retry_until = now - timedelta(seconds=settings.NOTIFICATIONS_RETRY_SECONDS)
    attempts = []
    outcomes: Counter[str] = Counter()
    for delivery in batch:
        delivery.attempts += 1
        if error is None:
            delivery.status, delivery.sent_at, delivery.last_error = Delivery.Status.SENT, now, ""
            delivery.batch_key = ""
            outcomes["sent"] += 1
        else:
            delivery.last_error = error.message[:500]
            if error.retryable and (delivery.attempts < max_attempts or delivery.created_at > retry_until):
                # The batch keeps its key: a request that timed out may have arrived, and is retried as it was.
                delivery.next_attempt_at = now + timedelta(seconds=_backoff(delivery.attempts, error.retry_after))
                outcomes["retry"] += 1
            else:
                delivery.status, delivery.batch_key = Delivery.Status.FAILED, ""
                outcomes["failed"] += 1
        attempts.append(
            DeliveryAttempt(
                delivery=delivery,
                number=delivery.attempts,
                at=now,
                ok=error is None,
                status_code=result.status_code if result else error.status_code if error else None,
                error=error.message[:500] if error else "",
                duration_ms=duration_ms,
                batch_size=len(batch),
            )
        )
    with transaction.atomic():
        Delivery.objects.bulk_update(
            batch, ["status", "attempts", "last_error", "next_attempt_at", "sent_at", "batch_key"]
        )
        DeliveryAttempt.objects.bulk_create(attempts)
        if error is None:
            sent = reduce(
                or_,
                (Q(triggered_at=d.alert_triggered_at, symbol=d.alert_symbol, alert_type=d.alert_type) for d in batch),
            )
            AlertHistory.objects.filter(sent, webhook_sent=False).update(webhook_sent=True, webhook_sent_at=now)
            Destination.objects.filter(pk=destination.pk).update(consecutive_failures=0)
        else:
            _failure_count(
                destination=destination, error=error, now=now, retried_since=min(d.created_at for d in batch)
            )
    for outcome, count in outcomes.items():
        WEBHOOK_DELIVERIES.labels(kind=destination.kind, outcome=outcome).inc(count)
    if error is not None:
        logger.warning(
            "notifications: destination %s (%s) batch of %d failed: %s",
            destination.pk,
            destination.kind,
            len(batch),
            error.message,
        )


def _failure_count(*, destination: Destination, error: TransportError, now, retried_since) -> None:
    """Count a failed request against the destination and pause it when it is broken, or keeps failing past the
    retry window (the oldest delivery of the batch, created at `retried_since`, is given up on)."""
    if error.status_code == 429:
        return  # being rate limited says nothing about the destination's health
    Destination.objects.filter(pk=destination.pk).update(consecutive_failures=F("consecutive_failures") + 1)
    failures = Destination.objects.values_list("consecutive_failures", flat=True).get(pk=destination.pk)
    threshold = settings.NOTIFICATIONS_PAUSE_AFTER_FAILURES
    if error.destination_broken:
        reason = error.message
    elif failures >= threshold and retried_since <= now - timedelta(seconds=settings.NOTIFICATIONS_RETRY_SECONDS):
        reason = f"{failures} consecutive failures, last: {error.message}"
    else:
        return
    Destination.objects.filter(pk=destination.pk, paused_at__isnull=True).update(
        paused_at=now, paused_reason=reason[:300]
    )
    logger.warning("notifications: destination %s (%s) paused: %s", destination.pk, destination.name, reason)


def _backoff(attempts: int, retry_after: float | None) -> float:
    """Seconds before attempt n+1: doubling from NOTIFICATIONS_BACKOFF_BASE up to NOTIFICATIONS_MAX_BACKOFF."""
    delay = min(settings.NOTIFICATIONS_BACKOFF_BASE * 2 ** min(attempts - 1, 30), settings.NOTIFICATIONS_MAX_BACKOFF)
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.NOTIFICATIONS_MAX_RETRY_AFTER))
    return delay


def _alert_key(delivery: Delivery) -> tuple:
    return (delivery.alert_triggered_at, delivery.alert_symbol, delivery.alert_type)


def _alerts_of(deliveries: list[Delivery]) -> dict[tuple, AlertHistory]:
    wanted = reduce(
        or_, (Q(triggered_at=d.alert_triggered_at, symbol=d.alert_symbol, alert_type=d.alert_type) for d in deliveries)
    )
    return {(a.triggered_at, a.symbol, a.alert_type): a for a in AlertHistory.objects.filter(wanted)}
