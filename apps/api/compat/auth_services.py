"""Self-service accounts of the web client: sign-up (closed, by invite, or open), invites, password reset and change,
the TradingView username. Built on Django's users, password validators, reset-token generator and email backend.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from .models import AccountProfile, Invite

logger = logging.getLogger(__name__)

REGISTRATION_CLOSED, REGISTRATION_INVITE, REGISTRATION_OPEN = "closed", "invite", "open"
REGISTRATION_MODES = (REGISTRATION_CLOSED, REGISTRATION_INVITE, REGISTRATION_OPEN)


class AccountError(ValueError):
    """A request that cannot be served; `field` names the request field, `status` the HTTP status to answer."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


def registration_mode() -> str:
    mode = str(getattr(settings, "COMPAT_REGISTRATION", REGISTRATION_INVITE)).strip().lower()
    return mode if mode in REGISTRATION_MODES else REGISTRATION_CLOSED


def invite_code_new() -> str:
    return secrets.token_urlsafe(12)


@dataclass(frozen=True)
class InviteCheck:
    valid: bool
    message: str = ""
    invite: Invite | None = None


def invite_check(code: str, *, now=None) -> InviteCheck:
    """Whether the code signs up an account now (unknown, used up and expired codes read the same to a guesser,
    except for their message)."""
    if registration_mode() == REGISTRATION_CLOSED:
        return InviteCheck(False, "Sign-up is closed on this screener.")
    invite = Invite.objects.filter(code=code).first() if code else None
    if invite is None:
        return InviteCheck(False, "This invite code is not valid.")
    if invite.expires_at is not None and invite.expires_at <= (now or timezone.now()):
        return InviteCheck(False, "This invite has expired.")
    if invite.uses >= invite.max_uses:
        return InviteCheck(False, "This invite has already been used.")
    return InviteCheck(True, invite=invite)


def _email_taken(email: str) -> bool:
    User = get_user_model()
    return User.objects.filter(email__iexact=email).exists() or User.objects.filter(username__iexact=email).exists()


def _password_checked(password: str, *, user) -> None:
    try:
        password_validation.validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise AccountError(" ".join(exc.messages), field="password") from None


def user_register(*, email: str, password: str, invite_code: str | None):
    """A new user signed up by themselves, as COMPAT_REGISTRATION allows; with an invite, its trial days apply
    (COMPAT_SIGNUP_TRIAL_DAYS without one; 0 makes the account active at once)."""
    mode = registration_mode()
    if mode == REGISTRATION_CLOSED:
        raise AccountError("Sign-up is closed on this screener; ask its operator for an account.", status=403)
    if mode == REGISTRATION_INVITE and not invite_code:
        raise AccountError("An invite code is required to sign up.", field="invite_code")
    email = email.strip()
    if _email_taken(email):
        raise AccountError("An account with this email already exists.", field="email")
    User = get_user_model()
    _password_checked(password, user=User(username=email, email=email))
    try:
        with transaction.atomic():
            trial_days = settings.COMPAT_SIGNUP_TRIAL_DAYS
            if invite_code:
                invite = Invite.objects.select_for_update().filter(code=invite_code).first()
                checked = invite_check(invite_code)
                if invite is None or not checked.valid:
                    raise AccountError(checked.message or "This invite code is not valid.", field="invite_code")
                invite.uses += 1
                invite.save(update_fields=["uses"])
                trial_days = invite.trial_days
            user = User.objects.create_user(username=email, email=email, password=password)
            now = timezone.now()
            AccountProfile.objects.create(
                user=user,
                status=AccountProfile.Status.TRIAL if trial_days else AccountProfile.Status.ACTIVE,
                trial_ends_at=now + timedelta(days=trial_days) if trial_days else None,
            )
    except IntegrityError:  # the same email signed up at the same moment
        raise AccountError("An account with this email already exists.", field="email") from None
    return user


# --- Passwords -----------------------------------------------------------------------------------------------


def reset_token_make(user) -> str:
    """`<uid>.<token>`: the user's id and Django's reset token (valid PASSWORD_RESET_TIMEOUT seconds, and void
    once the password changes or the user signs in), as one string for the client's `?token=`."""
    return f"{urlsafe_base64_encode(force_bytes(user.pk))}.{default_token_generator.make_token(user)}"


def reset_link(token: str, *, client_url: str) -> str:
    return f"{client_url.rstrip('/')}/reset-password?token={token}"


def password_reset_request(*, email: str, client_url: str) -> None:
    """Mail a reset link to the active account of this email, if any (the caller answers alike either way)."""
    User = get_user_model()
    user = (
        User.objects.filter(email__iexact=email.strip(), is_active=True).order_by("id").first()
        or User.objects.filter(username__iexact=email.strip(), is_active=True).order_by("id").first()
    )
    if user is None or not user.has_usable_password():
        logger.info("Password reset asked for an unknown or inactive account")
        return
    link = reset_link(reset_token_make(user), client_url=client_url)
    hours = settings.PASSWORD_RESET_TIMEOUT // 3600
    send_mail(
        subject="Reset your screener password",
        message=(
            f"Someone (hopefully you) asked to reset the password of {user.email or user.get_username()}.\n\n"
            f"Choose a new password here (the link works for {hours} hours, once):\n{link}\n\n"
            "If you did not ask for it, ignore this email; your password stays as it is.\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[user.email or user.get_username()],
    )


def password_reset(*, token: str, password: str):
    """Set a new password with a token from the reset email."""
    invalid = AccountError("This reset link is invalid or has expired; ask for a new one.", field="token")
    uid, _, secret = token.partition(".")
    try:
        pk = force_str(urlsafe_base64_decode(uid))
    except (ValueError, TypeError):
        raise invalid from None
    User = get_user_model()
    user = User.objects.filter(pk=pk, is_active=True).first() if pk.isdigit() else None
    if user is None or not default_token_generator.check_token(user, secret):
        raise invalid
    _password_checked(password, user=user)
    user.set_password(password)
    user.save(update_fields=["password"])
    return user


def password_change(*, user, old_password: str, new_password: str) -> None:
    if not user.check_password(old_password):
        raise AccountError("The current password is wrong.", field="old_password")
    try:
        password_validation.validate_password(new_password, user=user)
    except DjangoValidationError as exc:
        raise AccountError(" ".join(exc.messages), field="new_password") from None
    user.set_password(new_password)
    user.save(update_fields=["password"])


def tv_username_set(*, user, tv_username: str) -> AccountProfile:
    from .account_services import account_profile_get

    profile = account_profile_get(user=user)
    profile.tv_username = tv_username
    profile.save(update_fields=["tv_username", "updated_at"])
    return profile
