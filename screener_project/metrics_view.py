"""GET /metrics: the Prometheus exposition of every process writing to PROMETHEUS_MULTIPROC_DIR on this pod."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from screener_project.observability import metrics_exposition


def metrics_token_presented(request: HttpRequest) -> bool:
    """Whether the request carries `Authorization: Bearer <METRICS_TOKEN>` (False when no token is configured)."""
    token = getattr(settings, "METRICS_TOKEN", "")
    if not token:
        return False
    supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(supplied.encode("utf-8", "surrogateescape"), token.encode())


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    # Scrapes normally come from inside the cluster; METRICS_TOKEN guards the endpoint when the ingress exposes it.
    if getattr(settings, "METRICS_TOKEN", "") and not metrics_token_presented(request):
        return HttpResponse("metrics token required\n", status=401, content_type="text/plain")
    body, content_type = metrics_exposition()
    return HttpResponse(body, content_type=content_type)
