"""Rate limits through the shared Redis cache: per client IP for anonymous calls, per user id when signed in."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle


class AnonIpThrottle(AnonRateThrottle):
    """ANON_RATE_LIMIT per client IP; read per request so the setting can change without a restart."""

    def get_rate(self) -> str:
        return settings.ANON_RATE_LIMIT

    def get_ident(self, request) -> str:
        # The socket peer, never a client-supplied X-Forwarded-For: behind a proxy, daphne's --proxy-headers
        # already puts the real client address here.
        return request.META.get("REMOTE_ADDR", "")


class UserIdThrottle(UserRateThrottle):
    """USER_RATE_LIMIT per signed-in user id; anonymous calls are left to AnonIpThrottle (one counter, not two)."""

    def get_rate(self) -> str:
        return settings.USER_RATE_LIMIT

    def allow_request(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return True
        return super().allow_request(request, view)
