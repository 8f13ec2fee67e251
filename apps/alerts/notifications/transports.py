"""One transport class per channel behind one interface: `send(messages)` posts one request or raises TransportError.

Every request goes through `http_post`: SSRF-checked and pinned address, short timeouts, redirects not followed.
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import hmac
import json
import logging
import re
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
from django.conf import settings

from .messages import AlertMessage, fmt_change, fmt_price, fmt_vcp, fmt_volume, vcp_of
from .models import Destination
from .safety import UnsafeDestination, url_resolve_safe

USER_AGENT = "screener-notifications/1"
TELEGRAM_TEXT_LIMIT = 4096
# Slack truncates a message's text beyond 40,000 characters and advises staying under 4,000.
SLACK_TEXT_LIMIT = 4000
# HTTP statuses meaning the destination itself is wrong (gone, forbidden): pause it at once.
DESTINATION_BROKEN_STATUSES = {401, 403, 404, 410}

GREEN, RED, GREY = 0x2ECC71, 0xE74C3C, 0x95A5A6
_BOT_TOKEN_IN_PATH = re.compile(r"/bot[^/\s]+/")


class _RedactBotToken(logging.Filter):
    """httpx logs every request URL at INFO; a Telegram URL carries the bot token in its path."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                _BOT_TOKEN_IN_PATH.sub("/bot***/", a)
                if isinstance(a, str)
                else _BOT_TOKEN_IN_PATH.sub("/bot***/", str(a))
                if isinstance(a, httpx.URL)
                else a
                for a in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_RedactBotToken())


class TransportError(Exception):
    """A send that did not succeed. `retryable` says whether trying again later can help."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        retry_after: float | None = None,
        destination_broken: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after = retry_after
        # The destination cannot work as configured (unsafe URL, 404, 403...): pause it rather than keep trying.
        self.destination_broken = destination_broken


@dataclass(frozen=True)
class SendResult:
    status_code: int
    # Seconds the destination asked us to wait before the next request (e.g. Discord's bucket is empty).
    wait_after: float = 0.0


def idempotency_key(messages: list[AlertMessage]) -> str:
    """The same for every attempt at the same batch: a hash of its alert ids, in order."""
    return hashlib.sha256(",".join(str(m.payload["id"]) for m in messages).encode()).hexdigest()[:32]


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process, shared by every send: loading the CA bundle takes about 30 ms, longer
    than most sends (a new client is made per send, to pin the address the URL check resolved). Certifi's bundle,
    as before: like the proxies, SSL_CERT_FILE from the environment is not followed."""
    return httpx.create_ssl_context(trust_env=False)


def http_post(url: str, *, body: bytes, headers: dict[str, str], secrets: tuple[str, ...] = ()) -> httpx.Response:
    """POST `body`; returns a 2xx response or raises TransportError. `secrets` are redacted from error texts."""
    try:
        target = url_resolve_safe(url)
    except UnsafeDestination as exc:
        raise TransportError(f"refused: {exc}", retryable=False, destination_broken=True) from None
    timeout = httpx.Timeout(
        settings.NOTIFICATIONS_READ_TIMEOUT, connect=settings.NOTIFICATIONS_CONNECT_TIMEOUT, pool=1.0
    )
    request_headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **headers,
        "Host": target.host_header,
    }
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, verify=_tls_context()) as client:
            response = client.post(
                target.url, content=body, headers=request_headers, extensions={"sni_hostname": target.server_name}
            )
    except httpx.TimeoutException as exc:
        raise TransportError(_redact(f"timeout ({type(exc).__name__})", secrets), retryable=True) from None
    except httpx.HTTPError as exc:
        raise TransportError(_redact(f"connection error: {exc}", secrets), retryable=True) from None
    status = response.status_code
    if 200 <= status < 300:
        return response
    detail = _redact(f"HTTP {status}: {response.text[:200]}", secrets)
    if 300 <= status < 400:
        raise TransportError(
            f"HTTP {status}: redirect not followed", retryable=False, status_code=status, destination_broken=True
        )
    if status == 429 or status >= 500:
        raise TransportError(detail, retryable=True, status_code=status, retry_after=retry_after_of(response))
    raise TransportError(
        detail, retryable=False, status_code=status, destination_broken=status in DESTINATION_BROKEN_STATUSES
    )


def retry_after_of(response: httpx.Response) -> float | None:
    """Seconds to wait from Retry-After (seconds or HTTP date), or the JSON bodies of Discord and Telegram."""
    header = response.headers.get("Retry-After")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(header)
            except (TypeError, ValueError):
                parsed = None
            if parsed is not None:
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=UTC)
                return max(0.0, (parsed - datetime.now(UTC)).total_seconds())
    try:
        data = response.json()
    except ValueError:
        return None
    if isinstance(data, dict):
        for value in (data.get("retry_after"), (data.get("parameters") or {}).get("retry_after")):
            if isinstance(value, int | float) and value >= 0:
                return float(value)
    return None


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:500]


class Transport:
    """Sends a batch of alerts to one destination in one request."""

    kind: ClassVar[str]

    def __init__(self, destination: Destination) -> None:
        self.destination = destination

    def batch_size(self, messages: list[AlertMessage]) -> int:
        """How many of `messages` (from the start) fit in one request."""
        return min(len(messages), getattr(settings, f"NOTIFICATIONS_BATCH_{self.kind.upper()}"))

    def interval(self) -> float:
        """Minimum seconds between two requests to this destination: the channel's, or the destination's own when
        longer."""
        return max(self.channel_interval(), self.destination.min_interval_seconds or 0.0)

    def channel_interval(self) -> float:
        """Minimum seconds between two requests the channel itself allows."""
        return float(getattr(settings, f"NOTIFICATIONS_INTERVAL_{self.kind.upper()}"))

    def send(self, messages: list[AlertMessage]) -> SendResult:
        raise NotImplementedError


class DiscordTransport(Transport):
    kind = "discord"

    def send(self, messages: list[AlertMessage]) -> SendResult:
        body = json.dumps({"embeds": [discord_embed(m) for m in messages]}).encode()
        headers = {"Idempotency-Key": idempotency_key(messages)}
        response = http_post(self.destination.url, body=body, headers=headers, secrets=(self.destination.url,))
        wait = 0.0
        # Discord publishes its per-webhook bucket; when it is empty, wait for the reset instead of earning a 429.
        if response.headers.get("X-RateLimit-Remaining") == "0":
            try:
                wait = float(response.headers.get("X-RateLimit-Reset-After", "0"))
            except ValueError:
                wait = 0.0
        return SendResult(response.status_code, wait_after=wait)


def discord_embed(message: AlertMessage) -> dict[str, Any]:
    payload = message.payload
    colour = {"bull": GREEN, "bear": RED}.get(message.category, GREY)
    description = f"**{payload['symbol']}**"
    if message.description:
        description += f" · {message.description}"
    return {
        "title": message.title,
        "description": description,
        "color": colour,
        "fields": [
            {"name": "Price", "value": fmt_price(payload.get("price")), "inline": True},
            {"name": "Change", "value": fmt_change(payload.get("change_pct")), "inline": True},
            {"name": "Volume", "value": fmt_volume(payload.get("volume")), "inline": True},
            {"name": "VCP", "value": fmt_vcp(vcp_of(payload)), "inline": True},
            {"name": "Timeframe", "value": str(payload.get("timeframe") or "n/a"), "inline": True},
        ],
        "timestamp": payload["triggered_at"],
        "footer": {"text": f"{payload['alert_type']} · {payload['id']}"},
    }


class TelegramTransport(Transport):
    kind = "telegram"

    def channel_interval(self) -> float:
        # Group and channel chat ids are negative; Telegram allows them about 20 messages a minute.
        if self.destination.telegram_chat_id.startswith("-"):
            return float(settings.NOTIFICATIONS_INTERVAL_TELEGRAM_GROUP)
        return float(settings.NOTIFICATIONS_INTERVAL_TELEGRAM_CHAT)

    def batch_size(self, messages: list[AlertMessage]) -> int:
        limit = super().batch_size(messages)
        length = 0
        for count, message in enumerate(messages[:limit]):
            length += len(telegram_block(message)) + 2
            if length > TELEGRAM_TEXT_LIMIT - 100:
                return max(1, count)
        return limit

    def send(self, messages: list[AlertMessage]) -> SendResult:
        token = self.destination.telegram_bot_token
        base = settings.NOTIFICATIONS_TELEGRAM_API_URL.rstrip("/")
        body = json.dumps(
            {
                "chat_id": self.destination.telegram_chat_id,
                "text": telegram_text(messages),
                "disable_web_page_preview": True,
            }
        ).encode()
        headers = {"Idempotency-Key": idempotency_key(messages)}
        response = http_post(f"{base}/bot{token}/sendMessage", body=body, headers=headers, secrets=(token,))
        return SendResult(response.status_code)


def telegram_block(message: AlertMessage) -> str:
    payload = message.payload
    mark = {"bull": "🟢", "bear": "🔴"}.get(message.category, "⚪")
    return (
        f"{mark} {message.title} · {payload['symbol']}\n"
        f"Price {fmt_price(payload.get('price'))} · Change {fmt_change(payload.get('change_pct'))} · "
        f"Volume {fmt_volume(payload.get('volume'))} · VCP {fmt_vcp(vcp_of(payload))} · {payload.get('timeframe')}\n"
        f"{payload['triggered_at']} · id {payload['id']}"
    )


def telegram_text(messages: list[AlertMessage]) -> str:
    blocks = [telegram_block(m) for m in messages]
    if len(blocks) > 1:
        blocks.insert(0, f"{len(blocks)} alerts")
    return "\n\n".join(blocks)[:TELEGRAM_TEXT_LIMIT]


class WebhookTransport(Transport):
    """Generic JSON POST `{"type": "alerts", "alerts": [alert, ...]}`, signed.

    Headers: `X-Screener-Timestamp` (unix seconds), `X-Screener-Signature: sha256=<hex HMAC-SHA256 of
    "<timestamp>.<body>" keyed with the destination's secret>` and `Idempotency-Key` (the same for every attempt at
    the same batch). Receivers should reject old timestamps and de-duplicate on each alert's `id` (delivery is at
    least once: a request that timed out may have arrived and is sent again).
    """

    kind = "webhook"

    def send(self, messages: list[AlertMessage]) -> SendResult:
        body = json.dumps({"type": "alerts", "alerts": [m.payload for m in messages]}).encode()
        timestamp = str(int(time.time()))
        headers = {
            "X-Screener-Timestamp": timestamp,
            "X-Screener-Signature": "sha256=" + webhook_signature(self.destination.secret, timestamp, body),
            "Idempotency-Key": idempotency_key(messages),
        }
        response = http_post(self.destination.url, body=body, headers=headers)
        return SendResult(response.status_code)


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class SlackTransport(Transport):
    """Slack incoming webhook: `{"text": ...}` in Slack's mrkdwn, alerts batched into one message."""

    kind = "slack"

    def batch_size(self, messages: list[AlertMessage]) -> int:
        limit = super().batch_size(messages)
        length = 0
        for count, message in enumerate(messages[:limit]):
            length += len(slack_block(message)) + 2
            if length > SLACK_TEXT_LIMIT - 100:
                return max(1, count)
        return limit

    def send(self, messages: list[AlertMessage]) -> SendResult:
        body = json.dumps({"text": slack_text(messages)}).encode()
        headers = {"Idempotency-Key": idempotency_key(messages)}
        response = http_post(self.destination.url, body=body, headers=headers, secrets=(self.destination.url,))
        return SendResult(response.status_code)


def slack_block(message: AlertMessage) -> str:
    payload = message.payload
    mark = {"bull": ":large_green_circle:", "bear": ":red_circle:"}.get(message.category, ":white_circle:")
    return (
        f"{mark} *{message.title}* · *{payload['symbol']}*\n"
        f"Price {fmt_price(payload.get('price'))} · Change {fmt_change(payload.get('change_pct'))} · "
        f"Volume {fmt_volume(payload.get('volume'))} · VCP {fmt_vcp(vcp_of(payload))} · {payload.get('timeframe')}\n"
        f"{payload['triggered_at']} · id `{payload['id']}`"
    )


def slack_text(messages: list[AlertMessage]) -> str:
    blocks = [slack_block(m) for m in messages]
    if len(blocks) > 1:
        blocks.insert(0, f"{len(blocks)} alerts")
    return "\n\n".join(blocks)[:SLACK_TEXT_LIMIT]


TRANSPORTS: dict[str, type[Transport]] = {
    t.kind: t for t in (DiscordTransport, TelegramTransport, WebhookTransport, SlackTransport)
}


def transport_for(destination: Destination) -> Transport:
    return TRANSPORTS[destination.kind](destination)
