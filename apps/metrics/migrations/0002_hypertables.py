from __future__ import annotations

from django.db import migrations

from screener_project.timescale import hypertable_create


def forwards(apps, schema_editor):
    hypertable_create(schema_editor, table="metrics_calculated", time_column="time")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("metrics", "0001_initial")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
