"""The only parser of the JSON APIs: other content types get 415, unacceptable JSON 400 (screener_project.strict_json
says what is refused), a body over DATA_UPLOAD_MAX_MEMORY_SIZE 413."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

from screener_project.strict_json import JsonRefused, json_loads_strict

__all__ = ["JsonRefused", "PayloadTooLarge", "StrictJSONParser", "json_loads_strict"]


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "payload_too_large"


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
