from __future__ import annotations

from django.contrib import admin, messages
from django.db import models
from django.db.models import Count, Q
from django.utils import timezone

from screener_project.strict_json import json_formfield_overrides

from .models import Delivery, DeliveryAttempt, Destination
from .services import destination_resume


class PausedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("paused", "Paused"), ("active", "Active")]

    def queryset(self, request, queryset):
        if self.value() == "paused":
            return queryset.filter(paused_at__isnull=False)
        if self.value() == "active":
            return queryset.filter(paused_at__isnull=True)
        return queryset


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "kind",
        "enabled",
        "state",
        "paused_reason",
        "consecutive_failures",
        "pending",
        "user_id",
        "owner",
    ]
    list_filter = [PausedFilter, "kind", "enabled"]
    search_fields = ["name", "url", "telegram_chat_id", "user_id"]
    readonly_fields = [
        "paused_at",
        "paused_reason",
        "consecutive_failures",
        "user_id",
        "owner",
        "created_at",
        "updated_at",
    ]
    list_select_related = ["owner"]
    actions = ["resume", "pause"]
    formfield_overrides = {**json_formfield_overrides(), models.URLField: {"assume_scheme": "https"}}
    fieldsets = [
        (None, {"fields": ["name", "kind", "enabled"]}),
        (
            "Where",
            {
                "fields": ["url", "telegram_bot_token", "telegram_chat_id", "secret"],
                "description": "Discord and generic webhooks use the URL; Telegram the bot token and chat id. "
                "Generic webhooks are signed with the secret (HMAC-SHA256).",
            },
        ),
        (
            "Filters",
            {
                "fields": ["rule_types", "symbols", "excluded_rule_types", "min_interval_seconds"],
                "description": "JSON lists; empty rule types or symbols mean all, excluded rule types are never sent. "
                "A destination with an owner mirrors that user's webhook and is rewritten when the user changes it.",
            },
        ),
        (
            "Health",
            {
                "fields": [
                    "paused_at",
                    "paused_reason",
                    "consecutive_failures",
                    "user_id",
                    "owner",
                    "created_at",
                    "updated_at",
                ]
            },
        ),
    ]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(pending_count=Count("deliveries", filter=Q(deliveries__status=Delivery.Status.PENDING)))
        )

    @admin.display(description="state", ordering="paused_at")
    def state(self, obj: Destination) -> str:
        return f"paused since {obj.paused_at:%Y-%m-%d %H:%M}" if obj.paused_at else "active"

    @admin.display(description="pending", ordering="pending_count")
    def pending(self, obj: Destination) -> int:
        return obj.pending_count

    @admin.action(description="Resume the selected destinations and send what waited")
    def resume(self, request, queryset):
        total = sum(destination_resume(destination=d) for d in queryset)
        self.message_user(
            request,
            f"Resumed {queryset.count()} destination(s); {total} pending delivery(ies) queued.",
            messages.SUCCESS,
        )

    @admin.action(description="Pause the selected destinations")
    def pause(self, request, queryset):
        count = queryset.filter(paused_at__isnull=True).update(
            paused_at=timezone.now(), paused_reason="paused by operator"
        )
        self.message_user(request, f"Paused {count} destination(s).", messages.SUCCESS)


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ["number", "at", "ok", "status_code", "error", "duration_ms", "batch_size"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "alert_triggered_at",
        "alert_symbol",
        "alert_type",
        "destination",
        "status",
        "attempts",
        "last_error",
        "sent_at",
    ]
    list_filter = ["status", "destination__kind", "destination"]
    search_fields = ["alert_symbol", "alert_type", "alert_id"]
    date_hierarchy = "created_at"
    list_select_related = ["destination"]
    inlines = [DeliveryAttemptInline]
    readonly_fields = [
        "destination",
        "alert_triggered_at",
        "alert_symbol",
        "alert_type",
        "alert_id",
        "status",
        "attempts",
        "last_error",
        "next_attempt_at",
        "created_at",
        "sent_at",
    ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
