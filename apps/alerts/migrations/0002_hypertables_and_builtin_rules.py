from __future__ import annotations

from django.db import migrations

from screener_project.timescale import hypertable_create


def hypertables(apps, schema_editor):
    hypertable_create(schema_editor, table="alert_history", time_column="triggered_at")


def seed_rules(apps, schema_editor):
    from apps.alerts.builtin_rules import BUILTIN_RULES

    AlertRule = apps.get_model("alerts", "AlertRule")
    for rule in BUILTIN_RULES:
        AlertRule.objects.get_or_create(
            rule_type=rule["rule_type"],
            defaults={**{k: v for k, v in rule.items() if k != "rule_type"}, "is_builtin": True, "cooldown_minutes": 5},
        )


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("alerts", "0001_initial")]
    operations = [
        migrations.RunPython(hypertables, migrations.RunPython.noop),
        migrations.RunPython(seed_rules, migrations.RunPython.noop),
    ]
