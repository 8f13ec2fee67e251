from __future__ import annotations

from django.db import models


class MetricsCalculated(models.Model):
    """The window metrics and indicators of one symbol and timeframe at minute `time` (the window candle's open)."""

    pk = models.CompositePrimaryKey("time", "symbol", "timeframe")
    time = models.DateTimeField()
    symbol = models.CharField(max_length=32)
    timeframe = models.CharField(max_length=4)
    open = models.FloatField(null=True)
    high = models.FloatField(null=True)
    low = models.FloatField(null=True)
    close = models.FloatField(null=True)
    volume = models.FloatField(null=True, help_text="Quote volume (USDT) over the window")
    base_volume = models.FloatField(null=True)
    change_pct = models.FloatField(null=True)
    vwap = models.FloatField(null=True)
    vcp = models.FloatField(null=True)
    trades = models.BigIntegerField(null=True)
    taker_buy_ratio = models.FloatField(null=True)
    fib_pivot = models.FloatField(null=True)
    fib_r1 = models.FloatField(null=True)
    fib_r2 = models.FloatField(null=True)
    fib_r3 = models.FloatField(null=True)
    fib_s1 = models.FloatField(null=True)
    fib_s2 = models.FloatField(null=True)
    fib_s3 = models.FloatField(null=True)
    rsi_14 = models.FloatField(null=True)
    macd = models.FloatField(null=True)
    macd_signal = models.FloatField(null=True)
    macd_hist = models.FloatField(null=True)
    bb_upper = models.FloatField(null=True)
    bb_middle = models.FloatField(null=True)
    bb_lower = models.FloatField(null=True)

    class Meta:
        db_table = "metrics_calculated"
        indexes = [models.Index(fields=["symbol", "timeframe", "-time"], name="metrics_symbol_tf_time")]

    def __str__(self) -> str:
        return f"{self.symbol} {self.timeframe} {self.time:%Y-%m-%d %H:%M}"
