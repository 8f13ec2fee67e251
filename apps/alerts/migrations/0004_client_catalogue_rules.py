from __future__ import annotations

from django.db import migrations

# The rules that complete the web client's catalogue (apps.alerts.builtin_rules, after the first sixteen).
ADDED = (
    "bottom_hunter_v2",
    "top_hunter_v2",
    "big_bull_60m_v2",
    "big_bear_60m_v2",
    "whale_detector",
    "whale_accumulation",
    "whale_distribution",
    "surge_42",
    "knife_catcher",
    "capitulation_catcher",
)


def seed(apps, schema_editor):
    from apps.alerts.services import rules_builtin_seed

    rules_builtin_seed(model=apps.get_model("alerts", "AlertRule"))


def unseed(apps, schema_editor):
    apps.get_model("alerts", "AlertRule").objects.filter(rule_type__in=ADDED, is_builtin=True).delete()


class Migration(migrations.Migration):
    dependencies = [("alerts", "0003_timescale_policies")]
    operations = [migrations.RunPython(seed, unseed)]
