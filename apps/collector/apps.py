from __future__ import annotations

from django.apps import AppConfig


class CollectorConfig(AppConfig):
    name = "apps.collector"
    label = "collector"
    default_auto_field = "django.db.models.BigAutoField"
