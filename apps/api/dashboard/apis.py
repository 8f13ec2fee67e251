"""Read-only endpoints the dashboard needs beyond the REST API, each usable on its own (in the OpenAPI schema)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.response import Response

from apps.api.views import BaseApi, QuerySerializer

from . import selectors


class WindowSerializer(QuerySerializer):
    hours = serializers.IntegerField(required=False, default=24, min_value=1, max_value=48)


class ScreenerApi(BaseApi):
    """Every symbol's newest snapshot as one table, for screens that show them all at once."""

    @extend_schema(
        summary="Every symbol's price, change, volume, VCP and RSI per timeframe, as one table (rows by symbol)",
        description=(
            "Rows follow `columns`: symbol, snapshot timestamp, price (the newest close), then change_<tf> (percent), "
            "volume_<tf> (quote volume, USDT), vcp_<tf> and rsi_<tf> for each timeframe 5m, 15m, 1h, 4h, 8h, 1d; "
            "null where unknown. Sends an ETag; with a matching If-None-Match the answer is 304 and empty, so "
            "polling costs little until the next minute's snapshot."
        ),
        responses={
            200: inline_serializer(
                "ScreenerOutput",
                fields={
                    "timestamp": serializers.DateTimeField(allow_null=True),
                    "columns": serializers.ListField(child=serializers.CharField()),
                    "rows": serializers.ListField(child=serializers.ListField()),
                    "count": serializers.IntegerField(),
                },
            ),
            304: None,
        },
    )
    def get(self, request):
        version = selectors.screener_version()
        etag = f'"{version}"' if version else None
        if etag and etag in request.headers.get("If-None-Match", ""):
            return Response(status=304, headers={"ETag": etag})
        rows, newest = selectors.screener_rows()
        body = {"timestamp": newest, "columns": selectors.SCREENER_COLUMNS, "rows": rows, "count": len(rows)}
        return Response(body, headers={"ETag": etag} if etag else None)


class AlertCountsApi(BaseApi):
    @extend_schema(
        summary="Alerts per rule type over the last `hours` (1..48, default 24) of the exchange's clock",
        parameters=[WindowSerializer],
        responses=inline_serializer(
            "AlertCountsOutput",
            fields={
                "since": serializers.DateTimeField(),
                "until": serializers.DateTimeField(),
                "counts": serializers.DictField(child=serializers.IntegerField()),
                "total": serializers.IntegerField(),
            },
        ),
    )
    def get(self, request):
        params = WindowSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return Response(selectors.alert_counts(hours=params.validated_data["hours"]))


class FeedApi(BaseApi):
    # A signed-in staff member (the admin's session) also sees the webhook destinations paused after failures.
    authentication_classes = [SessionAuthentication]

    class SymbolSerializer(serializers.Serializer):
        class Meta:
            ref_name = "FeedSymbol"

        symbol = serializers.CharField()
        candles = serializers.IntegerField()
        missing = serializers.IntegerField(allow_null=True)
        behind = serializers.IntegerField(allow_null=True)
        last = serializers.DateTimeField(allow_null=True)

    @extend_schema(
        summary="Per symbol: stored 1m candles, minutes missing and minutes behind over the last `hours` (1..48)",
        description="`paused_destinations` is present for staff sessions only.",
        parameters=[WindowSerializer],
        responses=inline_serializer(
            "FeedOutput",
            fields={
                "newest": serializers.DateTimeField(allow_null=True),
                "hours": serializers.IntegerField(),
                "symbols": SymbolSerializer(many=True),
                "with_gaps": serializers.IntegerField(),
                "paused_destinations": serializers.ListField(child=serializers.DictField(), required=False),
            },
        ),
    )
    def get(self, request):
        params = WindowSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        body = selectors.feed_symbols(hours=params.validated_data["hours"])
        if getattr(request.user, "is_staff", False):
            body["paused_destinations"] = selectors.paused_destinations()
        return Response(body)
