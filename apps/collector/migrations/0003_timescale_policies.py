from __future__ import annotations

from django.conf import settings
from django.db import migrations

from screener_project.timescale import timescale_policies_apply


def forwards(apps, schema_editor):
    # A no-op on plain PostgreSQL, where the housekeeping.retention_purge task keeps RETENTION_HOURS instead.
    timescale_policies_apply(
        schema_editor.connection, table="candles_1m", time_column="time", retention_hours=settings.RETENTION_HOURS
    )


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("collector", "0002_hypertables")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
