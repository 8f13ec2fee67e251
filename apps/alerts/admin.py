"""Admin for alert rules (edited live: the tick reads them every minute) and user settings.

AlertHistory has a composite primary key, which Django 5.2's admin cannot register; it is read through the API.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.metrics.indicators import INDICATOR_NAMES
from screener_project.kernel.timeframes import RULE_TIMEFRAMES
from screener_project.strict_json import StrictJSONDecoder, json_formfield_overrides

from .builtin_rules import BUILTIN_RULES
from .conditions import CANDLE_FIELDS, FUNCTIONS, SERIES
from .engine import RuleError, rule_compile, rules_stored_resolver
from .models import AlertRule, UserSettings
from .rule_types import rule_type_validator

MAX_COOLDOWN_MINUTES = 1440

CONDITIONS_HELP = (
    "One condition per line, all must hold. A condition compares arithmetic expressions (+ - * /, parentheses) "
    "with <, <=, >, >=. Names: this rule's parameters, window metrics such as change_1h, vol_8h, high_1h, vcp_15m "
    "(windows 5m 15m 1h 4h 8h 1d), indicators on that timeframe's bars such as rsi_14_1h, macd_hist_15m, "
    "bb_lower_4h ("
    + ", ".join(INDICATOR_NAMES)
    + "), the newest candle's "
    + ", ".join(CANDLE_FIELDS)
    + ", and "
    + " / ".join(f"{f}(series, n)" for f in FUNCTIONS)
    + " over the last n candles of "
    + ", ".join(SERIES)
    + "."
)


class AlertRuleForm(forms.ModelForm):
    conditions = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10, "cols": 110, "style": "font-family: monospace"}),
        help_text=CONDITIONS_HELP,
        error_messages={"required": "Enter at least one condition."},
    )
    timeframe = forms.ChoiceField(
        choices=[(t, t) for t in RULE_TIMEFRAMES],
        help_text="The window whose volume and change an alert reports (1m: the newest candle).",
    )
    parameters = forms.JSONField(
        required=False,
        decoder=StrictJSONDecoder,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 110, "style": "font-family: monospace"}),
        help_text='Named numbers the conditions refer to, as a JSON object, e.g. {"change_1h_min": 1.6}.',
    )

    class Meta:
        model = AlertRule
        fields = [
            "rule_type",
            "name",
            "description",
            "category",
            "timeframe",
            "enabled",
            "cooldown_minutes",
            "parameters",
            "conditions",
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        stored = self.initial.get("conditions")
        if isinstance(stored, list):
            self.initial["conditions"] = "\n".join(str(line) for line in stored)

    def clean_rule_type(self) -> str:
        value = self.cleaned_data["rule_type"]
        rule_type_validator(value)
        return value

    def clean_conditions(self) -> list[str]:
        text = self.cleaned_data.get("conditions") or ""
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines:
            raise forms.ValidationError("Enter at least one condition.")
        return lines

    def clean_parameters(self) -> dict:
        value = self.cleaned_data.get("parameters")
        return {} if value is None else value

    def clean_cooldown_minutes(self) -> int:
        value = self.cleaned_data["cooldown_minutes"]
        if value > MAX_COOLDOWN_MINUTES:
            raise forms.ValidationError(f"At most {MAX_COOLDOWN_MINUTES} minutes.")
        return value

    def clean(self) -> dict:
        cleaned = super().clean()
        needed = ("conditions", "parameters", "timeframe")
        if any(name not in cleaned for name in needed):
            return cleaned  # a field error is already shown
        try:
            rule_compile(
                rule_type=cleaned.get("rule_type") or "rule",
                conditions=cleaned["conditions"],
                parameters=cleaned["parameters"],
                timeframe=cleaned["timeframe"],
                held_rules=rules_stored_resolver(),
            )
        except RuleError as error:
            self.add_error(error.field, str(error))
        return cleaned


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    form = AlertRuleForm
    list_display = (
        "rule_type",
        "name",
        "category",
        "timeframe",
        "enabled",
        "cooldown_minutes",
        "is_builtin",
        "updated_at",
    )
    list_editable = ("enabled", "cooldown_minutes")
    list_filter = ("enabled", "category", "timeframe", "is_builtin")
    search_fields = ("rule_type", "name", "description")
    readonly_fields = ("is_builtin", "updated_at")
    actions = ("rules_enable", "rules_disable", "rules_reset")

    def get_readonly_fields(self, request: HttpRequest, obj: AlertRule | None = None) -> tuple[str, ...]:
        # Built-in rule types are names other parts of the product rely on (clients, webhooks, history).
        if obj is not None and obj.is_builtin:
            return (*self.readonly_fields, "rule_type")
        return self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: AlertRule | None = None) -> bool:
        if obj is not None and obj.is_builtin:
            return False
        return super().has_delete_permission(request, obj)

    @admin.action(description="Enable selected rules")
    def rules_enable(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        for rule in queryset:
            rule.enabled = True
            rule.save(update_fields=["enabled", "updated_at"])

    @admin.action(description="Disable selected rules")
    def rules_disable(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        for rule in queryset:
            rule.enabled = False
            rule.save(update_fields=["enabled", "updated_at"])

    @admin.action(description="Reset built-in rules to their default parameters and conditions")
    def rules_reset(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        defaults = {rule["rule_type"]: rule for rule in BUILTIN_RULES}
        reset = 0
        for rule in queryset:
            default = defaults.get(rule.rule_type)
            if default is None:
                continue
            rule.parameters = dict(default["parameters"])
            rule.conditions = list(default["conditions"])
            rule.timeframe = default["timeframe"]
            rule.save(update_fields=["parameters", "conditions", "timeframe", "updated_at"])
            reset += 1
        self.message_user(request, f"{reset} rule(s) reset to their defaults.", messages.SUCCESS)


@admin.register(UserSettings)
class UserSettingsAdmin(admin.ModelAdmin):
    formfield_overrides = json_formfield_overrides()
    list_display = ("user_id", "notification_enabled", "webhook_url", "updated_at")
    list_filter = ("notification_enabled",)
    search_fields = ("user_id", "webhook_url")
    readonly_fields = ("created_at", "updated_at")
