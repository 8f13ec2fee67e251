"""GET /api/schema/: the OpenAPI document, built once per process and format, and rate limited like the other views.

Building it walks every view (about 0.2 s of CPU); it only changes with the code, so each process keeps the rendered
bytes per media type (YAML or JSON). Requests with query parameters (?version=, ?lang=) are built fresh, so no client
can grow the cache.
"""

from __future__ import annotations

import threading

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SCHEMA_KWARGS, SpectacularAPIView

from .throttling import AnonIpThrottle, UserIdThrottle

_rendered: dict[str, tuple[bytes, str, str]] = {}
_lock = threading.Lock()


def schema_cache_clear() -> None:
    with _lock:
        _rendered.clear()


class CachedSchemaApi(SpectacularAPIView):
    throttle_classes = [AnonIpThrottle, UserIdThrottle]

    @extend_schema(**SCHEMA_KWARGS)
    def get(self, request, *args, **kwargs):
        if request.GET:
            return super().get(request, *args, **kwargs)
        media_type = request.accepted_media_type
        cached = _rendered.get(media_type)
        if cached is None:
            with _lock:
                cached = _rendered.get(media_type)
                if cached is None:
                    response = super().get(request, *args, **kwargs)
                    response.accepted_renderer = request.accepted_renderer
                    response.accepted_media_type = media_type
                    response.renderer_context = self.get_renderer_context()
                    response.render()
                    cached = (response.content, response["Content-Type"], response["Content-Disposition"])
                    _rendered[media_type] = cached
        content, content_type, disposition = cached
        return HttpResponse(content, content_type=content_type, headers={"Content-Disposition": disposition})
