from __future__ import annotations

from django.apps import AppConfig


class CompatConfig(AppConfig):
    """SPEC §5b: the contract of the existing web client, mounted under settings.COMPAT_PREFIX."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.api.compat"
    label = "compat"
    verbose_name = "Web client compatibility"
