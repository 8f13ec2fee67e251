from __future__ import annotations

from django.conf import settings
from django.db import migrations

from screener_project.timescale import timescale_policies_apply


def forwards(apps, schema_editor):
    # A no-op on plain PostgreSQL, where the housekeeping.retention_purge task keeps RETENTION_HOURS instead.
    timescale_policies_apply(
        schema_editor.connection,
        table="alert_history",
        time_column="triggered_at",
        retention_hours=settings.RETENTION_HOURS,
    )


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("alerts", "0002_hypertables_and_builtin_rules")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
