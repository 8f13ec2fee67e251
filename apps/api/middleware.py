"""Bodies over DATA_UPLOAD_MAX_MEMORY_SIZE: 413 (one warning line from django.request), before any view reads them.

Django would answer 400 and log an ERROR with a traceback (django.security.RequestDataTooBig); a body too large is the
client's mistake, not the server's.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.utils.deprecation import MiddlewareMixin


def _too_large() -> JsonResponse:
    # django.request logs the 413 as one warning line (method, path, status); nothing else is logged.
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
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
            return _too_large()
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> JsonResponse | None:
        # A body without Content-Length (chunked) is only found too large when a view reads it.
        if isinstance(exception, RequestDataTooBig):
            return _too_large()
        return None
