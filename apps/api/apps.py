from __future__ import annotations

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "apps.api"
    label = "api"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        _plain_autobahn_log_arguments()


def _plain_autobahn_log_arguments() -> None:
    """Stop autobahn (under daphne) from colouring debug-log arguments through click on every frame it sends.

    autobahn builds those arguments eagerly, even with debug logging off; with click installed that was ~40 us per
    frame, a third of the server's cost of pushing one alert to one WebSocket client. Only log colours change.
    """
    try:
        import autobahn.util
    except ImportError:
        return
    autobahn.util._HAS_CLICK = False
