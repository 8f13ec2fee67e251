"""A bounded schemathesis run over the OpenAPI document (/api/... and the compatibility surface): generated valid and
invalid requests against the real views (WSGI, in-process, real PostgreSQL and Redis), each answer checked for no
server error, a documented status code and content type, and a body matching the schema.

Signed in on both surfaces, so the protected operations are exercised beyond their 401. A few examples per
operation keep the run short; the figures are printed at the end.
"""

from __future__ import annotations

import collections

import pytest
import schemathesis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import checks
from schemathesis.generation.modes import GenerationMode

from apps.alerts.services import rules_builtin_seed
from apps.api.compat.tokens import compat_token_issue
from tests.api.conftest import make_token

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
EXAMPLES = 12


@pytest.fixture
def wsgi_in_test_transaction():
    """As Django's test client does: a request's end must not close the connection holding the test transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(db, settings, wsgi_in_test_transaction):
    settings.ANON_RATE_LIMIT = settings.USER_RATE_LIMIT = settings.COMPAT_USER_RATE_LIMIT = "1000000/minute"
    settings.COMPAT_LOGIN_RATE_LIMIT = settings.COMPAT_WEBHOOK_TEST_RATE_LIMIT = "1000000/minute"
    settings.NOTIFICATIONS_CONNECT_TIMEOUT = settings.NOTIFICATIONS_READ_TIMEOUT = 0.2
    rules_builtin_seed()
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@pytest.fixture
def headers_for(db):
    user = get_user_model().objects.create_user("fuzz@example.com", "fuzz@example.com", "pw-long-enough-123")
    compat = f"Bearer {compat_token_issue(user)}"
    supabase = f"Bearer {make_token(sub='fuzz-user')}"

    def pick(path: str) -> dict[str, str]:
        # identity: the in-process WSGI transport does not undo the gzip some views answer with.
        token = compat if path.startswith(f"/{settings.COMPAT_PREFIX}/") else supabase
        return {"Authorization": token, "Accept-Encoding": "identity"}

    return pick


def _run_operation(operation, mode: GenerationMode, headers: dict[str, str], statuses: collections.Counter) -> None:
    @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        statuses[response.status_code] += 1

    run()


# The operations in thirds, one test each, so that parallel test workers share the run.
PARTS = 3


@pytest.mark.parametrize("part", range(PARTS))
def test_no_server_errors_and_answers_match_the_schema(api_schema, headers_for, part):
    statuses: collections.Counter[int] = collections.Counter()
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()][part::PARTS]
    assert len(operations) >= 10
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _run_operation(operation, mode, headers_for(operation.path), statuses)
            except Unsatisfiable:
                continue  # an operation without parameters or body has no invalid input to generate
            except (Exception, BaseExceptionGroup) as exc:  # every operation is tried; failures reported together
                failures.append(f"{operation.label} [{mode}]: {str(exc)[:1500]}")
    server_errors = sum(n for code, n in statuses.items() if code >= 500)
    print(
        f"schemathesis part {part + 1}/{PARTS}: {len(operations)} operations, {sum(statuses.values())} requests, "
        f"statuses {dict(sorted(statuses.items()))}, server errors {server_errors}, failures {len(failures)}"
    )
    assert not failures, "\n\n".join(failures)
    assert server_errors == 0
