"""The REST API (docs/api.md): one class per operation, each with its input and output serializers."""

from __future__ import annotations

from django.core.validators import RegexValidator, URLValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.alerts.models import AlertRule
from apps.alerts.notifications.safety import UnsafeDestination, url_check
from apps.alerts.rule_types import RULE_TYPE_PATTERN, rule_type_validator, rule_types_unknown  # noqa: F401 (compat)
from apps.alerts.selectors import STATS_HORIZONS, alert_payload, alerts_list, rule_stats, rules_list
from screener_project.kernel.clock import iso_utc

from . import selectors, services
from .auth import SupabaseJWTAuthentication
from .health import UNHEALTHY, health_details_allowed, health_report
from .throttling import AnonIpThrottle, UserIdThrottle

SYMBOL_PATTERN = r"^[A-Za-z0-9]{2,32}$"
symbol_validator = RegexValidator(SYMBOL_PATTERN, "Must be a symbol of 2-32 letters and digits, e.g. BTCUSDT.")


class BaseApi(APIView):
    throttle_classes = [AnonIpThrottle, UserIdThrottle]


class QuerySerializer(serializers.Serializer):
    """Query parameters; an empty one (`?symbol=`) means the parameter is absent, as browsers' forms send it."""

    def to_internal_value(self, data):
        return super().to_internal_value({name: value for name, value in data.items() if value != ""})


def _symbol(raw: str) -> str:
    """A path symbol, upper-cased and validated (400 naming the field)."""
    symbol = raw.upper()
    try:
        symbol_validator(symbol)
    except Exception as exc:
        raise ValidationError({"symbol": [symbol_validator.message]}) from exc
    return symbol


def _known_symbol(raw: str) -> str:
    symbol = _symbol(raw)
    if not selectors.symbol_exists(symbol=symbol):
        raise NotFound(f"Unknown symbol: {symbol}")
    return symbol


class AlertSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    triggered_at = serializers.DateTimeField()
    symbol = serializers.CharField()
    alert_type = serializers.CharField()
    timeframe = serializers.CharField()
    price = serializers.FloatField()
    volume = serializers.FloatField(allow_null=True)
    change_pct = serializers.FloatField(allow_null=True)
    metadata = serializers.DictField()


class HealthApi(APIView):
    # Probes come often from one address; they are never throttled.
    throttle_classes: list = []
    # The admin's session tells staff apart, who see which webhook destinations are paused (anyone sees how many).
    authentication_classes = [SessionAuthentication]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "Health"

        status = serializers.ChoiceField(choices=["healthy", "degraded", "unhealthy"])
        services = serializers.DictField(child=serializers.ChoiceField(choices=["up", "down", "stale"]))
        timestamp = serializers.DateTimeField()
        details = serializers.DictField(required=False)

    @extend_schema(
        summary="Health of the pipeline",
        responses={200: OutputSerializer, 503: OutputSerializer},
    )
    def get(self, request):
        report = health_report(full=health_details_allowed(request))
        code = status.HTTP_503_SERVICE_UNAVAILABLE if report["status"] == UNHEALTHY else status.HTTP_200_OK
        return Response(report, status=code)


class AlertListApi(BaseApi):
    class InputSerializer(QuerySerializer):
        symbol = serializers.CharField(required=False, max_length=32, validators=[symbol_validator])
        type = serializers.CharField(required=False, max_length=64, validators=[rule_type_validator])
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)
        limit = serializers.IntegerField(required=False, default=100, min_value=1, max_value=1000)
        offset = serializers.IntegerField(required=False, default=0, min_value=0, max_value=10_000_000)

        def validate_symbol(self, value: str) -> str:
            return value.upper()

        def validate_type(self, value: str) -> str:
            if rule_types_unknown([value]):
                raise ValidationError(f"Unknown rule type {value!r}; GET /api/rules lists them.")
            return value

        def validate(self, attrs):
            if "since" in attrs and "until" in attrs and attrs["since"] > attrs["until"]:
                raise ValidationError({"since": ["Must not be after 'until'."]})
            return attrs

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AlertList"

        alerts = AlertSerializer(many=True)
        total = serializers.IntegerField()
        limit = serializers.IntegerField()
        offset = serializers.IntegerField()

    @extend_schema(summary="Fired alerts, newest first", parameters=[InputSerializer], responses=OutputSerializer)
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        query = params.validated_data
        page, total = alerts_list(
            symbol=query.get("symbol"),
            alert_type=query.get("type"),
            since=query.get("since"),
            until=query.get("until"),
            limit=query["limit"],
            offset=query["offset"],
        )
        return Response(
            {
                "alerts": [alert_payload(alert) for alert in page],
                "total": total,
                "limit": query["limit"],
                "offset": query["offset"],
            }
        )


class MetricsDetailApi(BaseApi):
    class TimeframeSerializer(serializers.Serializer):
        open = serializers.FloatField(allow_null=True)
        high = serializers.FloatField(allow_null=True)
        low = serializers.FloatField(allow_null=True)
        close = serializers.FloatField(allow_null=True)
        volume = serializers.FloatField(allow_null=True, help_text="Quote volume (USDT) over the window")
        change_pct = serializers.FloatField(allow_null=True)
        vcp = serializers.FloatField(allow_null=True)
        rsi_14 = serializers.FloatField(allow_null=True)
        macd = serializers.FloatField(allow_null=True)
        macd_signal = serializers.FloatField(allow_null=True)
        bb_upper = serializers.FloatField(allow_null=True)
        bb_middle = serializers.FloatField(allow_null=True)
        bb_lower = serializers.FloatField(allow_null=True)
        fib_pivot = serializers.FloatField(allow_null=True)

    @extend_schema(
        summary="Newest window metrics and indicators of a symbol, per timeframe (5m, 15m, 1h, 4h, 8h, 1d)",
        parameters=[OpenApiParameter("symbol", OpenApiTypes.STR, OpenApiParameter.PATH, pattern=SYMBOL_PATTERN)],
        responses=inline_serializer(
            "MetricsOutput",
            fields={
                "symbol": serializers.CharField(),
                "timestamp": serializers.DateTimeField(allow_null=True),
                "timeframes": serializers.DictField(child=TimeframeSerializer()),
            },
        ),
    )
    def get(self, request, symbol: str):
        symbol = _known_symbol(symbol)
        return Response(selectors.metrics_latest(symbol=symbol))


class SymbolListApi(BaseApi):
    class SymbolSerializer(serializers.Serializer):
        symbol = serializers.CharField()
        base_asset = serializers.CharField()
        quote_asset = serializers.CharField()
        status = serializers.CharField()
        is_active = serializers.BooleanField()
        quote_volume_24h = serializers.FloatField(allow_null=True)

    @extend_schema(
        summary="Symbols the screener watches (or watched)",
        responses=inline_serializer(
            "SymbolListOutput",
            fields={"symbols": SymbolSerializer(many=True), "count": serializers.IntegerField()},
        ),
    )
    def get(self, request):
        symbols = self.SymbolSerializer(selectors.symbols_list(), many=True).data
        return Response({"symbols": symbols, "count": len(symbols)})


class RuleListApi(BaseApi):
    class RuleSerializer(serializers.Serializer):
        rule_type = serializers.CharField()
        name = serializers.CharField()
        description = serializers.CharField()
        category = serializers.CharField()
        timeframe = serializers.CharField()
        enabled = serializers.BooleanField()
        cooldown_minutes = serializers.IntegerField()
        parameters = serializers.DictField()
        conditions = serializers.ListField(child=serializers.CharField())

    @extend_schema(
        summary="Alert rules with their parameters and conditions",
        responses=inline_serializer(
            "RuleListOutput",
            fields={"rules": RuleSerializer(many=True), "count": serializers.IntegerField()},
        ),
    )
    def get(self, request):
        rules = self.RuleSerializer(rules_list(), many=True).data
        return Response({"rules": rules, "count": len(rules)})


class ReturnDistributionSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Alerts whose forward candle is stored")
    mean = serializers.FloatField(allow_null=True)
    p10 = serializers.FloatField(allow_null=True)
    p25 = serializers.FloatField(allow_null=True)
    median = serializers.FloatField(allow_null=True)
    p75 = serializers.FloatField(allow_null=True)
    p90 = serializers.FloatField(allow_null=True)
    min = serializers.FloatField(allow_null=True)
    max = serializers.FloatField(allow_null=True)
    hit_rate = serializers.FloatField(
        allow_null=True, help_text="% of returns in the rule's direction (up: bull, down: bear); null if neutral"
    )


class RuleStatsApi(BaseApi):
    class InputSerializer(QuerySerializer):
        since = serializers.DateTimeField(required=False, help_text="ISO-8601 lower bound on triggered_at")
        until = serializers.DateTimeField(required=False, help_text="ISO-8601 upper bound on triggered_at")

        def validate(self, attrs):
            if "since" in attrs and "until" in attrs and attrs["since"] > attrs["until"]:
                raise ValidationError({"since": ["Must not be after until."]})
            return attrs

    @extend_schema(
        summary="A rule's stored alerts and the forward returns after them (5m, 15m, 1h, 4h, 1d), in percent",
        parameters=[
            OpenApiParameter("rule_type", OpenApiTypes.STR, OpenApiParameter.PATH),
            OpenApiParameter("since", OpenApiTypes.DATETIME),
            OpenApiParameter("until", OpenApiTypes.DATETIME),
        ],
        responses=inline_serializer(
            "RuleStatsOutput",
            fields={
                "rule_type": serializers.CharField(),
                "category": serializers.CharField(),
                "alerts": serializers.IntegerField(),
                "symbols": serializers.IntegerField(),
                "first": serializers.DateTimeField(allow_null=True),
                "last": serializers.DateTimeField(allow_null=True),
                "horizons": inline_serializer(
                    "RuleStatsHorizons", fields={h: ReturnDistributionSerializer() for h in STATS_HORIZONS}
                ),
            },
        ),
    )
    def get(self, request, rule_type: str):
        try:
            rule_type_validator(rule_type)
        except Exception as exc:
            raise ValidationError({"rule_type": [rule_type_validator.message]}) from exc
        rule = AlertRule.objects.filter(rule_type=rule_type).first()
        if rule is None:
            raise NotFound(f"Unknown rule type: {rule_type}")
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return Response(rule_stats(rule=rule, **params.validated_data))


class CandleListApi(BaseApi):
    class InputSerializer(QuerySerializer):
        interval = serializers.ChoiceField(choices=list(selectors.INTERVALS), required=False, default="1m")
        limit = serializers.IntegerField(required=False, default=500, min_value=1, max_value=1500)

    class CandleSerializer(serializers.Serializer):
        time = serializers.DateTimeField(help_text="Open time of the bar (UTC)")
        open = serializers.FloatField()
        high = serializers.FloatField()
        low = serializers.FloatField()
        close = serializers.FloatField()
        volume = serializers.FloatField(help_text="Base asset volume")
        quote_volume = serializers.FloatField()
        trades = serializers.IntegerField()
        taker_buy_volume = serializers.FloatField()
        taker_buy_quote_volume = serializers.FloatField()

    @extend_schema(
        summary="Candles of a symbol at an interval, oldest first (the newest bar may still be forming)",
        parameters=[
            InputSerializer,
            OpenApiParameter("symbol", OpenApiTypes.STR, OpenApiParameter.PATH, pattern=SYMBOL_PATTERN),
        ],
        responses=inline_serializer(
            "CandleListOutput",
            fields={
                "symbol": serializers.CharField(),
                "interval": serializers.CharField(),
                "candles": CandleSerializer(many=True),
            },
        ),
    )
    def get(self, request, symbol: str):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        symbol = _known_symbol(symbol)
        query = params.validated_data
        candles = selectors.candles_list(symbol=symbol, interval=query["interval"], limit=query["limit"])
        return Response({"symbol": symbol, "interval": query["interval"], "candles": candles})


class SettingsApi(BaseApi):
    authentication_classes = [SupabaseJWTAuthentication]
    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SettingsInput"

        selected_alerts = serializers.ListField(
            child=serializers.CharField(max_length=64, validators=[rule_type_validator]),
            required=False,
            max_length=100,
        )
        webhook_url = serializers.CharField(
            required=False,
            allow_blank=True,
            allow_null=True,
            max_length=500,
            validators=[URLValidator(schemes=["http", "https"], message="Must be an http(s) URL.")],
        )
        notification_enabled = serializers.BooleanField(required=False)

        def validate_webhook_url(self, value: str | None) -> str | None:
            if value:
                try:
                    url_check(value)
                except UnsafeDestination as exc:
                    raise ValidationError(str(exc)) from None
            return value

        def validate_selected_alerts(self, value: list[str]) -> list[str]:
            unknown = rule_types_unknown(value)
            if unknown:
                raise ValidationError(f"Unknown rule types: {', '.join(unknown)}.")
            return list(dict.fromkeys(value))

    class SettingsSerializer(serializers.Serializer):
        user_id = serializers.CharField()
        selected_alerts = serializers.ListField(child=serializers.CharField())
        webhook_url = serializers.CharField()
        notification_enabled = serializers.BooleanField()
        updated_at = serializers.SerializerMethodField()

        def get_updated_at(self, obj) -> str | None:
            return iso_utc(obj.updated_at) if obj.updated_at else None

    def _output(self, found) -> dict:
        return {"success": True, "settings": self.SettingsSerializer(found).data}

    @extend_schema(
        summary="The signed-in user's alert settings",
        responses=inline_serializer(
            "SettingsOutput", fields={"success": serializers.BooleanField(), "settings": SettingsSerializer()}
        ),
    )
    def get(self, request):
        return Response(self._output(selectors.user_settings_get(user_id=request.user.id)))

    @extend_schema(
        summary="Save the signed-in user's alert settings (fields not sent keep their values)",
        request=InputSerializer,
        responses=inline_serializer(
            "SettingsSaveOutput", fields={"success": serializers.BooleanField(), "settings": SettingsSerializer()}
        ),
    )
    def post(self, request):
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        saved = services.user_settings_update(user_id=request.user.id, changes=body.validated_data)
        return Response(self._output(saved))
