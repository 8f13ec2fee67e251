"""Routes of the compatibility surface, relative to settings.COMPAT_PREFIX (SPEC §5b)."""

from __future__ import annotations

urlpatterns: list = []
