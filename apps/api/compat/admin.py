"""The client's accounts in the admin: the profile inline on the user, the users' webhooks, and invites.

Operators create users here (email as the username), or invites that let people sign up themselves
(COMPAT_REGISTRATION decides whether sign-up is closed, needs an invite, or is open).
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from screener_project.strict_json import json_formfield_overrides

from .account_services import compat_destinations_sync
from .models import AccountProfile, Invite, UserWebhook

User = get_user_model()


class AccountProfileInline(admin.StackedInline):
    model = AccountProfile
    can_delete = False
    max_num = 1
    verbose_name_plural = "web client profile"
    formfield_overrides = json_formfield_overrides()
    fields = [
        "status",
        "trial_ends_at",
        "plan",
        "plan_activated_at",
        "plan_expires_at",
        "tv_addon_active",
        "tv_username",
        "membership_id",
        "disabled_rule_types",
        "enabled_rule_types",
        "watchlist",
    ]


class UserWebhookInline(admin.TabularInline):
    model = UserWebhook
    extra = 0
    fields = ["name", "webhook_type", "webhook_url", "scope", "is_enabled", "max_alerts_per_minute", "destination"]
    readonly_fields = ["destination"]
    show_change_link = True


if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    inlines = [*BaseUserAdmin.inlines, AccountProfileInline, UserWebhookInline]

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        # Watchlist, rule switches or webhooks edited here change what the user's webhooks receive.
        compat_destinations_sync(user=form.instance)


@admin.register(UserWebhook)
class UserWebhookAdmin(admin.ModelAdmin):
    formfield_overrides = json_formfield_overrides()
    list_display = ["name", "user", "webhook_type", "scope", "is_enabled", "max_alerts_per_minute", "destination"]
    list_filter = ["webhook_type", "scope", "is_enabled"]
    search_fields = ["name", "webhook_url", "user__email"]
    list_select_related = ["user", "destination"]
    readonly_fields = ["destination", "created_at", "updated_at"]
    autocomplete_fields = ["user"]

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        compat_destinations_sync(user=obj.user)

    def delete_model(self, request, obj) -> None:
        from .account_services import webhook_delete

        webhook_delete(webhook=obj)

    def delete_queryset(self, request, queryset) -> None:
        from .account_services import webhook_delete

        for webhook in queryset:
            webhook_delete(webhook=webhook)


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    list_display = ["code", "note", "uses", "max_uses", "expires_at", "trial_days", "created_at"]
    search_fields = ["code", "note"]
    readonly_fields = ["uses", "created_by", "created_at"]

    def get_changeform_initial_data(self, request) -> dict:
        from .auth_services import invite_code_new

        return {**super().get_changeform_initial_data(request), "code": invite_code_new()}

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
