"""Bodies over DATA_UPLOAD_MAX_MEMORY_SIZE: 413 and one warning line, before any view reads them.

Django would answer 400 and log an ERROR with a traceback (django.security.RequestDataTooBig); a body too large is the
client's mistake, not the server's.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.utils.deprecation import MiddlewareMixin

logger = logging.getLogger(__name__)


def _too_large(request: HttpRequest, size: int | None) -> JsonResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    logger.warning(
        "Refused a request body of %s bytes (limit %d): %s %s",
        size if size is not None else "more than the limit of",
        limit,
        request.method,
        request.path,
    )
    return JsonResponse(
        {"detail": f"Request body is larger than {limit} bytes.", "error": "payload_too_large"}, status=413
    )


class BodySizeLimitMiddleware(MiddlewareMixin):
    def process_request(self, request: HttpRequest) -> JsonResponse | None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            size = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None  # Django answers a malformed Content-Length itself
        if limit is not None and size > limit:
            return _too_large(request, size)
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> JsonResponse | None:
        # A body without Content-Length (chunked) is only found too large when a view reads it.
        if isinstance(exception, RequestDataTooBig):
            return _too_large(request, None)
        return None
