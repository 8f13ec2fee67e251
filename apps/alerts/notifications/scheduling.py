"""Schedule the per-destination send task without flooding the queue.

Redis key `P:notif:due:<destination id>` holds the due time (epoch seconds) of the task already queued for that
destination; a new request is queued only when it is due sooner. The task clears the key when it starts, so an
alert arriving while a batch is being sent always gets a task of its own.
"""

from __future__ import annotations

import time

from screener_project.kernel.redis_keys import notif_due_key, redis_client

# Returns 1 when the caller should queue a task due at ARGV[1] (no task queued, or the queued one is later).
_CLAIM_SCRIPT = """
local current = redis.call('GET', KEYS[1])
local due = tonumber(ARGV[1])
if current and tonumber(current) <= due + 0.05 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
return 1
"""


def destination_schedule(*, destination_id: int, delay: float) -> bool:
    """Queue `notifications.deliver` for the destination in `delay` seconds unless one is due sooner."""
    from .tasks import deliver_notification

    delay = max(0.0, delay)
    due = time.time() + delay
    # The marker outlives the due time a little, so a task lost by the broker blocks rescheduling only briefly.
    ttl_ms = int((delay + 30) * 1000)
    if not redis_client().eval(_CLAIM_SCRIPT, 1, notif_due_key(destination_id), f"{due:.3f}", ttl_ms):
        return False
    deliver_notification.apply_async(args=[destination_id], countdown=delay or None)
    return True


def destination_schedule_clear(*, destination_id: int) -> None:
    redis_client().delete(notif_due_key(destination_id))


# Above this many destinations, the caller publishes one dispatch task and a notifications worker fans out.
DIRECT_SCHEDULE_MAX = 16


def destinations_schedule_soon(*, destination_ids: list[int]) -> None:
    """Schedule the destinations now, cheaply for the caller however many there are."""
    if len(destination_ids) <= DIRECT_SCHEDULE_MAX:
        destinations_schedule_now(destination_ids=destination_ids)
        return
    from .tasks import dispatch_notifications

    dispatch_notifications.apply_async(args=[destination_ids], queue="notifications")


def destinations_schedule_now(*, destination_ids: list[int]) -> int:
    """`destination_schedule(delay=0)` for many destinations: one Redis round trip, one broker connection."""
    from .tasks import deliver_notification

    due = f"{time.time():.3f}"
    pipe = redis_client().pipeline(transaction=False)
    for destination_id in destination_ids:
        pipe.eval(_CLAIM_SCRIPT, 1, notif_due_key(destination_id), due, 30_000)
    won = [d for d, claimed in zip(destination_ids, pipe.execute(), strict=True) if claimed]
    if won:
        with deliver_notification.app.producer_or_acquire() as producer:
            for destination_id in won:
                deliver_notification.apply_async(args=[destination_id], producer=producer)
    return len(won)
