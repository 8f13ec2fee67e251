"""Reads of notification state for the admin, the health endpoint and the API."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q

from .models import Delivery, Destination


def destinations_paused() -> list[dict[str, Any]]:
    """Destinations paused after repeated or permanent failures, with why and how much waits for them."""
    rows = (
        Destination.objects.filter(paused_at__isnull=False)
        .annotate(pending=Count("deliveries", filter=Q(deliveries__status=Delivery.Status.PENDING)))
        .order_by("paused_at")
    )
    return [
        {
            "id": d.pk,
            "name": d.name,
            "kind": d.kind,
            "user_id": d.user_id,
            "paused_at": d.paused_at.isoformat(),
            "reason": d.paused_reason,
            "pending": d.pending,
        }
        for d in rows
    ]


def destinations_paused_count() -> int:
    return Destination.objects.filter(paused_at__isnull=False).count()
