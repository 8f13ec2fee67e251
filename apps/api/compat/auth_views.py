"""Self-service account flows of the web client: sign-up, invite check, forgot/reset/change password, billing and
the TradingView username. The logic is in auth_services; these views parse, limit and answer."""

from __future__ import annotations

from urllib.parse import urlsplit

from corsheaders.middleware import CorsMiddleware
from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

from . import auth_services as services
from .account_selectors import account_status
from .account_services import account_profile_get
from .account_views import SessionSerializer, _session, email_throttle_ident
from .base import CompatApi
from .models import Invite

DONE = inline_serializer(
    "CompatDone", fields={"success": serializers.BooleanField(), "message": serializers.CharField()}
)


class AccountRefused(APIException):
    """An AccountError as a response (the compat handler adds `error`; `field` names the request field)."""

    def __init__(self, exc: services.AccountError) -> None:
        self.status_code = exc.status
        detail = {exc.field: [str(exc)]} if exc.field else {"detail": str(exc)}
        super().__init__(detail=detail)


def _call(action, **kwargs):
    try:
        return action(**kwargs)
    except services.AccountError as exc:
        raise AccountRefused(exc) from None


class _AccountThrottle(SimpleRateThrottle):
    """COMPAT_ACCOUNT_RATE_LIMIT (default 5/minute) sign-ups, invite checks and password emails per IP."""

    def get_rate(self) -> str:
        return settings.COMPAT_ACCOUNT_RATE_LIMIT

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": request.META.get("REMOTE_ADDR", "")}


class SignupIpThrottle(_AccountThrottle):
    scope = "compat_signup_ip"


class InviteIpThrottle(_AccountThrottle):
    scope = "compat_invite_ip"

    def get_rate(self) -> str:
        return settings.COMPAT_LOGIN_RATE_LIMIT  # a page load checks once; guessing codes stays slow


class PasswordEmailIpThrottle(_AccountThrottle):
    scope = "compat_password_email_ip"


class PasswordEmailThrottle(_AccountThrottle):
    """Per address too, so nobody floods one mailbox from many IPs."""

    scope = "compat_password_email"

    def get_cache_key(self, request, view) -> str | None:
        try:
            ident = email_throttle_ident(request.data)
        except ParseError:
            return None
        return None if ident is None else self.cache_format % {"scope": self.scope, "ident": ident}


class RegisterApi(CompatApi):
    authentication_classes: list = []
    throttle_classes = [SignupIpThrottle]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "CompatRegisterInput"

        email = serializers.EmailField(max_length=254)
        password = serializers.CharField(max_length=1024, trim_whitespace=False)
        invite_code = serializers.CharField(max_length=64, required=False, allow_blank=True, allow_null=True)

    @extend_schema(
        summary="Sign up (COMPAT_REGISTRATION: closed, invite or open)",
        request=InputSerializer,
        responses={201: SessionSerializer},
    )
    def post(self, request):
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        user = _call(
            services.user_register,
            email=data["email"],
            password=data["password"],
            invite_code=(data.get("invite_code") or "").strip() or None,
        )
        return Response(_session(user), status=status.HTTP_201_CREATED)


class InviteApi(CompatApi):
    authentication_classes: list = []
    throttle_classes = [InviteIpThrottle]

    @extend_schema(
        summary="Whether an invite code signs up an account (404 with the reason when not)",
        responses=inline_serializer(
            "CompatInviteCheck",
            fields={
                "valid": serializers.BooleanField(),
                "message": serializers.CharField(required=False),
                "expires_at": serializers.DateTimeField(required=False, allow_null=True),
            },
        ),
    )
    def get(self, request, code: str):
        checked = services.invite_check(code[:64])
        if not checked.valid:
            return Response(
                {"valid": False, "message": checked.message, "error": checked.message},
                status=status.HTTP_404_NOT_FOUND,
            )
        invite: Invite = checked.invite
        return Response({"valid": True, "expires_at": invite.expires_at.isoformat() if invite.expires_at else None})


def client_url(request) -> str:
    """Where the reset link sends the user: COMPAT_CLIENT_URL, else the page's origin when CORS allows it (the
    client served from anywhere on a local run), else this server."""
    if settings.COMPAT_CLIENT_URL:
        return settings.COMPAT_CLIENT_URL
    origin = request.META.get("HTTP_ORIGIN", "")
    if origin and CorsMiddleware(lambda r: None).origin_found_in_white_lists(origin, urlsplit(origin)):
        return origin
    return request.build_absolute_uri("/").rstrip("/")


class ForgotPasswordApi(CompatApi):
    authentication_classes: list = []
    throttle_classes = [PasswordEmailIpThrottle, PasswordEmailThrottle]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "CompatForgotPasswordInput"

        email = serializers.EmailField(max_length=254)

    @extend_schema(
        summary="Mail a password-reset link (the answer is the same whether the account exists or not)",
        request=InputSerializer,
        responses=DONE,
    )
    def post(self, request):
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.password_reset_request(email=body.validated_data["email"], client_url=client_url(request))
        return Response(
            {"success": True, "message": "If an account exists for this email, a reset link is on its way."}
        )


class ResetPasswordApi(CompatApi):
    authentication_classes: list = []
    throttle_classes = [SignupIpThrottle]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "CompatResetPasswordInput"

        token = serializers.CharField(max_length=300)
        password = serializers.CharField(max_length=1024, trim_whitespace=False)

    @extend_schema(
        summary="Set a new password with the token of the reset email", request=InputSerializer, responses=DONE
    )
    def post(self, request):
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        _call(services.password_reset, token=body.validated_data["token"], password=body.validated_data["password"])
        return Response({"success": True, "message": "Password changed; sign in with the new one."})


class ChangePasswordApi(CompatApi):
    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "CompatChangePasswordInput"

        old_password = serializers.CharField(max_length=1024, trim_whitespace=False)
        new_password = serializers.CharField(max_length=1024, trim_whitespace=False)

    @extend_schema(summary="Change the signed-in user's password", request=InputSerializer, responses=DONE)
    def post(self, request):
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        _call(
            services.password_change,
            user=request.user,
            old_password=body.validated_data["old_password"],
            new_password=body.validated_data["new_password"],
        )
        return Response({"success": True, "message": "Password changed."})


class BillingApi(CompatApi):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="The plan the admin holds for this user",
        responses=inline_serializer(
            "CompatBilling",
            fields={
                "plan": serializers.CharField(allow_null=True),
                "status": serializers.CharField(),
                "plan_expires_at": serializers.DateTimeField(allow_null=True),
                "whop_membership_id": serializers.CharField(allow_null=True),
                "tv_addon_active": serializers.BooleanField(),
                "tv_username": serializers.CharField(allow_null=True),
                "manage_url": serializers.CharField(),
            },
        ),
    )
    def get(self, request):
        profile = account_profile_get(user=request.user)
        return Response(
            {
                "plan": profile.plan or None,
                "status": account_status(profile),
                "plan_expires_at": profile.plan_expires_at.isoformat() if profile.plan_expires_at else None,
                "whop_membership_id": profile.membership_id or None,
                "tv_addon_active": profile.tv_addon_active,
                "tv_username": profile.tv_username or None,
                "manage_url": settings.COMPAT_BILLING_MANAGE_URL,
            }
        )


PAYMENTS_UNAVAILABLE = "Online payment is not available on this screener; ask its operator to activate your plan."


class CheckoutApi(CompatApi):
    """There is no payment provider: plans are set by the operator in the admin."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="No payment provider: always 400 with the reason",
        request=None,
        responses={
            400: inline_serializer(
                "CompatCheckoutUnavailable", fields={"error": serializers.CharField(), "code": serializers.CharField()}
            )
        },
    )
    def post(self, request):
        return Response(
            {"error": PAYMENTS_UNAVAILABLE, "code": "payments_unavailable"}, status=status.HTTP_400_BAD_REQUEST
        )


class TvUsernameApi(CompatApi):
    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "CompatTvUsernameInput"

        tv_username = serializers.RegexField(
            r"^[A-Za-z0-9_.\-]{1,64}$",
            max_length=64,
            error_messages={"invalid": "1-64 letters, digits, dots, dashes or underscores."},
        )

    @extend_schema(
        summary="Set the TradingView username",
        request=InputSerializer,
        responses=inline_serializer(
            "CompatTvUsername",
            fields={"success": serializers.BooleanField(), "tv_username": serializers.CharField()},
        ),
    )
    def put(self, request):
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        profile = services.tv_username_set(user=request.user, tv_username=body.validated_data["tv_username"])
        return Response({"success": True, "tv_username": profile.tv_username})

    post = patch = put
