"""JSON as the screener accepts it from outside: no nesting deeper than MAX_DEPTH, no string a database or the cache
cannot store (lone surrogates, NUL). Used by the APIs' parser, the WebSocket frames and the admin's JSON fields, so
every surface refuses the same input the same way (and none of them recurses into a RecursionError).
"""

from __future__ import annotations

import json
from typing import Any

# Deep enough for any body of these APIs (they nest three levels at most); a parser never recurses near its limit.
MAX_DEPTH = 32


class JsonRefused(ValueError):
    """A document that is not acceptable JSON; the message says why and is safe to show to the client."""


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


class StrictJSONDecoder(json.JSONDecoder):
    """For Django's forms.JSONField(decoder=...): refused documents become the field's "Enter a valid JSON." error."""

    def decode(self, s: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return json_loads_strict(s)
        except JsonRefused as exc:
            raise json.JSONDecodeError(str(exc), s, 0) from None


def json_formfield_overrides() -> dict:
    """ModelAdmin.formfield_overrides that give every JSON model field the strict decoder."""
    from django.db import models

    return {models.JSONField: {"decoder": StrictJSONDecoder}}
