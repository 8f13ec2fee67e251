"""Writes of the client's accounts: profiles, rule switches, watchlists, webhooks and their mirror destinations.

Every change that can alter what a user's webhooks should receive (a webhook, the watchlist, a rule switch) ends
with `compat_destinations_sync(user=...)`, which rewrites the user's notification destinations from their webhooks:
the notifications pipeline then filters, rate-limits and sends as it does for every destination.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

from apps.alerts.models import AlertRule
from apps.alerts.notifications.messages import AlertMessage
from apps.alerts.notifications.models import Destination
from apps.alerts.notifications.services import destination_resume
from apps.alerts.notifications.transports import TransportError, transport_for
from apps.api.fanout import user_rules_broadcast
from apps.collector.models import Symbol
from screener_project.kernel.clock import iso_utc

from .models import AccountProfile, UserWebhook
from .rule_catalogue import CLIENT_RULE_TYPES, rules_switched_off, send_all_rules

logger = logging.getLogger(__name__)

WATCHLIST_MAX = 500

# The client's webhook types as notification kinds ("http" is the signed generic JSON webhook).
DESTINATION_KINDS = {
    UserWebhook.Type.DISCORD: Destination.Kind.DISCORD,
    UserWebhook.Type.TELEGRAM: Destination.Kind.TELEGRAM,
    UserWebhook.Type.SLACK: Destination.Kind.SLACK,
    UserWebhook.Type.HTTP: Destination.Kind.WEBHOOK,
}


class WatchlistError(ValueError):
    """A watchlist change that cannot be made; `field` names the request field, `not_found` asks for a 404."""

    def __init__(self, message: str, *, field: str, not_found: bool = False) -> None:
        super().__init__(message)
        self.field = field
        self.not_found = not_found


def account_profile_get(*, user) -> AccountProfile:
    """The user's profile as stored now (never cached on the user object, which may live as long as a socket),
    created with the defaults the first time it is asked for."""
    profile, _ = AccountProfile.objects.get_or_create(user=user)
    return profile


def _profile_for_update(*, user) -> AccountProfile:
    AccountProfile.objects.get_or_create(user=user)
    return AccountProfile.objects.select_for_update().get(user=user)


# --- Rule switches ---------------------------------------------------------------------------------


def compat_user_key(user) -> str:
    """How live updates name a user of this surface (distinct from the Supabase ids of /api)."""
    return f"compat:{user.pk}"


def profile_rules_switched_off(profile: AccountProfile) -> frozenset[str]:
    """The rule types this profile's user does not receive (their switches over the client's defaults)."""
    return rules_switched_off(disabled=profile.disabled_rule_types, switched_on=profile.enabled_rule_types)


def rule_switch_set(*, user, rule_type: str, enabled: bool) -> AccountProfile:
    """Switch one rule on or off for this user only; the switch is kept whether or not this screener has the rule
    (the client's catalogue is larger than some screeners')."""
    with transaction.atomic():
        profile = _profile_for_update(user=user)
        before = profile_rules_switched_off(profile)
        disabled = sorted(t for t in profile.disabled_rule_types if t != rule_type)
        switched_on = sorted(t for t in profile.enabled_rule_types if t != rule_type)
        (switched_on if enabled else disabled).append(rule_type)
        disabled.sort()
        switched_on.sort()
        if disabled != profile.disabled_rule_types or switched_on != profile.enabled_rule_types:
            profile.disabled_rule_types = disabled
            profile.enabled_rule_types = switched_on
            profile.save(update_fields=["disabled_rule_types", "enabled_rule_types", "updated_at"])
        changed = profile_rules_switched_off(profile) != before
        if changed:
            compat_destinations_sync(user=user)
    if changed:
        try:  # the user's open alert sockets follow at once
            async_to_sync(user_rules_broadcast)(
                user_key=compat_user_key(user), disabled=sorted(profile_rules_switched_off(profile))
            )
        except Exception:  # saved all the same; sockets pick the switches up when they reconnect
            logger.exception("Could not tell the web processes about user %s's rule switches", user.pk)
    return profile


# --- Watchlist -------------------------------------------------------------------------------------


QUOTE_ASSETS = ("USDT", "FDUSD", "TRY")


def watchlist_pair(value: str) -> str:
    """The pair a watchlist entry names: the client sends base assets (`ETH` for ETHUSDT); a full pair is accepted
    too. A base asset maps to its USDT pair first, then FDUSD, then TRY, among the symbols the screener lists (to
    `<base>USDT` while that list is still empty). An unknown name is returned as it is, for the caller's check."""
    value = value.upper()
    if Symbol.objects.filter(symbol=value).exists():
        return value
    candidates = [value + quote for quote in QUOTE_ASSETS]
    listed = set(Symbol.objects.filter(symbol__in=candidates).values_list("symbol", flat=True))
    for candidate in candidates:
        if candidate in listed:
            return candidate
    if not Symbol.objects.exists() and not value.endswith(QUOTE_ASSETS):
        return value + "USDT"
    return value


def _unknown_symbols(symbols: list[str]) -> list[str]:
    """Symbols absent from the universe; none while the universe is still empty (nothing to check against)."""
    if not symbols or not Symbol.objects.exists():
        return []
    known = set(Symbol.objects.filter(symbol__in=symbols).values_list("symbol", flat=True))
    return [s for s in symbols if s not in known]


def _watchlist_save(*, user, profile: AccountProfile, symbols: list[str]) -> AccountProfile:
    if symbols != profile.watchlist:
        profile.watchlist = symbols
        profile.save(update_fields=["watchlist", "updated_at"])
        compat_destinations_sync(user=user)
    return profile


def watchlist_add(*, user, symbol: str) -> AccountProfile:
    """Append a (validated, upper-case) symbol or base asset; adding one already listed changes nothing."""
    symbol = watchlist_pair(symbol)
    if _unknown_symbols([symbol]):
        raise WatchlistError(f"Unknown symbol: {symbol}", field="symbol", not_found=True)
    with transaction.atomic():
        profile = _profile_for_update(user=user)
        if symbol in profile.watchlist:
            return profile
        if len(profile.watchlist) >= WATCHLIST_MAX:
            raise WatchlistError(f"The watchlist holds at most {WATCHLIST_MAX} symbols.", field="symbol")
        return _watchlist_save(user=user, profile=profile, symbols=[*profile.watchlist, symbol])


def watchlist_remove(*, user, symbol: str) -> AccountProfile:
    """Remove a symbol or base asset; removing one not listed changes nothing."""
    symbol = watchlist_pair(symbol)
    with transaction.atomic():
        profile = _profile_for_update(user=user)
        return _watchlist_save(user=user, profile=profile, symbols=[s for s in profile.watchlist if s != symbol])


def watchlist_replace(*, user, symbols: list[str]) -> AccountProfile:
    """Replace the whole watchlist with symbols or base assets (order kept, duplicates dropped)."""
    symbols = list(dict.fromkeys(watchlist_pair(s) for s in symbols))
    if len(symbols) > WATCHLIST_MAX:
        raise WatchlistError(f"The watchlist holds at most {WATCHLIST_MAX} symbols.", field="symbols")
    unknown = _unknown_symbols(symbols)
    if unknown:
        raise WatchlistError(f"Unknown symbols: {', '.join(unknown[:20])}.", field="symbols")
    with transaction.atomic():
        profile = _profile_for_update(user=user)
        return _watchlist_save(user=user, profile=profile, symbols=symbols)


# --- Webhooks --------------------------------------------------------------------------------------


def webhook_create(*, user, data: dict[str, Any]) -> UserWebhook:
    """A new webhook from validated fields; an HTTP webhook without a secret gets one (to verify signatures)."""
    config = dict(data.get("config") or {})
    if data["webhook_type"] == UserWebhook.Type.HTTP and not config.get("secret"):
        config["secret"] = secrets.token_urlsafe(32)
    with transaction.atomic():
        webhook = UserWebhook.objects.create(
            user=user,
            name=data.get("name") or f"{data['webhook_type'].title()} webhook",
            webhook_type=data["webhook_type"],
            webhook_url=data.get("webhook_url") or "",
            scope=data.get("scope") or UserWebhook.Scope.ALL,
            is_enabled=data.get("is_enabled", True),
            max_alerts_per_minute=data.get("max_alerts_per_minute") or 10,
            config=config,
        )
        compat_destinations_sync(user=user)
    webhook.refresh_from_db()
    return webhook


def webhook_update(*, webhook: UserWebhook, changes: dict[str, Any]) -> UserWebhook:
    """Apply validated changes (fields not given keep their values)."""
    for name in ("name", "webhook_type", "webhook_url", "scope", "is_enabled", "max_alerts_per_minute", "config"):
        if name in changes:
            setattr(webhook, name, changes[name] if changes[name] is not None else "")
    if webhook.webhook_type == UserWebhook.Type.HTTP and not (webhook.config or {}).get("secret"):
        webhook.config = {**(webhook.config or {}), "secret": secrets.token_urlsafe(32)}
    with transaction.atomic():
        webhook.save()
        compat_destinations_sync(user=webhook.user)
    webhook.refresh_from_db()
    return webhook


def webhook_toggle(*, webhook: UserWebhook, enabled: bool) -> UserWebhook:
    """Switch a webhook on or off; switching it on also lifts a pause left by earlier failures."""
    webhook = webhook_update(webhook=webhook, changes={"is_enabled": enabled})
    if enabled and webhook.destination is not None and webhook.destination.is_paused:
        destination_resume(destination=webhook.destination)
    return webhook


def webhook_delete(*, webhook: UserWebhook) -> None:
    """Delete the webhook and its mirror destination (with the deliveries still waiting for it)."""
    with transaction.atomic():
        if webhook.destination_id:
            Destination.objects.filter(pk=webhook.destination_id).delete()
        webhook.delete()


def webhook_test(*, webhook: UserWebhook) -> dict[str, Any]:
    """Send one test message now, through the same transport as alerts; returns whether it arrived and why not."""
    compat_destinations_sync(user=webhook.user)
    webhook.refresh_from_db()
    destination = webhook.destination
    if destination is None:  # cannot happen after a sync; kept so a bug reports instead of raising
        return {"success": False, "message": "The webhook has no destination.", "status_code": None}
    now = timezone.now().replace(microsecond=0)
    message = AlertMessage(
        payload={
            "id": str(uuid.uuid4()),
            "triggered_at": iso_utc(now),
            "symbol": "TESTUSDT",
            "alert_type": "test",
            "timeframe": "1m",
            "price": 1.0,
            "volume": 0.0,
            "change_pct": 0.0,
            "metadata": {"test": True},
        },
        rule_name="Test",
        category="neutral",
        description="A test message: this webhook is set up correctly.",
    )
    try:
        result = transport_for(destination).send([message])
    except TransportError as exc:
        return {"success": False, "message": exc.message, "status_code": exc.status_code}
    if destination.is_paused:
        # The destination works again (the user fixed it): send what waited while it was paused.
        destination_resume(destination=destination)
    return {"success": True, "message": "Test message delivered.", "status_code": result.status_code}


def _destination_fields(*, webhook: UserWebhook, profile: AccountProfile, user) -> dict[str, Any]:
    config = webhook.config or {}
    watch_only = webhook.scope == UserWebhook.Scope.WATCHLIST
    kind = DESTINATION_KINDS[webhook.webhook_type]
    return {
        "name": f"{user.get_username()}: {webhook.name}"[:100],
        "kind": kind,
        "url": "" if kind == Destination.Kind.TELEGRAM else webhook.webhook_url,
        "telegram_bot_token": str(config.get("bot_token") or "") if kind == Destination.Kind.TELEGRAM else "",
        "telegram_chat_id": str(config.get("chat_id") or "") if kind == Destination.Kind.TELEGRAM else "",
        "secret": str(config.get("secret") or "") if kind == Destination.Kind.WEBHOOK else "",
        # Only the rules the client can switch, unless the operator sends every rule to this surface.
        "rule_types": [] if send_all_rules() else sorted(CLIENT_RULE_TYPES),
        "excluded_rule_types": sorted(profile_rules_switched_off(profile)),
        "symbols": list(profile.watchlist) if watch_only else [],
        # A watchlist-scoped webhook with an empty watchlist wants nothing (an empty symbol filter would mean all).
        # A deactivated account's webhooks stop too (the admin's save of the user runs this sync).
        "enabled": webhook.is_enabled and user.is_active and not (watch_only and not profile.watchlist),
        "min_interval_seconds": 60.0 / max(1, webhook.max_alerts_per_minute),
    }


def compat_destinations_sync(*, user) -> None:
    """Rewrite the user's mirror destinations from their webhooks, profile switches and watchlist; delete the ones
    left without a webhook.

    A change of URL, bot token or chat id lifts a pause (the old address was what failed).
    """
    profile = account_profile_get(user=user)
    webhooks = list(UserWebhook.objects.filter(user=user).select_related("destination"))
    # A destination no webhook points at any more (its webhook was deleted in the admin) must stop receiving.
    Destination.objects.filter(owner=user).exclude(
        pk__in=[w.destination_id for w in webhooks if w.destination_id]
    ).delete()
    for webhook in webhooks:
        fields = _destination_fields(webhook=webhook, profile=profile, user=user)
        destination = webhook.destination
        if destination is None:
            destination = Destination.objects.create(owner=user, **fields)
            UserWebhook.objects.filter(pk=webhook.pk).update(destination=destination)
            continue
        address = ("url", "telegram_bot_token", "telegram_chat_id")
        moved = any(getattr(destination, name) != fields[name] for name in address)
        changed = [name for name, value in fields.items() if getattr(destination, name) != value]
        if moved and destination.is_paused:
            fields.update(paused_at=None, paused_reason="", consecutive_failures=0)
            changed += ["paused_at", "paused_reason", "consecutive_failures"]
        if changed:
            for name in changed:
                setattr(destination, name, fields[name])
            destination.save(update_fields=[*changed, "updated_at"])


def known_rule_type(rule_type: str) -> bool:
    """A rule of the client's catalogue (whether or not this screener has it yet) or one this screener has."""
    return rule_type in CLIENT_RULE_TYPES or AlertRule.objects.filter(rule_type=rule_type).exists()
