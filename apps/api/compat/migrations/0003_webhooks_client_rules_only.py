"""Existing web client webhooks receive only the rules the client can switch, as new ones do (unless the operator
sends every rule): their mirror destinations get the catalogue as their rule filter, and leave out the catalogue's
default-off rules their owner has not switched on."""

from __future__ import annotations

from django.db import migrations


def forwards(apps, schema_editor):
    from apps.api.compat.rule_catalogue import CLIENT_RULE_TYPES, rules_switched_off, send_all_rules

    UserWebhook = apps.get_model("compat", "UserWebhook")
    AccountProfile = apps.get_model("compat", "AccountProfile")
    Destination = apps.get_model("notifications", "Destination")
    for webhook in UserWebhook.objects.exclude(destination=None):
        profile = AccountProfile.objects.filter(user_id=webhook.user_id).first()
        switched_off = rules_switched_off(
            disabled=profile.disabled_rule_types if profile else [],
            switched_on=profile.enabled_rule_types if profile else [],
        )
        Destination.objects.filter(pk=webhook.destination_id).update(
            rule_types=[] if send_all_rules() else sorted(CLIENT_RULE_TYPES),
            excluded_rule_types=sorted(switched_off),
        )


class Migration(migrations.Migration):
    dependencies = [
        ("compat", "0002_client_signup_rules"),
        ("notifications", "0002_destination_owner_slack"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
