"""The admin: login lockout by username and by IP address (django-axes), and rule input that once raised
(huge integers, rule types the API refuses) answered with a form error naming the field."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from apps.alerts.models import AlertRule
from apps.alerts.services import rules_builtin_seed

pytestmark = pytest.mark.django_db
PASSWORD = "the-right-password-123"
LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture
def admins():
    User = get_user_model()
    return [User.objects.create_superuser(f"admin{n}", f"admin{n}@example.com", PASSWORD) for n in range(2)]


def login(username: str, password: str, ip: str) -> int:
    response = Client(REMOTE_ADDR=ip).post(LOGIN, {"username": username, "password": password})
    return response.status_code


def signed_in(username: str, ip: str) -> bool:
    client = Client(REMOTE_ADDR=ip)
    client.post(LOGIN, {"username": username, "password": PASSWORD})
    return client.get("/admin/").status_code == 200


def test_wrong_passwords_for_one_user_lock_that_user_out_from_every_address(admins, settings):
    limit = settings.AXES_FAILURE_LIMIT
    codes = [login("admin0", "wrong", f"10.0.1.{n}") for n in range(limit)]
    assert codes[:-1] == [200] * (limit - 1)  # the form again, with its error
    assert codes[-1] == 429
    assert login("admin0", PASSWORD, "10.0.2.1") == 429  # the right password, from a new address: still locked
    assert not signed_in("admin0", "10.0.2.2")
    assert signed_in("admin1", "10.0.2.3")  # other users are unaffected


def test_wrong_passwords_from_one_address_lock_that_address_out_for_every_user(admins, settings):
    limit = settings.AXES_FAILURE_LIMIT
    for n in range(limit):
        login(f"nobody{n}", "wrong", "10.0.3.1")
    assert login("admin1", PASSWORD, "10.0.3.1") == 429
    assert not signed_in("admin1", "10.0.3.1")
    assert signed_in("admin1", "10.0.3.2")


def test_sixty_wrong_passwords_then_the_right_one_is_refused(admins):
    codes = {login("admin0", f"guess{n}", "10.0.4.1") for n in range(60)}
    assert 429 in codes and 302 not in codes
    assert login("admin0", PASSWORD, "10.0.4.1") == 429


def test_a_success_before_the_limit_resets_the_count(admins, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        login("admin0", "wrong", "10.0.5.1")
    assert signed_in("admin0", "10.0.5.1")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login("admin0", "wrong", "10.0.5.1") == 200


# --- rule input -------------------------------------------------------------------------------------------


def rule_form(**changes) -> dict:
    data = {
        "rule_type": "my_rule",
        "name": "Mine",
        "description": "",
        "category": "bull",
        "timeframe": "1h",
        "enabled": "on",
        "cooldown_minutes": 5,
        "parameters": json.dumps({"x": 1.5}),
        "conditions": "change_1h > x",
    }
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"conditions": "change_1h > " + "9" * 400}, "conditions", "finite number"),
        ({"conditions": "change_1h > 1e308 * 10"}, "conditions", "finite number"),
        ({"parameters": '{"x": ' + "9" * 400 + "}"}, "parameters", "finite number"),
        ({"parameters": '{"x": -' + "9" * 400 + "}"}, "parameters", "finite number"),
        ({"parameters": "[" * 1000 + "]" * 1000}, "parameters", ""),
        ({"rule_type": "UPPER"}, "rule_type", "lowercase"),
        ({"rule_type": "big-bull"}, "rule_type", "lowercase"),
        ({"cooldown_minutes": "9" * 400}, "cooldown_minutes", ""),
    ],
)
def test_rule_input_is_refused_naming_the_field(admin_client, changes, field, fragment):
    rules_builtin_seed()
    response = admin_client.post(reverse("admin:alerts_alertrule_add"), rule_form(**changes))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors and fragment in " ".join(errors[field])
    assert not AlertRule.objects.filter(name="Mine").exists()
    assert admin_client.get(reverse("admin:alerts_alertrule_changelist")).status_code == 200
    saved = admin_client.post(reverse("admin:alerts_alertrule_add"), rule_form())
    assert saved.status_code == 302 and AlertRule.objects.filter(rule_type="my_rule").exists()


def test_a_rule_type_the_admin_accepts_is_one_the_api_accepts(admin_client):
    admin_client.post(reverse("admin:alerts_alertrule_add"), rule_form(rule_type="my_rule_2"))
    assert Client().get("/api/alerts?type=my_rule_2").status_code == 200


@pytest.mark.parametrize(
    ("path", "data", "field"),
    [
        (
            "/admin/notifications/destination/add/",
            {"name": "x", "kind": "webhook", "url": "https://93.184.216.34/", "secret": "s" * 32},
            "symbols",
        ),
        ("/admin/alerts/usersettings/add/", {"user_id": "u-deep", "webhook_url": ""}, "selected_alerts"),
    ],
)
@pytest.mark.parametrize("value", ["[" * 1000 + "]" * 1000, '["\\ud800"]', '["a\\u0000"]'])
def test_json_fields_refuse_deep_or_unstorable_json(admin_client, path, data, field, value):
    body = {"rule_types": "[]", "symbols": "[]", "excluded_rule_types": "[]", "selected_alerts": "[]"}
    body.update(data)
    body[field] = value
    response = admin_client.post(path, body)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert admin_client.get("/admin/").status_code == 200


def test_wrong_passwords_at_the_web_client_login_do_not_lock_the_admin(admins, settings):
    # The web client's login has limits of its own; its failures must not let anyone lock an operator out.
    web_login = "/" + settings.COMPAT_PREFIX + "/auth/login"
    codes = [
        Client(REMOTE_ADDR=f"10.0.6.{n}").post(
            web_login, {"email": "admin0@example.com", "password": "wrong"}, content_type="application/json"
        )
        for n in range(settings.AXES_FAILURE_LIMIT + 2)
    ]
    assert {response.status_code for response in codes} == {401}
    assert all("error" in response.json() for response in codes)
    assert signed_in("admin0", "10.0.6.200")
