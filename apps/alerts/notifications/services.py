"""Fan fired alerts out to destinations: claim one delivery per (alert, destination), then schedule sending.

`notifications_enqueue` is called by the alert engine inside the transaction that claims the alerts, so alerts and
their deliveries commit together. It costs a handful of queries
per call whatever the number of alerts, never raises, and leaves the sending to the `notifications.deliver`
task (queue "notifications"), one task per destination touched, which sends that destination's pending deliveries
in batches within its rate limit (apps.alerts.notifications.delivery).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from prometheus_client import Counter

from .models import Delivery, Destination
from .scheduling import destination_schedule, destinations_schedule_soon

if TYPE_CHECKING:
    from apps.alerts.models import AlertHistory, UserSettings

logger = logging.getLogger(__name__)

ENQUEUE_FAILURES = Counter("screener_notification_enqueue_failures_total", "Alert batches whose enqueue failed")
DELIVERIES_CREATED = Counter("screener_notification_deliveries_created_total", "Deliveries claimed", ["kind"])

DISCORD_HOSTS = {"discord.com", "discordapp.com", "canary.discord.com", "ptb.discord.com"}


def notifications_enqueue(*, alerts: list[AlertHistory]) -> None:
    """Create the deliveries of newly fired alerts and schedule their sending. Never raises into the caller."""
    if not alerts:
        return
    try:
        # A savepoint: a failure here rolls back only the deliveries, never the caller's claim of the alerts.
        with transaction.atomic():
            touched = deliveries_create(alerts=alerts)
    except Exception:
        ENQUEUE_FAILURES.inc()
        logger.exception("notifications: could not create deliveries for %d alerts", len(alerts))
        return
    if touched:
        # After commit, so a worker never looks for deliveries it cannot see yet (immediate in autocommit).
        transaction.on_commit(lambda: _schedule_quietly(touched))


def _schedule_quietly(destination_ids: list[int]) -> None:
    try:
        destinations_schedule_soon(destination_ids=destination_ids)
    except Exception:
        # The deliveries are in the database; the periodic sweep schedules them once the broker is back.
        ENQUEUE_FAILURES.inc()
        logger.exception("notifications: could not schedule %d destinations", len(destination_ids))


def deliveries_create(*, alerts: Iterable[AlertHistory]) -> list[int]:
    """Insert one pending delivery per matching (alert, destination); returns the destinations that got new ones.

    A delivery that already exists (a repeated enqueue of the same alert) is left alone: the unique constraint is
    the exactly-once claim.
    """
    alerts = list(alerts)
    alert_types = sorted({a.alert_type for a in alerts})
    # A paused destination gets nothing now (no row, no task): lifting the pause creates what it missed
    # (destination_pause_lifted).
    operator = list(Destination.objects.filter(user_id__isnull=True, enabled=True, paused_at__isnull=True))
    users = [(d, wanted) for d, wanted in _user_destinations(alert_types=alert_types) if not d.is_paused]
    rows: list[tuple] = []
    for alert in alerts:
        matched = [d for d in operator if d.matches(alert_type=alert.alert_type, symbol=alert.symbol)]
        matched += [d for d, wanted in users if not wanted or alert.alert_type in wanted]
        for destination in matched:
            rows.append(
                (destination.id, alert.triggered_at, alert.symbol, alert.alert_type, alert.id, destination.kind)
            )
    return _deliveries_insert(rows)


def _deliveries_insert(rows: list[tuple]) -> list[int]:
    """Insert pending deliveries (destination id, triggered_at, symbol, alert type, alert id, kind), skipping those
    that exist; returns the destinations that got new ones."""
    if not rows:
        return []
    now = timezone.now()
    columns = list(zip(*rows, strict=True))
    with transaction.atomic(), connection.cursor() as cursor:
        # One statement for the whole batch, the rows passed as five arrays (fast to bind however many there are);
        # RETURNING lists only the rows this call inserted.
        cursor.execute(
            f"INSERT INTO {Delivery._meta.db_table} (destination_id, alert_triggered_at, alert_symbol, alert_type,"
            " alert_id, status, attempts, last_error, next_attempt_at, created_at, batch_key)"
            " SELECT d, t, s, a, i, 'pending', 0, '', %s, %s, ''"
            " FROM unnest(%s::bigint[], %s::timestamptz[], %s::text[], %s::text[], %s::uuid[]) AS r(d, t, s, a, i)"
            " ON CONFLICT (alert_triggered_at, alert_symbol, alert_type, destination_id) DO NOTHING"
            " RETURNING destination_id",
            [
                now,
                now,
                list(columns[0]),
                list(columns[1]),
                list(columns[2]),
                list(columns[3]),
                [str(i) for i in columns[4]],
            ],
        )
        inserted = [row[0] for row in cursor.fetchall()]
    kinds = {row[0]: row[5] for row in rows}
    for destination_id in inserted:
        DELIVERIES_CREATED.labels(kind=kinds[destination_id]).inc()
    return sorted(set(inserted))


def _user_destinations(*, alert_types: list[str]) -> list[tuple[Destination, set[str]]]:
    """The destinations mirroring users' webhooks that want any of these rule types, with each user's selection.

    An empty selection means every rule type. The mirror row is created or refreshed here, so a user's change of
    URL takes effect with the next alert (and lifts a pause caused by the old URL).
    """
    from apps.alerts.models import UserSettings

    wanted = Q(selected_alerts=[])
    for alert_type in alert_types:
        wanted |= Q(selected_alerts__contains=[alert_type])
    user_settings = list(UserSettings.objects.filter(wanted, notification_enabled=True).exclude(webhook_url=""))
    if not user_settings:
        return []
    existing = {d.user_id: d for d in Destination.objects.filter(user_id__in=[s.user_id for s in user_settings])}
    result = []
    for item in user_settings:
        destination = destination_sync_user(settings=item, existing=existing.get(item.user_id))
        if destination.enabled:
            result.append((destination, set(item.selected_alerts or [])))
    return result


def destination_sync_user(*, settings: UserSettings, existing: Destination | None = None) -> Destination:
    """Create or refresh the destination that mirrors one user's webhook settings."""
    kind = user_webhook_kind(settings.webhook_url)
    selected = list(settings.selected_alerts or [])
    if existing is None:
        destination, _ = Destination.objects.get_or_create(
            user_id=settings.user_id,
            defaults={
                "name": f"user {settings.user_id}",
                "kind": kind,
                "url": settings.webhook_url,
                "rule_types": selected,
            },
        )
        return destination
    if existing.url != settings.webhook_url or existing.kind != kind or existing.rule_types != selected:
        url_changed = existing.url != settings.webhook_url
        existing.url, existing.kind, existing.rule_types = settings.webhook_url, kind, selected
        fields = ["url", "kind", "rule_types", "updated_at"]
        if url_changed:
            existing.paused_at, existing.paused_reason, existing.consecutive_failures = None, "", 0
            fields += ["paused_at", "paused_reason", "consecutive_failures"]
        existing.save(update_fields=fields)
    return existing


def user_webhook_kind(url: str) -> str:
    """A user's webhook URL is posted as a Discord embed when it is a Discord webhook, as generic JSON otherwise."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return Destination.Kind.WEBHOOK
    if (parts.hostname or "") in DISCORD_HOSTS and parts.path.startswith("/api/webhooks/"):
        return Destination.Kind.DISCORD
    return Destination.Kind.WEBHOOK


def destination_resume(*, destination: Destination) -> int:
    """Lift a pause and send what it missed; returns the number of pending deliveries scheduled."""
    since = Destination.objects.filter(pk=destination.pk).values_list("paused_at", flat=True).first()
    Destination.objects.filter(pk=destination.pk).update(
        paused_at=None, paused_reason="", consecutive_failures=0, updated_at=timezone.now()
    )
    destination.refresh_from_db()
    return destination_pause_lifted(destination=destination, since=since)


# Alerts created this long before the pause are looked at again: one that fired just before the pause may not have
# had its delivery yet. Deliveries that exist are skipped (the unique constraint), so none is sent twice.
BACKFILL_MARGIN = timedelta(minutes=5)


def destination_pause_lifted(*, destination: Destination, since: datetime | None) -> int:
    """After a pause (from `since`) ends: create the deliveries of the alerts the destination matches that fired
    meanwhile (still in the history), and schedule sending; returns how many deliveries are pending."""
    if since is not None and destination.enabled and not destination.is_paused and _wants_alerts(destination):
        from apps.alerts.models import AlertHistory

        fired = AlertHistory.objects.filter(created_at__gte=since - BACKFILL_MARGIN).order_by("triggered_at")
        _deliveries_insert(
            [
                (destination.pk, a.triggered_at, a.symbol, a.alert_type, a.id, destination.kind)
                for a in fired.iterator(chunk_size=2000)
                if destination.matches(alert_type=a.alert_type, symbol=a.symbol)
            ]
        )
    pending = Delivery.objects.filter(destination=destination, status=Delivery.Status.PENDING).count()
    if pending:
        transaction.on_commit(lambda: destination_schedule(destination_id=destination.pk, delay=0.0))
    return pending


def _wants_alerts(destination: Destination) -> bool:
    """A user's mirror destination wants alerts only while the user's notifications are on."""
    if destination.user_id is None:
        return True
    from apps.alerts.models import UserSettings

    return UserSettings.objects.filter(user_id=destination.user_id, notification_enabled=True).exists()


def deliveries_sweep(*, older_than: timedelta = timedelta(seconds=15)) -> int:
    """Schedule every unpaused destination with deliveries due for a while; the safety net for lost tasks.

    Never attempted ones included: a delivery whose send task died with its worker has 0 attempts and is as due.
    """
    due = timezone.now() - older_than
    destination_ids = list(
        Delivery.objects.filter(
            status=Delivery.Status.PENDING,
            next_attempt_at__lte=due,
            destination__paused_at__isnull=True,
            destination__enabled=True,
        )
        .values_list("destination_id", flat=True)
        .distinct()
    )
    for destination_id in destination_ids:
        destination_schedule(destination_id=destination_id, delay=0.0)
    return len(destination_ids)


def deliveries_purge(*, before: datetime, batch: int = 5000) -> int:
    """Delete deliveries (and their attempts) created before `before`, at most `batch` of them; returns how many."""
    ids = list(
        Delivery.objects.filter(created_at__lt=before).order_by("created_at").values_list("pk", flat=True)[:batch]
    )
    if not ids:
        return 0
    Delivery.objects.filter(pk__in=ids).delete()
    return len(ids)
