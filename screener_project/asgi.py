"""HTTP goes to Django; WebSocket paths under /ws/ go to Channels consumers."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "screener_project.settings.local")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from apps.api.compat.routing import websocket_urlpatterns as compat_websocket_urlpatterns  # noqa: E402
from apps.api.routing import websocket_urlpatterns  # noqa: E402
from screener_project.access_log import AccessLogMiddleware  # noqa: E402
from screener_project.heap import startup_heap_freeze  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": AccessLogMiddleware(django_asgi_app),
        "websocket": URLRouter([*websocket_urlpatterns, *compat_websocket_urlpatterns]),
    }
)

# Everything loaded so far lives as long as the process: keep it out of full garbage collections, whose pauses
# otherwise land on alert fan-out (screener_project.heap).
startup_heap_freeze()
