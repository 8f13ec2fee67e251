"""What a valid rule type is, in one place: the admin, the API's filters and settings, and the alert engine agree.

A rule type is lowercase letters, digits and '_' (1-64 characters), the form every client, webhook and alert row
uses; a known rule type is one with a rule row.
"""

from __future__ import annotations

from django.core.validators import RegexValidator

RULE_TYPE_PATTERN = r"^[a-z0-9_]{1,64}$"
RULE_TYPE_MESSAGE = "Must be a rule type of 1-64 lowercase letters, digits and '_', e.g. big_bull_60m."
rule_type_validator = RegexValidator(RULE_TYPE_PATTERN, RULE_TYPE_MESSAGE)


def rule_types_known() -> set[str]:
    """The rule types that have a rule (enabled or not)."""
    from .models import AlertRule

    return set(AlertRule.objects.values_list("rule_type", flat=True))


def rule_types_unknown(rule_types: list[str] | set[str]) -> list[str]:
    """Those of `rule_types` no rule has, sorted."""
    return sorted(set(rule_types) - rule_types_known())
