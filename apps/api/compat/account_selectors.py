"""Reads of the client's accounts: the user object, the per-user rule list, the watchlist, the webhooks.

`compat_user_alert_types` and `compat_user_watchlist` are what other parts of the compatibility surface (the alert
WebSocket) use to filter a user's alerts the way their webhooks are filtered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from apps.alerts.models import AlertRule
from apps.collector.models import Symbol
from screener_project.kernel.clock import iso_utc

from .account_services import QUOTE_ASSETS, account_profile_get, profile_rules_switched_off
from .base import rule_id
from .models import AccountProfile, UserWebhook
from .rule_catalogue import (
    CLIENT_RULES,
    CLIENT_RULES_BY_TYPE,
    OTHER_CATEGORY,
    rule_shown,
    send_all_rules,
)


def _iso(moment: datetime | None) -> str | None:
    return iso_utc(moment) if moment else None


def account_status(profile: AccountProfile, *, now: datetime | None = None) -> str:
    """The stored status, except that a trial or plan past its end date reads as "expired"."""
    now = now or timezone.now()
    if profile.status == AccountProfile.Status.TRIAL and profile.trial_ends_at and profile.trial_ends_at <= now:
        return AccountProfile.Status.EXPIRED
    if profile.status == AccountProfile.Status.ACTIVE and profile.plan_expires_at and profile.plan_expires_at <= now:
        return AccountProfile.Status.EXPIRED
    return profile.status


def user_payload(*, user) -> dict[str, Any]:
    """The client's user object (apps/api/compat/README.md)."""
    profile = account_profile_get(user=user)
    return {
        "id": user.pk,
        "email": user.email or user.get_username(),
        "role": "admin" if user.is_staff else "user",
        "status": account_status(profile),
        "trial_ends_at": _iso(profile.trial_ends_at),
        "plan": profile.plan or None,
        "plan_activated_at": _iso(profile.plan_activated_at),
        "plan_expires_at": _iso(profile.plan_expires_at),
        "tv_addon_active": profile.tv_addon_active,
        "created_at": _iso(user.date_joined),
        "last_login_at": _iso(user.last_login),
    }


def rule_payload(rule: AlertRule, *, disabled: set[str] | frozenset[str]) -> dict[str, Any]:
    """A rule this screener has: enabled when it is on for everyone and this user receives it (`disabled`: the rule
    types they do not receive, rules_switched_off)."""
    client_rule = CLIENT_RULES_BY_TYPE.get(rule.rule_type)
    return {
        "rule_type": rule_id(rule.rule_type),
        "description": rule.description or rule.name,
        "enabled": rule.enabled and rule.rule_type not in disabled,
        "category": client_rule.category if client_rule else OTHER_CATEGORY,
    }


def user_rules(*, user) -> list[dict[str, Any]]:
    """The client's catalogue in its order, then (when the operator sends every rule) this screener's other rules.

    A catalogue rule this screener does not have yet reads as the user's switch, else the client's default.
    """
    switched_off = profile_rules_switched_off(account_profile_get(user=user))
    rows = {rule.rule_type: rule for rule in AlertRule.objects.order_by("id")}
    rules = []
    for client_rule in CLIENT_RULES:
        row = rows.get(client_rule.rule_type)
        if row is not None:
            rules.append(rule_payload(row, disabled=switched_off))
            continue
        rules.append(
            {
                "rule_type": rule_id(client_rule.rule_type),
                "description": client_rule.description,
                "enabled": client_rule.rule_type not in switched_off,
                "category": client_rule.category,
            }
        )
    if send_all_rules():
        rules += [rule_payload(r, disabled=switched_off) for t, r in rows.items() if t not in CLIENT_RULES_BY_TYPE]
    return rules


def compat_user_alert_types(user) -> frozenset[str] | None:
    """The rule types this user receives: None for every rule (they switched none off, and the operator sends every
    rule), else the rule types this surface shows but the ones they switched off (a rule disabled for everyone fires
    for no one, so it needs no filtering here)."""
    disabled = compat_user_disabled_rules(user)
    if not disabled and send_all_rules():
        return None
    types = AlertRule.objects.exclude(rule_type__in=disabled).values_list("rule_type", flat=True)
    return frozenset(t for t in types if rule_shown(t))


def compat_user_disabled_rules(user) -> frozenset[str]:
    """The rule types this user does not receive: switched off, or off by the client's default and not switched on."""
    return profile_rules_switched_off(account_profile_get(user=user))


def compat_user_watchlist(user) -> list[str]:
    """The user's watchlist symbols, in their order."""
    return list(account_profile_get(user=user).watchlist)


def base_asset(symbol: str, known: dict[str, str]) -> str:
    """The base asset the client shows for a pair: the listed one, else the pair without its quote suffix."""
    if known.get(symbol):
        return known[symbol]
    for quote in QUOTE_ASSETS:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)]
    return symbol


def watchlist_payload(profile: AccountProfile) -> dict[str, Any]:
    """The watchlist as the client keys it, by base asset (`ETH` for ETHUSDT), in the user's order."""
    pairs = list(profile.watchlist)
    known = dict(Symbol.objects.filter(symbol__in=pairs).values_list("symbol", "base_asset"))
    symbols = list(dict.fromkeys(base_asset(pair, known) for pair in pairs))
    return {"symbols": symbols, "count": len(symbols)}


def user_webhooks(*, user) -> QuerySet[UserWebhook]:
    return UserWebhook.objects.filter(user=user).order_by("id")


def user_webhook_get(*, user, webhook_id: int) -> UserWebhook | None:
    """One of the user's webhooks; None for another user's (which the caller reports as not found)."""
    return UserWebhook.objects.filter(user=user, pk=webhook_id).select_related("destination", "user").first()


def webhook_payload(webhook: UserWebhook) -> dict[str, Any]:
    """The client's webhook object (apps/api/compat/README.md)."""
    return {
        "id": webhook.pk,
        "user_id": webhook.user_id,
        "name": webhook.name,
        "webhook_type": webhook.webhook_type,
        "webhook_url": webhook.webhook_url,
        "scope": webhook.scope,
        "is_enabled": webhook.is_enabled,
        "max_alerts_per_minute": webhook.max_alerts_per_minute,
        "config": webhook.config or {},
        "created_at": iso_utc(webhook.created_at),
        "updated_at": iso_utc(webhook.updated_at),
    }
