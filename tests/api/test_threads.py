"""Under daphne, REST views reuse their database connections instead of opening one per request."""

from __future__ import annotations

import httpx
import psycopg2
import pytest
from django.db import connection

from apps.api.bench import daphne_running
from tests.e2e.processes import free_port

# Starts daphne: not in `./screener test --fast`.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def sessions_opened(database: str) -> int:
    # A fresh connection each time: pg_stat_database is a per-transaction snapshot.
    with psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres") as probe:
        probe.autocommit = True
        with probe.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", [database])
            return cursor.fetchone()[0]


@pytest.mark.parametrize("threads, most_sessions", [(2, 2), (0, 30)])
def test_requests_share_connections_of_the_view_threads(monkeypatch, threads, most_sessions):
    database = connection.settings_dict["NAME"]
    monkeypatch.setenv("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{database}")
    before = sessions_opened(database)
    with daphne_running(port=free_port(), env={"API_VIEW_THREADS": str(threads)}) as address:
        with httpx.Client(base_url=f"http://{address}") as client:
            codes = [client.get("/api/rules").status_code for _ in range(30)]
    assert codes == [200] * 30
    # Every session has ended once daphne stopped; without the threads, each request had its own.
    opened = sessions_opened(database) - before
    assert opened <= most_sessions if threads else opened >= most_sessions
