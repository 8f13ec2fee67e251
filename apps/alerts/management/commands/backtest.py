"""python manage.py backtest [--data PATH ...] [--from ISO] [--to ISO] [--rules a,b] [--cooldown-minutes N]
[--output FILE.csv]: the live rules over history, with a per-rule summary of forward returns."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.alerts.backtest import (
    HIT_RATE_NOTE,
    HORIZONS,
    backtest_csv,
    backtest_run,
    backtest_summary,
    frames_from_database,
    frames_from_files,
)
from apps.alerts.engine import rules_compile
from apps.alerts.models import AlertRule


def _ms(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    try:
        moment = pd.Timestamp(value)
    except ValueError:
        raise CommandError(f"{option}: not an ISO-8601 time: {value!r}") from None
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    return int(moment.value // 1_000_000)


class Command(BaseCommand):
    help = "Run the alert rules over data files or candles_1m and summarise what they would have fired."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--data",
            nargs="+",
            type=Path,
            help="Binance public-dump CSV files (.csv or .csv.gz, one symbol each) or directories of them; "
            "without it, candles_1m is read",
        )
        parser.add_argument("--from", dest="start", help="first minute to evaluate (ISO-8601, UTC if no zone)")
        parser.add_argument("--to", dest="end", help="last minute to evaluate (ISO-8601, UTC if no zone)")
        parser.add_argument("--rules", help="comma-separated rule types (default: every enabled rule)")
        parser.add_argument("--cooldown-minutes", type=int, help="one cooldown for every rule instead of their own")
        parser.add_argument("--output", type=Path, help="write one CSV row per alert to this file")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options) -> None:
        start_ms, end_ms = _ms(options["start"], "--from"), _ms(options["end"], "--to")
        if start_ms is not None and end_ms is not None and end_ms < start_ms:
            raise CommandError("--to is before --from")
        if options["cooldown_minutes"] is not None and options["cooldown_minutes"] < 0:
            raise CommandError("--cooldown-minutes must be 0 or more")
        rules = self._rules(options["rules"])

        began = time.perf_counter()
        try:
            if options["data"]:
                frames = frames_from_files(options["data"])
            else:
                # Daily changes read 1d bars up to 30 days before each minute: load that much history.
                history_days = 31 if any(rule.daily for rule in rules) else 1
                frames = frames_from_database(start_ms=start_ms, end_ms=end_ms, history_days=history_days)
        except (OSError, ValueError) as error:
            raise CommandError(f"cannot read the candles: {error}") from None
        if not frames:
            raise CommandError("no candles found")
        loaded = time.perf_counter() - began
        self.stderr.write(
            f"{len(frames)} symbols, {sum(len(f) for f in frames.values()):,} candles read in {loaded:.1f} s"
        )

        result = backtest_run(
            frames=frames,
            rules=rules,
            start_ms=start_ms,
            end_ms=end_ms,
            cooldown_minutes=options["cooldown_minutes"],
            progress=not options["no_progress"],
        )
        if options["output"]:
            backtest_csv(result, options["output"])
            self.stderr.write(f"{len(result.alerts):,} alerts written to {options['output']}")

        summary = backtest_summary(result, rules)
        table = summary.copy()
        table.columns = [c.replace("_", " ") for c in table.columns]
        self.stdout.write(f"Alerts per rule; forward return (%) and hit rate (%) after {', '.join(HORIZONS)}:")
        self.stdout.write(HIT_RATE_NOTE)
        self.stdout.write(table.to_string(float_format=lambda v: f"{v:.3f}", na_rep="-"))
        self.stdout.write(
            f"{len(result.alerts):,} alerts; {result.candles:,} candles evaluated in {result.seconds:.2f} s "
            f"({result.candles_per_second:,.0f} candles/s)"
        )

    def _rules(self, wanted: str | None):
        if wanted:
            names = [name.strip() for name in wanted.split(",") if name.strip()]
            rows = list(AlertRule.objects.filter(rule_type__in=names).order_by("id"))
            unknown = sorted(set(names) - {row.rule_type for row in rows})
            if unknown:
                raise CommandError(f"--rules: unknown rule type(s): {', '.join(unknown)}")
        else:
            rows = list(AlertRule.objects.filter(enabled=True).order_by("id"))
        # held_within may name any rule, enabled or not, selected or not.
        rules = rules_compile(rows, others=AlertRule.objects.exclude(pk__in=[row.pk for row in rows]))
        invalid = sorted({row.rule_type for row in rows} - {rule.rule_type for rule in rules})
        if invalid:
            self.stderr.write(f"skipped rules that do not compile: {', '.join(invalid)}")
        if not rules:
            raise CommandError("no rules to run")
        return rules
