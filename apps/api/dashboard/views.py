"""The dashboard's pages: each a template that its own script fills from the API and the alert socket."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse

from apps.api.views import SYMBOL_PATTERN, symbol_validator
from screener_project.kernel.timeframes import CANDLE_INTERVALS, SCREENER_TIMEFRAMES


def _page(request, page: str, title: str, **extra):
    context = {
        "page": page,
        "title": title,
        "timeframes": tuple(SCREENER_TIMEFRAMES),
        "is_staff": bool(getattr(request.user, "is_staff", False)),
        "api_docs": reverse("docs"),
        **extra,
    }
    return render(request, f"dashboard/{page}.html", context)


def screener(request):
    return _page(request, "screener", "Screener")


def symbol(request, symbol: str):
    symbol = symbol.upper()
    try:
        symbol_validator(symbol)
    except ValidationError as exc:
        raise Http404(f"Not a symbol; symbols match {SYMBOL_PATTERN}") from exc
    return _page(request, "symbol", symbol, symbol=symbol, intervals=CANDLE_INTERVALS)


def history(request):
    return _page(request, "history", "Alert history")


def rules(request):
    return _page(request, "rules", "Rules")


def feed(request):
    return _page(request, "feed", "Feed health")
