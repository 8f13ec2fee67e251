"""A real daphne serving the dashboard on a free port, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis as redis_lib
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.test import Client

from apps.api.bench import daphne_running
from screener_project.kernel.channels import ALERTS_GROUP
from tests.e2e.processes import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Screenshots of each page go here when set (outside the repository).
SHOTS_DIR = os.environ.get("DASHBOARD_SHOTS_DIR", "")


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker) -> Iterator[str]:
    """daphne on the test database and Redis prefix; yields its base URL."""
    database = settings.DATABASES["default"]["NAME"]
    env = {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
        "DJANGO_SETTINGS_MODULE": "screener_project.settings.test",
        # The pages poll faster than a person's tab would, to keep the tests short.
        "ANON_RATE_LIMIT": "6000/minute",
    }
    with daphne_running(port=free_port(), env=env) as address:
        yield f"http://{address}"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"The browser tests need Debian's Chromium at {CHROMIUM}: apt-get install -y chromium")

    # Playwright's sync API keeps an event loop running in this thread, which Django takes for async code and
    # refuses the ORM; the tests' own queries are plain synchronous ones.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield launched
            launched.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, server, request):
    """A fresh browser context (no storage) on the server; fails the test on any uncaught script error."""
    context = browser.new_context(base_url=server, viewport={"width": 1600, "height": 1000})
    opened = context.new_page()
    errors: list[str] = []
    opened.script_errors = errors  # a test expecting an error removes it
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    yield opened
    seen = list(errors)  # what the test saw; a screenshot may catch the page polling data already torn down
    if SHOTS_DIR and not opened.is_closed():
        Path(SHOTS_DIR).mkdir(parents=True, exist_ok=True)
        opened.screenshot(path=str(Path(SHOTS_DIR) / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert seen == [], seen


def staff_login(page, server: str, user) -> None:
    """Signs `user` in for the browser through a session made by Django's test client."""
    client = Client()
    client.force_login(user)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server}])


def publish(alert: dict) -> None:
    """Sends `alert` to the alerts group as the tick does; from a thread of its own, since Playwright's event loop
    runs in the test's thread."""
    send = async_to_sync(get_channel_layer().group_send)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(send, ALERTS_GROUP, {"type": "alert.message", "data": alert}).result()


def hub_subscribed(timeout: float = 10.0) -> None:
    """Waits until daphne's alert hub holds its Redis subscription (SUBSCRIBE is not acknowledged to clients)."""
    # channels_redis's pub/sub layer names a group's Redis channel "<prefix>__group__<group>".
    name = f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}__group__{ALERTS_GROUP}"
    client = redis_lib.Redis.from_url(settings.REDIS_URL)
    try:
        deadline = time.monotonic() + timeout
        while dict(client.pubsub_numsub(name)).get(name.encode(), 0) == 0:
            if time.monotonic() > deadline:
                raise AssertionError("the alert hub never subscribed")
            time.sleep(0.02)
    finally:
        client.close()
