from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def builtin_rules(request):
    """The seeded rules, restored for tests whose database is flushed between tests (transaction=True)."""
    if not request.node.get_closest_marker("django_db"):
        return
    request.getfixturevalue("db")
    from apps.alerts.services import rules_builtin_seed

    rules_builtin_seed()
