from __future__ import annotations

from django.apps import AppConfig


class CompatConfig(AppConfig):
    """The contract of the existing web client (apps/api/compat/README.md), mounted under settings.COMPAT_PREFIX."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.api.compat"
    label = "compat"
    verbose_name = "Web client compatibility"
