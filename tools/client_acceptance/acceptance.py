"""Drive the existing web client (a checkout of its repository) against a running screener, in headless Chromium.

    python tools/client_acceptance/acceptance.py --client /path/to/screener-frontend --api http://127.0.0.1:8000 \
        --email you@example.com --password '...' --screener-log /path/to/run.log --shots /tmp/shots

It builds the client against --api (VITE_BACKEND_API_URL, VITE_BACKEND_WS_URL, VITE_USE_BACKEND_API=true), serves it
with `npx vite preview`, then walks through the trader's screens and flows, saving a screenshot of each, and prints
one line per check. It exits non-zero when a check fails. Nothing of the client is kept in this repository.
See README.md beside this file for the set-up it expects (a user, an invite, the screener's console email log).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

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
PREFIX = "/compat/pulsaryx"
INTERVALS = ["1m", "5m", "15m", "1h", "4h", "1D"]


@dataclass
class Report:
    shots: Path
    rows: list[tuple[str, str, bool, str]] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)

    def check(self, screen: str, what: str, ok: bool, shot: str = "") -> bool:
        self.rows.append((screen, what, ok, shot))
        print(f"{'PASS' if ok else 'FAIL'}  {screen}: {what}" + (f"  [{shot}]" if shot else ""), flush=True)
        return ok

    def shot(self, page: Page, name: str) -> str:
        path = self.shots / f"{len(self.rows):02d}-{name}.png"
        page.screenshot(path=str(path))
        return str(path)


# --- Helpers ------------------------------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        _Receiver.received.append(self.rfile.read(length))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        """Quiet: the walk prints its own lines."""


def receiver_start(port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# Playwright's sync API delivers events (WebSocket frames, responses) only while one of its calls runs: waits go
# through the page's own timer once a page exists.
_pause = time.sleep


def wait_until(condition, *, timeout: float, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        _pause(step)
    return condition()


def api(base: str, path: str, *, token: str | None = None, body: dict | None = None, method: str | None = None):
    request = urllib.request.Request(
        base + PREFIX + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method or ("POST" if body is not None else "GET"),
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback only
        return json.loads(response.read() or b"null")


def build(client: Path, api_base: str, *, skip: bool) -> None:
    if skip and (client / "dist" / "index.html").exists():
        return
    ws_base = api_base.replace("http://", "ws://").replace("https://", "wss://")
    env = {
        **os.environ,
        "VITE_BACKEND_API_URL": api_base + PREFIX,
        "VITE_BACKEND_WS_URL": ws_base + PREFIX + "/ws/alerts",
        "VITE_USE_BACKEND_API": "true",
    }
    if not (client / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=client, env=env, check=True)
    subprocess.run(["npm", "run", "build"], cwd=client, env=env, check=True)


def serve(client: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        ["npx", "vite", "preview", "--host", "127.0.0.1", "--port", str(port), "--strictPort"],
        cwd=client,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def up() -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)  # noqa: S310
            return True
        except OSError:
            return False

    if not wait_until(up, timeout=60):
        os.killpg(process.pid, signal.SIGTERM)
        raise SystemExit("vite preview did not come up")
    return process


def reset_link_from_log(log: Path, email: str, since: int) -> str | None:
    text = log.read_text(errors="replace")[since:]
    links = re.findall(r"https?://\S+/reset-password\?token=[A-Za-z0-9._-]+", text.replace("=\n", ""))
    return links[-1] if links and email in text else None


def toggle_of(page: Page, text: str):
    """The checkbox of the card (a rule or a webhook) whose label reads `text`."""
    card = page.locator("div", has=page.get_by_text(text, exact=True)).filter(has=page.locator("input[type=checkbox]"))
    return card.last.locator("input[type=checkbox]").first


# --- The walk -------------------------------------------------------------------------------------------------


def login(page: Page, base: str, email: str, password: str) -> None:
    page.goto(base + "/login")
    page.fill("input[type=email]", email)
    page.fill("input[type=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/app.*"), timeout=20_000)


def market_rows(page: Page) -> int:
    return page.locator("text=/USDT|\\$/").count()


def open_settings(page: Page, tab: str) -> None:
    page.get_by_label("Open settings").first.click()
    page.get_by_role("button", name=re.compile(tab)).first.click()


def close_settings(page: Page) -> None:
    page.get_by_label("Close settings").first.click()


def run(args: argparse.Namespace) -> int:
    shots = Path(args.shots)
    shots.mkdir(parents=True, exist_ok=True)
    report = Report(shots)
    client = Path(args.client).resolve()
    build(client, args.api, skip=args.skip_build)
    preview = serve(client, args.port)
    receiver = receiver_start(args.receiver_port)
    base = f"http://127.0.0.1:{args.port}"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            context = browser.new_context(viewport={"width": 1500, "height": 950})
            context.grant_permissions(["notifications"])
            page = context.new_page()
            global _pause
            _pause = lambda seconds: page.wait_for_timeout(seconds * 1000)  # noqa: E731
            page.on("dialog", lambda dialog: dialog.accept())  # confirm() of delete, alert() of a webhook test
            frames: list[str] = []
            page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload))))

            def on_response(response) -> None:
                if PREFIX in response.url and response.status >= 500 and "/test" not in response.url:
                    report.server_errors.append(f"{response.status} {response.request.method} {response.url}")

            page.on("response", on_response)
            cors_failures: list[str] = []
            page.on(
                "requestfailed",
                lambda r: cors_failures.append(f"{r.method} {r.url}: {r.failure}") if PREFIX in r.url else None,
            )

            # Login with a wrong password first: the server's reason must reach the user.
            page.goto(base + "/login")
            page.fill("input[type=email]", args.email)
            page.fill("input[type=password]", "wrong password")
            page.click("button[type=submit]")
            shown = wait_until(lambda: page.get_by_text("Invalid email or password").count() > 0, timeout=10)
            report.check(
                "login", "a wrong password shows the server's reason", bool(shown), report.shot(page, "login-wrong")
            )

            login(page, base, args.email, args.password)
            filled = wait_until(lambda: page.locator("text=/\\(\\d{2,}\\)/").count() > 0, timeout=60)
            count_text = page.get_by_text(re.compile(r"Market Coins")).first.inner_text()
            report.check(
                "market table", f"filled after login ({count_text.strip()})", bool(filled), report.shot(page, "table")
            )

            first_body = page.locator("table, [role=table], .overflow-y-auto").first.inner_text()[:4000]
            changed = wait_until(
                lambda: page.locator("table, [role=table], .overflow-y-auto").first.inner_text()[:4000] != first_body,
                timeout=90,
                step=2,
            )
            report.check("market table", "updates while watched", bool(changed), report.shot(page, "table-updated"))

            got_frame = wait_until(lambda: frames, timeout=args.alert_wait)
            report.check(
                "live alerts",
                f"{len(frames)} alert frames over the WebSocket",
                bool(got_frame),
                report.shot(page, "live-alerts"),
            )

            page.get_by_role("button", name=re.compile("Alert History")).first.click()
            history = wait_until(
                lambda: page.locator("text=/\\d+ ?(alerts?|×)|futures_|Surge|Scout|Raid/").count() > 0, timeout=30
            )
            tab = page.get_by_role("button", name=re.compile("Alert History")).first.inner_text()
            report.check(
                "alert history", f"non-empty offline ({tab.strip()})", bool(history), report.shot(page, "history")
            )

            # A coin's chart and its alert timeline at every interval.
            page.get_by_role("button", name=re.compile("Market Coins")).first.click()
            page.locator("tr, [data-index]").filter(has_text=re.compile("BTC|ETH")).first.click()
            for interval in INTERVALS:
                page.get_by_role("button", name=interval, exact=True).first.click()
                drawn = wait_until(lambda: page.locator("canvas").count() > 0, timeout=20)
                _pause(1.5)  # the chart debounces interval changes
                report.check("chart", f"{interval} drawn", bool(drawn), report.shot(page, f"chart-{interval}"))

            # Watchlist: star a coin, see it kept by the server, unstar it.
            star = page.locator("[aria-label='Add to watchlist'] >> visible=true").first
            star.click()
            token = page.evaluate("localStorage.getItem('auth_token')")
            added = wait_until(lambda: api(args.api, "/api/watchlist", token=token)["count"] > 0, timeout=10)
            page.reload()
            starred = wait_until(
                lambda: page.locator("[aria-label='Remove from watchlist'] >> visible=true").count() > 0, timeout=30
            )
            report.check(
                "watchlist",
                f"kept by the server as {api(args.api, '/api/watchlist', token=token)['symbols']}, starred on reload",
                bool(added and starred),
                report.shot(page, "watchlist-added"),
            )
            page.locator("[aria-label='Remove from watchlist'] >> visible=true").first.click()
            removed = wait_until(lambda: api(args.api, "/api/watchlist", token=token)["count"] == 0, timeout=10)
            report.check("watchlist", "remove", bool(removed), report.shot(page, "watchlist-removed"))

            # Rule switches: flip every one, reload, read them back.
            open_settings(page, "Alert Rules")
            wait_until(lambda: page.get_by_text("Synced with your account").count() > 0, timeout=15)
            before = {r["rule_type"]: r["enabled"] for r in api(args.api, "/api/alert-rules", token=token)["rules"]}
            boxes = page.locator("input[type=checkbox]")
            flipped = 0
            for name in args.rule_names.split(","):
                box = toggle_of(page, name)
                if box.count():
                    box.click(force=True)
                    flipped += 1
                    _pause(0.3)
            _pause(2)
            report.shot(page, "rules-flipped")
            page.reload()
            after = {r["rule_type"]: r["enabled"] for r in api(args.api, "/api/alert-rules", token=token)["rules"]}
            changed_rules = [k for k in before if before[k] != after.get(k)]
            open_settings(page, "Alert Rules")
            _pause(2)
            report.check(
                "rule switches",
                f"{flipped} flipped in the client, {len(changed_rules)} of {len(before)} kept by the server on reload",
                flipped > 0 and len(changed_rules) == flipped,
                report.shot(page, "rules-after-reload"),
            )
            del boxes

            # Webhooks: create, test, toggle, edit, delete, each surviving a reload.
            page.get_by_role("button", name=re.compile("Webhooks")).first.click()
            page.get_by_role("button", name=re.compile(r"\+ Add Webhook")).click()
            page.get_by_placeholder("My Discord Channel").fill("Desk")
            page.locator("select").first.select_option("http")
            page.locator("input[type=url]").fill(f"http://127.0.0.1:{args.receiver_port}/hook")
            page.get_by_role("button", name="Save").click()
            created = wait_until(lambda: page.get_by_text("Desk", exact=True).count() > 0, timeout=10)
            report.check("webhooks", "created", bool(created), report.shot(page, "webhook-created"))
            page.get_by_role("button", name="Test").first.click()
            tested = wait_until(lambda: _Receiver.received, timeout=15)
            report.check(
                "webhooks",
                f"test delivered ({len(_Receiver.received)} request)",
                bool(tested),
                report.shot(page, "webhook-tested"),
            )
            page.reload()
            open_settings(page, "Webhooks")
            listed = wait_until(lambda: page.get_by_text("Desk", exact=True).count() > 0, timeout=10)
            report.check("webhooks", "listed after reload", bool(listed), report.shot(page, "webhook-after-reload"))
            # Each change waits for the browser to have its answer before the reload, which would cut it short.
            with page.expect_response(lambda r: r.request.method == "PATCH" and "/api/webhooks/" in r.url):
                toggle_of(page, "Desk").click(force=True)
            off = wait_until(
                lambda: api(args.api, "/api/webhooks", token=token)["webhooks"][0]["is_enabled"] is False, timeout=10
            )
            page.reload()
            open_settings(page, "Webhooks")
            _pause(1.5)
            report.check(
                "webhooks",
                "toggled off, off after reload",
                bool(off) and not toggle_of(page, "Desk").is_checked(),
                report.shot(page, "webhook-toggled"),
            )
            page.get_by_role("button", name="Edit").first.click()
            page.get_by_placeholder("My Discord Channel").fill("Desk renamed")
            with page.expect_response(lambda r: r.request.method == "PUT" and "/api/webhooks/" in r.url):
                page.get_by_role("button", name="Save").click()
            wait_until(
                lambda: api(args.api, "/api/webhooks", token=token)["webhooks"][0]["name"] == "Desk renamed", timeout=10
            )
            page.reload()
            open_settings(page, "Webhooks")
            renamed = wait_until(lambda: page.get_by_text("Desk renamed", exact=True).count() > 0, timeout=10)
            report.check("webhooks", "edited, kept after reload", bool(renamed), report.shot(page, "webhook-edited"))
            with page.expect_response(lambda r: r.request.method == "DELETE" and "/api/webhooks/" in r.url):
                page.get_by_role("button", name="Delete").first.click()
            wait_until(lambda: api(args.api, "/api/webhooks", token=token)["count"] == 0, timeout=10)
            page.reload()
            open_settings(page, "Webhooks")
            gone = wait_until(lambda: page.get_by_text("No webhooks configured").count() > 0, timeout=10)
            report.check("webhooks", "deleted, gone after reload", bool(gone), report.shot(page, "webhook-deleted"))
            close_settings(page)

            # Reload keeps the session; logout and login again.
            page.reload()
            kept = wait_until(
                lambda: "/app" in page.url and page.get_by_text(re.compile("Market Coins")).count() > 0, timeout=20
            )
            report.check("session", "reload keeps the session", bool(kept), report.shot(page, "reload"))
            page.locator("button", has=page.locator(f"text={args.email[0].upper()}")).first.click()
            page.get_by_text("Sign Out").click()
            out = wait_until(lambda: page.evaluate("localStorage.getItem('auth_token')") is None, timeout=10)
            report.check("session", "logout", bool(out), report.shot(page, "logout"))
            login(page, base, args.email, args.password)
            report.check("session", "login again", "/app" in page.url, report.shot(page, "login-again"))

            # Sign-up with an invite, in a fresh context.
            fresh = browser.new_context(viewport={"width": 1300, "height": 900})
            signup = fresh.new_page()
            signup.goto(f"{base}/invite/{args.invite}")
            valid = wait_until(lambda: signup.get_by_text(re.compile("Valid invite")).count() > 0, timeout=15)
            report.check("invite", "the invite page validates the code", bool(valid), report.shot(signup, "invite"))
            new_email = f"invited-{int(time.time())}@example.com"
            signup.fill("input[type=email]", new_email)
            for box in signup.locator("input[type=password]").all():
                box.fill(args.new_password)
            for box in signup.locator("input[type=checkbox]").all():  # the terms
                box.check()
            signup.click("button[type=submit]")
            registered = wait_until(lambda: "/app" in signup.url, timeout=20)
            report.check(
                "sign-up", f"{new_email} signed up and signed in", bool(registered), report.shot(signup, "signed-up")
            )

            # Password reset through the console email.
            log_size = len(Path(args.screener_log).read_text(errors="replace")) if args.screener_log else 0
            reset = fresh.new_page()
            reset.goto(f"{base}/forgot-password")
            reset.fill("input[type=email]", new_email)
            reset.click("button[type=submit]")
            report.shot(reset, "forgot")
            link = (
                wait_until(lambda: reset_link_from_log(Path(args.screener_log), new_email, log_size), timeout=20)
                if args.screener_log
                else None
            )
            if report.check("password reset", "the console email carries a link", bool(link)):
                reset.goto(link.replace(re.match(r"https?://[^/]+", link).group(0), base))
                for box in reset.locator("input[type=password]").all():
                    box.fill(args.new_password + "!2")
                reset.click("button[type=submit]")
                wait_until(
                    lambda: reset.get_by_text(re.compile("success|updated|reset", re.IGNORECASE)).count() > 0,
                    timeout=10,
                )
                report.shot(reset, "reset-done")
                ok = api(args.api, "/auth/login", body={"email": new_email, "password": args.new_password + "!2"})
                report.check(
                    "password reset", "the new password signs in", bool(ok.get("token")), report.shot(reset, "reset")
                )
            fresh.close()

            report.check(
                "whole run",
                f"no 5xx from the compatibility surface ({report.server_errors[:3]})",
                not report.server_errors,
            )
            report.check("whole run", f"no failed requests ({cors_failures[:3]})", not cors_failures)
            browser.close()
    finally:
        receiver.shutdown()
        os.killpg(preview.pid, signal.SIGTERM)
    failed = [row for row in report.rows if not row[2]]
    print(f"\n{len(report.rows) - len(failed)}/{len(report.rows)} checks passed; screenshots in {shots}")
    (shots / "report.json").write_text(json.dumps(report.rows, indent=1))
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", required=True, help="a checkout of the web client's repository")
    parser.add_argument("--api", default="http://127.0.0.1:8000", help="the running screener's web address")
    parser.add_argument("--port", type=int, default=4173, help="port of `vite preview`")
    parser.add_argument("--receiver-port", type=int, default=4180, help="a local webhook receiver for the test")
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--invite", required=True, help="an unused invite code made in the admin")
    parser.add_argument("--new-password", default="a long new passphrase")
    parser.add_argument("--screener-log", help="the screener's console output (where the reset email is printed)")
    parser.add_argument("--shots", default="client-shots", help="where screenshots go")
    parser.add_argument("--alert-wait", type=float, default=240, help="seconds to wait for a live alert")
    parser.add_argument(
        "--rule-names",
        default="Knife Catcher,Whale Detector,Surge 60 Bull V2,Scout Bull,Top Raid",
        help="client rule names to flip",
    )
    parser.add_argument("--skip-build", action="store_true", help="reuse the client's dist/ when present")
    args = parser.parse_args()
    if not shutil.which("npx"):
        raise SystemExit("node and npx are needed to build and serve the client")
    sys.exit(run(args))


if __name__ == "__main__":
    main()
