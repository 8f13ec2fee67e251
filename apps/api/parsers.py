"""The JSON every API accepts: no other content type, no nesting deeper than MAX_DEPTH, no string a database or the
cache cannot store (lone surrogates, NUL), no body over the upload limit. Each is a 4xx naming the problem.

Also used for WebSocket frames (`json_loads_strict`), so both surfaces refuse the same input the same way.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

# Deep enough for any body of these APIs (they nest three levels at most); a parser never recurses near its limit.
MAX_DEPTH = 32


class JsonRefused(ValueError):
    """A document that is not acceptable JSON; the message says why and is safe to show to the client."""


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "payload_too_large"


def json_loads_strict(text: str | bytes) -> Any:
    """json.loads, refusing deep nesting, lone surrogates and NUL characters (JsonRefused saying which)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise JsonRefused(f"JSON is nested more than {MAX_DEPTH} levels deep.") from None
    except ValueError as exc:
        raise JsonRefused(f"JSON parse error - {exc}") from None
    _check(value)
    return value


def _check(value: Any) -> None:
    """Walks the document without recursion (its depth is what is being checked)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise JsonRefused(f"JSON is nested more than {MAX_DEPTH} levels deep.")
            if isinstance(item, dict):
                for name, member in item.items():
                    _check_string(name)
                    pending.append((member, depth + 1))
            else:
                pending.extend((member, depth + 1) for member in item)


def _check_string(text: str) -> None:
    if "\x00" in text:
        raise JsonRefused("JSON strings must not contain NUL characters (\\u0000).")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonRefused("JSON strings must not contain lone surrogates (\\ud800-\\udfff).") from None


class StrictJSONParser(JSONParser):
    """DRF's JSON parser with json_loads_strict; the only parser of the APIs (other content types get 415)."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            raw = stream.read() if stream is not None else b""
        except RequestDataTooBig:
            raise PayloadTooLarge(
                f"Request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
            ) from None
        try:
            return json_loads_strict(raw.decode(encoding))
        except UnicodeDecodeError:
            raise ParseError(f"JSON parse error - body is not {encoding} text.") from None
        except JsonRefused as exc:
            raise ParseError(str(exc)) from None
