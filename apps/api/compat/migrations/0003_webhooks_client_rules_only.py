"""Existing web client webhooks receive only the rules the client can switch, as new ones do (unless the operator
sends every rule): their mirror destinations get the catalogue as their rule filter."""

from __future__ import annotations

from django.db import migrations


def forwards(apps, schema_editor):
    from apps.api.compat.rule_catalogue import CLIENT_RULE_TYPES, send_all_rules

    if send_all_rules():
        return
    UserWebhook = apps.get_model("compat", "UserWebhook")
    Destination = apps.get_model("notifications", "Destination")
    ids = UserWebhook.objects.exclude(destination=None).values_list("destination_id", flat=True)
    Destination.objects.filter(pk__in=list(ids)).update(rule_types=sorted(CLIENT_RULE_TYPES))


class Migration(migrations.Migration):
    dependencies = [
        ("compat", "0002_client_signup_rules"),
        ("notifications", "0002_destination_owner_slack"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
