"""Accounts of the compatibility surface (see README.md): login, the user, rule switches, watchlist, webhooks.

One class per resource, each with its input serializer; the logic is in account_services / account_selectors.
"""

from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import update_last_login
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed, NotFound, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

from . import account_selectors as selectors
from . import account_services as services
from .account_checks import UnsafeDestination, telegram_config_errors, webhook_url_check
from .base import CompatApi, rule_type_of
from .models import UserWebhook
from .tokens import compat_token_issue

symbol_validator = RegexValidator(r"^[A-Z0-9]{2,32}$", "Must be a symbol of 2-32 letters and digits, e.g. BTCUSDT.")
CONFIG_MAX_CHARS = 2000


# --- Login ---------------------------------------------------------------------------------------


class _LoginThrottle(SimpleRateThrottle):
    """COMPAT_LOGIN_RATE_LIMIT (default 10/minute) login attempts per key, counted in the shared cache."""

    def get_rate(self) -> str:
        return settings.COMPAT_LOGIN_RATE_LIMIT


class LoginIpThrottle(_LoginThrottle):
    scope = "compat_login_ip"

    def get_cache_key(self, request, view) -> str:
        # The socket peer (see apps.api.throttling.AnonIpThrottle): a client-sent X-Forwarded-For is never trusted.
        return self.cache_format % {"scope": self.scope, "ident": request.META.get("REMOTE_ADDR", "")}


def email_throttle_ident(data: object) -> str | None:
    """The body's email as a throttle key: hashed, so any text the client sends makes a valid cache key (no encoding
    or length problem), and case-blind. None when the body names no email."""
    email = data.get("email") if isinstance(data, dict) else None
    if not isinstance(email, str) or not email.strip():
        return None
    return hashlib.sha256(email.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()


class LoginEmailThrottle(_LoginThrottle):
    """Per email, so guessing one account's password from many addresses is limited too."""

    scope = "compat_login_email"

    def get_cache_key(self, request, view) -> str | None:
        # A body that does not parse is answered 400 by the view; reading it here raises that error once.
        ident = email_throttle_ident(request.data)
        return None if ident is None else self.cache_format % {"scope": self.scope, "ident": ident}


class UserPayloadSerializer(serializers.Serializer):
    class Meta:
        ref_name = "CompatUser"

    id = serializers.IntegerField()
    email = serializers.CharField()
    role = serializers.ChoiceField(choices=["user", "admin"])
    status = serializers.ChoiceField(choices=["trial", "active", "expired", "canceled"])
    trial_ends_at = serializers.DateTimeField(allow_null=True)
    plan = serializers.CharField(allow_null=True)
    plan_activated_at = serializers.DateTimeField(allow_null=True)
    plan_expires_at = serializers.DateTimeField(allow_null=True)
    tv_addon_active = serializers.BooleanField()
    created_at = serializers.DateTimeField(allow_null=True)
    last_login_at = serializers.DateTimeField(allow_null=True)


class SessionSerializer(serializers.Serializer):
    class Meta:
        ref_name = "CompatSession"

    user = UserPayloadSerializer()
    token = serializers.CharField()


def _session(user) -> dict:
    return {"user": selectors.user_payload(user=user), "token": compat_token_issue(user)}


class LoginApi(CompatApi):
    authentication_classes: list = []
    throttle_classes = [LoginIpThrottle, LoginEmailThrottle]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "CompatLoginInput"

        email = serializers.CharField(max_length=254, trim_whitespace=True)
        password = serializers.CharField(max_length=1024, trim_whitespace=False)

    def get_authenticate_header(self, request) -> str:
        # A refused login is 401 (with no authenticator DRF would make it 403): the client's "not signed in".
        return "Bearer"

    @extend_schema(summary="Sign in with email and password", request=InputSerializer, responses=SessionSerializer)
    def post(self, request):
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        email, password = body.validated_data["email"], body.validated_data["password"]
        User = get_user_model()
        # The email is the login; accounts made with `createsuperuser` may differ in username, so either matches.
        user = (
            User.objects.filter(email__iexact=email).order_by("id").first()
            or User.objects.filter(username__iexact=email).order_by("id").first()
        )
        signed_in = authenticate(request._request, username=user.get_username(), password=password) if user else None
        if signed_in is None:
            if user is not None and not user.is_active and user.check_password(password):
                raise AuthenticationFailed("This account is disabled.")
            raise AuthenticationFailed("Invalid email or password.")
        update_last_login(None, signed_in)
        return Response(_session(signed_in))


class RefreshApi(CompatApi):
    permission_classes = [IsAuthenticated]

    @extend_schema(summary="A fresh token for the signed-in user", request=None, responses=SessionSerializer)
    def post(self, request):
        return Response(_session(request.user))


class MeApi(CompatApi):
    permission_classes = [IsAuthenticated]

    @extend_schema(summary="The signed-in user", responses=UserPayloadSerializer)
    def get(self, request):
        return Response(selectors.user_payload(user=request.user))


# --- Rule switches -------------------------------------------------------------------------------


class RuleSerializer(serializers.Serializer):
    class Meta:
        ref_name = "CompatRule"

    rule_type = serializers.CharField(help_text="The client's rule id, e.g. futures_big_bull_60")
    description = serializers.CharField()
    enabled = serializers.BooleanField()
    category = serializers.CharField()


class AlertRuleListApi(CompatApi):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="The rules, `enabled` for this user",
        responses=inline_serializer(
            "CompatRuleListOutput", fields={"rules": RuleSerializer(many=True), "count": serializers.IntegerField()}
        ),
    )
    def get(self, request):
        rules = selectors.user_rules(user=request.user)
        return Response({"rules": rules, "count": len(rules)})


class AlertRuleDetailApi(CompatApi):
    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "CompatRuleSwitch"

        enabled = serializers.BooleanField()

    @extend_schema(
        summary="Switch a rule on or off for this user only", request=InputSerializer, responses=RuleSerializer
    )
    def put(self, request, rule_type: str):
        plain = rule_type_of(rule_type)
        if not services.known_rule_type(plain):
            raise NotFound(f"Unknown rule: {rule_type}")
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.rule_switch_set(user=request.user, rule_type=plain, enabled=body.validated_data["enabled"])
        found = next(r for r in selectors.user_rules(user=request.user) if rule_type_of(r["rule_type"]) == plain)
        return Response(found)

    patch = put


# --- Watchlist -----------------------------------------------------------------------------------


class WatchlistSerializer(serializers.Serializer):
    class Meta:
        ref_name = "CompatWatchlist"

    symbols = serializers.ListField(child=serializers.CharField())
    count = serializers.IntegerField()


class SymbolField(serializers.CharField):
    """A symbol, upper-cased before it is validated."""

    def __init__(self, **kwargs) -> None:
        super().__init__(max_length=32, validators=[symbol_validator], **kwargs)

    def to_internal_value(self, data):
        return super().to_internal_value(data).upper()


def _watchlist_call(action, **kwargs) -> Response:
    try:
        profile = action(**kwargs)
    except services.WatchlistError as exc:
        if exc.not_found:
            raise NotFound(str(exc)) from None
        raise ValidationError({exc.field: [str(exc)]}) from None
    return Response(selectors.watchlist_payload(profile))


class WatchlistApi(CompatApi):
    permission_classes = [IsAuthenticated]

    class SymbolSerializer(serializers.Serializer):
        class Meta:
            ref_name = "CompatWatchlistSymbol"

        symbol = SymbolField()

    class SymbolsSerializer(serializers.Serializer):
        class Meta:
            ref_name = "CompatWatchlistSymbols"

        symbols = serializers.ListField(child=SymbolField(), max_length=services.WATCHLIST_MAX, allow_empty=True)

    @extend_schema(summary="The user's watchlist", responses=WatchlistSerializer)
    def get(self, request):
        return Response(selectors.watchlist_payload(services.account_profile_get(user=request.user)))

    @extend_schema(
        summary="Add a symbol (404 when the screener does not know it)",
        request=SymbolSerializer,
        responses=WatchlistSerializer,
    )
    def post(self, request):
        body = self.SymbolSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return _watchlist_call(services.watchlist_add, user=request.user, symbol=body.validated_data["symbol"])

    @extend_schema(
        summary="Remove a symbol (`{symbol}` in the body or `?symbol=`)",
        request=SymbolSerializer,
        responses=WatchlistSerializer,
    )
    def delete(self, request):
        data = request.data if isinstance(request.data, dict) and request.data else request.query_params
        body = self.SymbolSerializer(data=data)
        body.is_valid(raise_exception=True)
        return _watchlist_call(services.watchlist_remove, user=request.user, symbol=body.validated_data["symbol"])

    @extend_schema(summary="Replace the watchlist", request=SymbolsSerializer, responses=WatchlistSerializer)
    def put(self, request):
        body = self.SymbolsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return _watchlist_call(services.watchlist_replace, user=request.user, symbols=body.validated_data["symbols"])


class WatchlistSymbolApi(CompatApi):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Remove a symbol named in the path",
        operation_id="compat_pulsaryx_api_watchlist_symbol_destroy",
        request=None,
        responses=WatchlistSerializer,
    )
    def delete(self, request, symbol: str):
        body = WatchlistApi.SymbolSerializer(data={"symbol": symbol})
        body.is_valid(raise_exception=True)
        return _watchlist_call(services.watchlist_remove, user=request.user, symbol=body.validated_data["symbol"])


# --- Webhooks ------------------------------------------------------------------------------------


class WebhookSerializer(serializers.Serializer):
    """Input of create (POST) and update (PUT/PATCH: fields not sent keep their values); cross-checked as a whole."""

    class Meta:
        ref_name = "CompatWebhookInput"

    name = serializers.CharField(max_length=100, required=False)
    webhook_type = serializers.ChoiceField(choices=UserWebhook.Type.values)
    webhook_url = serializers.CharField(max_length=500, required=False, allow_blank=True, allow_null=True)
    scope = serializers.ChoiceField(choices=UserWebhook.Scope.values, required=False)
    is_enabled = serializers.BooleanField(required=False)
    max_alerts_per_minute = serializers.IntegerField(min_value=1, max_value=600, required=False)
    config = serializers.DictField(required=False, allow_null=True)

    def validate_config(self, value):
        value = value or {}
        if len(json.dumps(value)) > CONFIG_MAX_CHARS:
            raise ValidationError(f"At most {CONFIG_MAX_CHARS} characters of JSON.")
        return value

    def validate(self, attrs):
        instance: UserWebhook | None = self.instance
        merged = {
            "webhook_type": attrs.get("webhook_type", instance.webhook_type if instance else None),
            "webhook_url": attrs.get("webhook_url", instance.webhook_url if instance else "") or "",
            "config": attrs.get("config", instance.config if instance else {}) or {},
        }
        if merged["webhook_type"] == UserWebhook.Type.TELEGRAM:
            errors = telegram_config_errors(merged["config"])
            if errors:
                raise ValidationError({"config": errors})
            if merged["webhook_url"]:
                _check_url(merged["webhook_url"])
        else:
            if not merged["webhook_url"]:
                raise ValidationError({"webhook_url": [f"A {merged['webhook_type']} webhook needs a URL."]})
            _check_url(merged["webhook_url"])
            secret = merged["config"].get("secret")
            if secret is not None and (not isinstance(secret, str) or not 16 <= len(secret) <= 128):
                raise ValidationError({"config": {"secret": ["A string of 16-128 characters."]}})
        if "config" in attrs and merged["webhook_type"] == UserWebhook.Type.TELEGRAM:
            config = dict(attrs["config"])
            config["chat_id"] = str(config["chat_id"]).strip()
            config["bot_token"] = str(config["bot_token"]).strip()
            attrs["config"] = config
        return attrs


def _check_url(url: str) -> None:
    try:
        webhook_url_check(url)
    except UnsafeDestination as exc:
        raise ValidationError({"webhook_url": [str(exc)]}) from None


class WebhookPayloadSerializer(serializers.Serializer):
    class Meta:
        ref_name = "CompatWebhook"

    id = serializers.IntegerField()
    user_id = serializers.IntegerField()
    name = serializers.CharField()
    webhook_type = serializers.ChoiceField(choices=UserWebhook.Type.values)
    webhook_url = serializers.CharField()
    scope = serializers.ChoiceField(choices=UserWebhook.Scope.values)
    is_enabled = serializers.BooleanField()
    max_alerts_per_minute = serializers.IntegerField()
    config = serializers.DictField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


def _own_webhook(request, webhook_id: str) -> UserWebhook:
    """The signed-in user's webhook; another user's is as unknown as a missing one (404)."""
    try:
        number = int(webhook_id)
    except ValueError:
        raise NotFound("Unknown webhook.") from None
    found = selectors.user_webhook_get(user=request.user, webhook_id=number) if 0 < number < 2**63 else None
    if found is None:
        raise NotFound("Unknown webhook.")
    return found


class WebhookListApi(CompatApi):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="The user's webhooks, how many, and how many they may have",
        operation_id="compat_pulsaryx_api_webhooks_list",
        responses=inline_serializer(
            "CompatWebhookList",
            fields={
                "webhooks": WebhookPayloadSerializer(many=True),
                "count": serializers.IntegerField(),
                "limit": serializers.IntegerField(),
            },
        ),
    )
    def get(self, request):
        webhooks = [selectors.webhook_payload(w) for w in selectors.user_webhooks(user=request.user)]
        return Response({"webhooks": webhooks, "count": len(webhooks), "limit": settings.COMPAT_WEBHOOKS_PER_USER})

    @extend_schema(summary="Create a webhook", request=WebhookSerializer, responses={201: WebhookPayloadSerializer})
    def post(self, request):
        body = WebhookSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if selectors.user_webhooks(user=request.user).count() >= settings.COMPAT_WEBHOOKS_PER_USER:
            raise ValidationError(
                {"detail": f"You can have at most {settings.COMPAT_WEBHOOKS_PER_USER} webhooks; delete one first."}
            )
        webhook = services.webhook_create(user=request.user, data=body.validated_data)
        return Response(selectors.webhook_payload(webhook), status=status.HTTP_201_CREATED)


class WebhookDetailApi(CompatApi):
    permission_classes = [IsAuthenticated]

    @extend_schema(summary="One webhook", responses=WebhookPayloadSerializer)
    def get(self, request, webhook_id: str):
        return Response(selectors.webhook_payload(_own_webhook(request, webhook_id)))

    @extend_schema(
        summary="Change a webhook (PUT and PATCH alike: fields not sent keep their values)",
        request=WebhookSerializer,
        responses=WebhookPayloadSerializer,
    )
    def put(self, request, webhook_id: str):
        webhook = _own_webhook(request, webhook_id)
        body = WebhookSerializer(webhook, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        webhook = services.webhook_update(webhook=webhook, changes=body.validated_data)
        return Response(selectors.webhook_payload(webhook))

    patch = put

    @extend_schema(
        summary="Delete a webhook (and what still waits to be sent to it)",
        responses=inline_serializer(
            "CompatWebhookDeleted", fields={"success": serializers.BooleanField(), "id": serializers.IntegerField()}
        ),
    )
    def delete(self, request, webhook_id: str):
        webhook = _own_webhook(request, webhook_id)
        services.webhook_delete(webhook=webhook)
        return Response({"success": True, "id": int(webhook_id)})


class WebhookToggleApi(CompatApi):
    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "CompatWebhookToggle"

        enabled = serializers.BooleanField()

    @extend_schema(summary="Switch a webhook on or off", request=InputSerializer, responses=WebhookPayloadSerializer)
    def patch(self, request, webhook_id: str):
        webhook = _own_webhook(request, webhook_id)
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        webhook = services.webhook_toggle(webhook=webhook, enabled=body.validated_data["enabled"])
        return Response(selectors.webhook_payload(webhook))

    put = post = patch


class WebhookTestThrottle(SimpleRateThrottle):
    """A test sends a request to an address the user chose: a few per minute per user, so it cannot flood it."""

    scope = "compat_webhook_test"

    def get_rate(self) -> str:
        return settings.COMPAT_WEBHOOK_TEST_RATE_LIMIT

    def get_cache_key(self, request, view) -> str | None:
        if not (request.user and request.user.is_authenticated):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class WebhookTestApi(CompatApi):
    permission_classes = [IsAuthenticated]
    throttle_classes = [*CompatApi.throttle_classes, WebhookTestThrottle]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "CompatWebhookTestResult"

        success = serializers.BooleanField()
        message = serializers.CharField()
        status_code = serializers.IntegerField(allow_null=True)

    @extend_schema(
        summary="Send a test message now (200 when it arrived, 502 with the reason when not)",
        request=None,
        responses={200: OutputSerializer, 502: OutputSerializer},
    )
    def post(self, request, webhook_id: str):
        result = services.webhook_test(webhook=_own_webhook(request, webhook_id))
        if not result["success"]:
            # The client shows `error` of a failed call.
            return Response(
                {"error": f"Test failed: {result['message']}", **result}, status=status.HTTP_502_BAD_GATEWAY
            )
        return Response(result)
