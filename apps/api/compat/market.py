"""Market endpoints of the compatibility surface (see README.md): what the web client polls, in its own shapes."""

from __future__ import annotations

from datetime import UTC, datetime

from django.http import HttpResponse
from django.utils.cache import patch_vary_headers
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from apps.api import selectors as api_selectors
from apps.api.health import HEALTHY, UNHEALTHY, health_report
from apps.api.views import RULE_TYPE_PATTERN, QuerySerializer, symbol_validator

from . import market_selectors
from .base import CompatApi, rule_type_of

MAX_ALERTS = 2000
MAX_KLINES = 1500
_rule_type_format = serializers.RegexField(RULE_TYPE_PATTERN)


def _accepts_gzip(request) -> bool:
    return "gzip" in request.META.get("HTTP_ACCEPT_ENCODING", "").lower()


def _snapshot_response(request, build) -> HttpResponse:
    """A prebuilt JSON body (cached per symbol), gzipped when the client accepts it: no DRF rendering of a
    megabyte-sized list on every 2-second poll."""
    gzipped = _accepts_gzip(request)
    response = HttpResponse(build(gzipped=gzipped), content_type="application/json")
    if gzipped:
        response["Content-Encoding"] = "gzip"
    patch_vary_headers(response, ["Accept-Encoding"])
    return response


@extend_schema_field(OpenApiTypes.STR)
class SinceField(serializers.Field):
    """ISO-8601 (a naive one is UTC) or epoch milliseconds, as JavaScript's Date.toISOString() / getTime() give."""

    default_error_messages = {"invalid": "Must be an ISO-8601 date-time or epoch milliseconds."}

    def to_internal_value(self, data):
        text = str(data).strip()
        try:
            if text.isdigit():
                return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except (ValueError, OverflowError, OSError):
            self.fail("invalid")
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def to_representation(self, value):
        return value.isoformat()


class SymbolField(serializers.CharField):
    def __init__(self, **kwargs) -> None:
        super().__init__(max_length=32, validators=[symbol_validator], **kwargs)

    def to_internal_value(self, data):
        return super().to_internal_value(data).upper()


_TIMEFRAME_SCHEMA = inline_serializer(
    "CompatTimeframe",
    fields={
        "time": serializers.DateTimeField(help_text="Close of the newest minute the values include (ISO-8601, UTC)"),
        **{
            name: serializers.FloatField(allow_null=True)
            for name in (
                "open",
                "high",
                "low",
                "close",
                "volume",
                "price_change",
                "vcp",
                "rsi_14",
                "macd",
                "macd_signal",
                "bb_upper",
                "bb_middle",
                "bb_lower",
            )
        },
        "fibonacci": serializers.DictField(child=serializers.FloatField(allow_null=True)),
    },
)


class MetricsListApi(CompatApi):
    @extend_schema(
        summary="Window metrics and indicators of every active symbol, per timeframe (polled every 2 s)",
        responses=inline_serializer(
            "CompatMetrics",
            fields={"symbol": serializers.CharField(), "timeframes": serializers.DictField(child=_TIMEFRAME_SCHEMA)},
            many=True,
        ),
    )
    def get(self, request):
        return _snapshot_response(request, market_selectors.metrics_all_json)


class TickerListApi(CompatApi):
    @extend_schema(
        summary="Binance 24 h tickers of the active symbols, from the 1d window",
        responses=inline_serializer(
            "CompatTicker",
            fields={
                name: serializers.CharField()
                for name in (
                    "symbol",
                    "priceChange",
                    "priceChangePercent",
                    "weightedAvgPrice",
                    "lastPrice",
                    "openPrice",
                    "highPrice",
                    "lowPrice",
                    "volume",
                    "quoteVolume",
                )
            },
            many=True,
        ),
    )
    def get(self, request):
        return _snapshot_response(request, market_selectors.tickers_all_json)


class AlertListApi(CompatApi):
    class InputSerializer(QuerySerializer):
        symbol = SymbolField(required=False)
        rule_type = serializers.CharField(required=False, max_length=80, help_text="The client's rule id")
        since = SinceField(required=False)
        limit = serializers.IntegerField(required=False, default=100, min_value=1, max_value=MAX_ALERTS)

        def validate_rule_type(self, value: str) -> str:
            rule_type = rule_type_of(value)
            _rule_type_format.run_validation(rule_type)
            return rule_type

    class AlertSerializer(serializers.Serializer):
        class Meta:
            ref_name = "CompatAlert"

        id = serializers.UUIDField()
        symbol = serializers.CharField()
        rule_type = serializers.CharField()
        description = serializers.CharField()
        timestamp = serializers.DateTimeField()
        price = serializers.FloatField()
        metadata = serializers.DictField()

    @extend_schema(
        summary="Fired alerts, newest first, with the client's rule ids",
        parameters=[InputSerializer],
        responses=AlertSerializer(many=True),
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        query = params.validated_data
        return Response(
            market_selectors.compat_alerts_list(
                symbol=query.get("symbol"),
                rule_type=query.get("rule_type"),
                since=query.get("since"),
                limit=query["limit"],
            )
        )


class KlineListApi(CompatApi):
    class InputSerializer(QuerySerializer):
        symbol = SymbolField()
        interval = serializers.ChoiceField(choices=list(market_selectors.KLINE_INTERVALS))
        limit = serializers.IntegerField(required=False, default=500, min_value=1, max_value=MAX_KLINES)

    @extend_schema(
        summary="Binance klines (12-field arrays, oldest first) from the stored candles and bars",
        parameters=[InputSerializer],
        responses={
            200: OpenApiResponse(
                {"type": "array", "items": {"type": "array", "minItems": 12, "maxItems": 12, "items": {}}},
                description="[[open ms, open, high, low, close, volume, close ms, quote volume, trades, ...], ...]",
            )
        },
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        query = params.validated_data
        if not api_selectors.symbol_exists(symbol=query["symbol"]):
            raise NotFound(f"Unknown symbol: {query['symbol']}")
        return Response(
            market_selectors.klines_list(symbol=query["symbol"], interval=query["interval"], limit=query["limit"])
        )


class HealthApi(CompatApi):
    # Probes come often from one address; they are never throttled, and a stale token never fails them.
    authentication_classes: list = []
    throttle_classes: list = []

    @extend_schema(
        summary="Health of the pipeline: status 'ok' when healthy, else 'degraded' or 'unhealthy' (503)",
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description='{"status": "ok", "services": {...}, ...}'),
            503: OpenApiResponse(OpenApiTypes.OBJECT, description='{"status": "unhealthy", ...}'),
        },
    )
    def get(self, request):
        report = health_report()
        code = status.HTTP_503_SERVICE_UNAVAILABLE if report["status"] == UNHEALTHY else status.HTTP_200_OK
        return Response({**report, "status": "ok" if report["status"] == HEALTHY else report["status"]}, status=code)
