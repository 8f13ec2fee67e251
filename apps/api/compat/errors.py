"""Error bodies of the compatibility surface: the client shows `error` (a sentence) of every failed call.

DRF's own body is kept beside it (`detail`, or the field lists of a validation error), so callers that read the
field details still find them.
"""

from __future__ import annotations

from typing import Any

from rest_framework.views import exception_handler


def _first_message(value: Any) -> str | None:
    """The first message of a DRF error structure (a string, a list of them, or a dict of either)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        for item in value:
            found = _first_message(item)
            if found:
                return found
    if isinstance(value, dict):
        for item in value.values():
            found = _first_message(item)
            if found:
                return found
    return None


def error_sentence(data: Any) -> str:
    """One sentence for the user: `detail` as it is, else the first field's message prefixed by the field's name."""
    if isinstance(data, dict):
        if "detail" in data and isinstance(data["detail"], str):
            return str(data["detail"])
        for field, value in data.items():
            message = _first_message(value)
            if message:
                if field in ("non_field_errors", "detail"):
                    return message
                return f"{field}: {message}"
    message = _first_message(data)
    return message or "The request failed."


def compat_exception_handler(exc, context):
    """DRF's handler, with `error` added to the body of every error it answers."""
    response = exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict):
        if not isinstance(data.get("error"), str):
            response.data = {"error": error_sentence(data), **data}
    else:
        response.data = {"error": error_sentence(data), "errors": data}
    return response
