"""metrics_calculated rows: a plain insert after deleting the minute's rows, an upsert when another writer races."""

from __future__ import annotations

import threading

import psycopg2
import pytest
from django.db import connection

from apps.metrics.models import MetricsCalculated
from apps.metrics.services import metrics_calculated_upsert, minute_time, shard_indicators_compute
from screener_project.kernel.timeframes import SCREENER_TIMEFRAMES

from .conftest import SYMBOLS
from .test_services import prepared  # noqa: F401 - fixture


@pytest.mark.django_db(transaction=True)
def test_a_writer_racing_for_the_same_rows_ends_in_one_row_each(redis_client, prepared):  # noqa: F811
    end_ms = prepared
    result = shard_indicators_compute(redis_client, minute_ms=end_ms, symbols=SYMBOLS)
    params = connection.get_connection_params()
    other = psycopg2.connect(**{k: v for k, v in params.items() if k in ("dbname", "user", "host", "port", "password")})
    written: list[int] = []

    def write() -> None:
        try:
            written.append(metrics_calculated_upsert(result=result))
        finally:
            connection.close()

    try:
        with other.cursor() as cursor:  # an uncommitted row of the same key: the plain insert must wait, then fail
            cursor.execute(
                "INSERT INTO metrics_calculated (time, symbol, timeframe) VALUES (%s, %s, '5m')",
                [minute_time(end_ms), SYMBOLS[0]],
            )
        writer = threading.Thread(target=write)
        writer.start()
        writer.join(timeout=1.0)
        assert writer.is_alive()  # blocked on the other transaction's row
        other.commit()
        writer.join(timeout=10)
    finally:
        other.close()
    assert written == [len(SYMBOLS) * len(SCREENER_TIMEFRAMES)]
    rows = MetricsCalculated.objects.filter(time=minute_time(end_ms))
    assert rows.count() == len(SYMBOLS) * len(SCREENER_TIMEFRAMES)
    assert rows.get(symbol=SYMBOLS[0], timeframe="5m").close is not None  # the upsert replaced the racer's row
    metrics_calculated_upsert(result=result)  # a retry: still one row each
    assert rows.count() == len(SYMBOLS) * len(SCREENER_TIMEFRAMES)
