"""Celery tasks of notifications: thin wrappers around the delivery services."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="notifications.deliver", ignore_result=True, acks_late=True)
def deliver_notification(destination_id: int) -> None:
    """Send the destination's due deliveries (one rate-limited batch) and schedule the next run if more wait."""
    from .delivery import destination_deliver
    from .scheduling import destination_schedule, destination_schedule_clear

    destination_schedule_clear(destination_id=destination_id)
    next_in = destination_deliver(destination_id=destination_id)
    if next_in is not None:
        destination_schedule(destination_id=destination_id, delay=next_in)


@shared_task(name="notifications.dispatch", ignore_result=True, acks_late=True)
def dispatch_notifications(destination_ids: list[int]) -> None:
    """Queue the send task of each destination (a burst touching many destinations costs the alert engine one)."""
    from .scheduling import destinations_schedule_now

    destinations_schedule_now(destination_ids=destination_ids)


@shared_task(name="notifications.sweep", ignore_result=True)
def sweep_notifications() -> None:
    """Reschedule deliveries whose task was lost (broker outage, worker crash); drop records past the retention."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from .services import deliveries_purge, deliveries_sweep

    deliveries_sweep()
    deliveries_purge(before=timezone.now() - timedelta(hours=settings.RETENTION_HOURS))
