from __future__ import annotations

from django.db import models


class Symbol(models.Model):
    """A USDT perpetual the screener watches (or watched, when inactive)."""

    symbol = models.CharField(max_length=32, primary_key=True)
    base_asset = models.CharField(max_length=24, blank=True)
    quote_asset = models.CharField(max_length=12, default="USDT")
    status = models.CharField(max_length=24, default="TRADING")
    is_active = models.BooleanField(default=True, db_index=True)
    quote_volume_24h = models.FloatField(null=True, blank=True)
    listed_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "symbols"
        ordering = ["symbol"]

    def __str__(self) -> str:
        return self.symbol


class Candle1m(models.Model):
    """A closed 1-minute kline; `time` is its open time (UTC)."""

    pk = models.CompositePrimaryKey("time", "symbol")
    time = models.DateTimeField()
    symbol = models.CharField(max_length=32)
    open = models.FloatField()
    high = models.FloatField()
    low = models.FloatField()
    close = models.FloatField()
    volume = models.FloatField(help_text="Base asset volume")
    quote_volume = models.FloatField(help_text="Quote (USDT) volume")
    trades = models.BigIntegerField(default=0)
    taker_buy_volume = models.FloatField(default=0)
    taker_buy_quote_volume = models.FloatField(default=0)
    # True when the source had no quote volume and it was estimated as volume * (h + l + c) / 3.
    quote_volume_estimated = models.BooleanField(default=False)

    class Meta:
        db_table = "candles_1m"
        indexes = [models.Index(fields=["symbol", "-time"], name="candles_symbol_time")]

    def __str__(self) -> str:
        return f"{self.symbol} {self.time:%Y-%m-%d %H:%M}"
