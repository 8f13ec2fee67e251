"""Celery tasks of notifications: thin wrappers around the delivery services."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="alerts.deliver_notification", ignore_result=True, acks_late=True)
def deliver_notification(destination_id: int) -> None:
    """Send the destination's due deliveries (one rate-limited batch) and schedule the next run if more wait."""
    from .delivery import destination_deliver
    from .scheduling import destination_schedule, destination_schedule_clear

    destination_schedule_clear(destination_id=destination_id)
    next_in = destination_deliver(destination_id=destination_id)
    if next_in is not None:
        destination_schedule(destination_id=destination_id, delay=next_in)


@shared_task(name="alerts.sweep_notifications", ignore_result=True)
def sweep_notifications() -> None:
    """Reschedule deliveries whose task was lost (broker outage, worker crash)."""
    from .services import deliveries_sweep

    deliveries_sweep()
