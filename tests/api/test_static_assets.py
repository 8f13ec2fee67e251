"""The API docs and the admin render from this installation alone (no CDN, no separate static server)."""

from __future__ import annotations

import re

import pytest


@pytest.mark.django_db
def test_api_docs_reference_only_local_assets_and_they_are_served(client):
    page = client.get("/api/docs/", HTTP_HOST="localhost")
    assert page.status_code == 200
    assets = re.findall(r'(?:href|src)="([^"]+)"', page.content.decode())
    assert assets and all(a.startswith("/static/") for a in assets if a.endswith((".css", ".js", ".png")))
    for asset in assets:
        if asset.startswith("/static/"):
            assert client.get(asset, HTTP_HOST="localhost").status_code == 200, asset


def test_admin_stylesheet_is_served(client):
    assert client.get("/static/admin/css/base.css", HTTP_HOST="localhost").status_code == 200
