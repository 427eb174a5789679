"""Sign-in end to end: headless Chromium, a real ``gpuplan app`` and a real local OpenID Connect provider.

The provider is ``oidc-provider-mock`` (a real OIDC server: discovery, authorization form, token endpoint, signed
ID tokens) run on a localhost port in this test process; nothing leaves the machine. The app gets its sign-in
settings through the environment route (``GPUPLAN_AUTH_*``), so the launcher's private secrets file is exercised
too. A finance user and an engineer sign in from two browser contexts (two people, separate cookies): each sees
their own name and groups in the sidebar and the same organisation spend on the Overview; an anonymous visitor
gets only the sign-in page, on every URL; signing out ends the session.

:func:`sign_in` is the reusable step: give the provider the user's claims (``email``, ``name``, ``groups``) and
go through the app's sign-in button and the provider's authorization form.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote, urlsplit

import pytest

from app.auth import ENV
from tests.chromium import free_port, needs_chromium

ROOT = Path(__file__).resolve().parents[1]
IDLE = '[data-test-script-state="notRunning"]'
TIMEOUT_MS = 120_000
ROLES = """\
users:
  ed@example.com: {role: engineer, teams: [vc3sl]}
groups:
  finance: finance
"""
"""The roles file: a signed-in user it does not name sees no data (app.roles), so both users have a role."""

pytest.importorskip("oidc_provider_mock", reason="needs the dev extra oidc-provider-mock (pip install -e .[dev])")
pytest.importorskip("playwright", reason="needs the dev extra playwright")
pytestmark = [
    pytest.mark.slow,
    needs_chromium,
]


class App(NamedTuple):
    url: str
    provider: str


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    """Wait until ``url``/_stcore/health answers 200; fail with the log's tail if the app exits or never does."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"gpuplan app did not start: {log.read_text()[-2000:]}")
        time.sleep(0.3)


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """A real OIDC provider on a localhost port (any client id and secret are accepted)."""
    import oidc_provider_mock

    with oidc_provider_mock.run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def app(provider: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """``gpuplan app`` on 127.0.0.1 with sign-in settings from the environment, a roles file (finance by group,
    the engineer by e-mail) and the Helios sample."""
    tmp = tmp_path_factory.mktemp("auth_app")
    roles = tmp / "roles.yaml"
    roles.write_text(ROLES, encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = {"redirect_uri": f"{url}/oauth2callback", "cookie_secret": secrets.token_hex(32),
                "client_id": "gpuplan", "client_secret": secrets.token_hex(16),
                "server_metadata_url": f"{provider}/.well-known/openid-configuration"}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
           "GPUPLAN_DEFAULT_SAMPLE": "helios", "GPUPLAN_DEFAULT_HOURS": "168",
           "GPUPLAN_STORE": str(tmp / "scenarios.duckdb"), "GPUPLAN_ROLES": str(roles),
           **{ENV[k]: v for k, v in settings.items()}}
    log = tmp / "server.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "app", "--port", str(port)], cwd=tmp, env=env,
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_healthy(url, proc, log)
            yield App(url, provider)
        finally:
            stop(proc)
    text = log.read_text()
    assert settings["cookie_secret"] not in text and settings["client_secret"] not in text  # never logged
    assert "(sign-in on, settings from the environment)" in text


def settle(page) -> None:
    """Wait until the script run finished and no spinner is left."""
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)
    page.get_by_test_id("stSpinner").first.wait_for(state="detached", timeout=TIMEOUT_MS)


def open_app(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector('[data-testid="stApp"]', timeout=TIMEOUT_MS)
    settle(page)


def sign_in(page, email: str, groups: list[str] | tuple[str, ...], *, name: str | None = None) -> None:
    """Sign ``email`` in on ``page``, which shows the app's sign-in page (open the app's URL first).

    The provider learns the user's claims first (``email``, ``name`` and the ``groups`` claim), then the app's
    "Sign in" button leads to the provider's authorization form, where the subject is typed and authorized; the
    provider redirects back to the app, which must then show the user's name in the sidebar.
    """
    name = name or email.split("@")[0]
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_placeholder("sub").wait_for(timeout=TIMEOUT_MS)  # the provider's authorization form
    parts = urlsplit(page.url)
    claims = json.dumps({"email": email, "name": name, "groups": list(groups)}).encode()
    request = urllib.request.Request(f"{parts.scheme}://{parts.netloc}/users/{quote(email)}", data=claims,
                                     method="PUT", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 204
    page.get_by_placeholder("sub").fill(email)
    page.get_by_role("button", name="Authorize").click()
    page.get_by_test_id("stSidebar").get_by_text(f"Signed in as {name}", exact=True).wait_for(timeout=TIMEOUT_MS)
    settle(page)


def sidebar_text(page) -> str:
    return page.get_by_test_id("stSidebar").inner_text(timeout=TIMEOUT_MS)


def spend(page) -> str:
    """The Overview's organisation spend as shown ("1,234,567 USD")."""
    metric = page.get_by_test_id("stMetric").filter(has=page.get_by_test_id("stMetricLabel").get_by_text(
        "Spend (USD)", exact=True)).first
    return metric.get_by_test_id("stMetricValue").inner_text(timeout=TIMEOUT_MS).strip()


def assert_sign_in_page_only(page) -> None:
    """The page shows the sign-in button and nothing of the planner: no navigation, metrics, tables or charts."""
    page.get_by_role("button", name="Sign in", exact=True).wait_for(timeout=TIMEOUT_MS)
    for test_id in ("stSidebarNav", "stMetric", "stDataFrame", "stVegaLiteChart", "stFileUploader"):
        assert page.get_by_test_id(test_id).count() == 0, test_id
    text = page.get_by_test_id("stMain").inner_text()
    assert "USD" not in text and "GPU-hours" not in text, text


def test_two_users_sign_in_see_the_same_totals_and_sign_out(app: App, browser) -> None:
    from app import forecast_state as FS

    org = FS.cached_overview(FS.OverviewSettings(sample="helios", weeks=8, dimension="team"))
    expected = f"{org.spend_usd:,.0f} USD"

    finance = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    engineer = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    open_app(finance, app.url)
    open_app(engineer, app.url)
    assert_sign_in_page_only(finance)

    sign_in(finance, "fiona@example.com", ["finance"], name="Fiona Finance")
    sign_in(engineer, "ed@example.com", ["engineering", "vc1"], name="Ed **Engineer** <b>x</b>")

    # each sees their own name (as plain text: the markdown and the tag are shown, not rendered) and groups
    assert "Signed in as Fiona Finance" in sidebar_text(finance) and "Groups: finance" in sidebar_text(finance)
    assert "Ed" not in sidebar_text(finance)
    ed = sidebar_text(engineer)
    assert "Signed in as Ed **Engineer** <b>x</b>" in ed and "Groups: engineering, vc1" in ed and "Fiona" not in ed
    # both see the same organisation total on the Overview, the number the core computes from the same sample
    assert spend(finance) == spend(engineer) == expected

    # an anonymous visitor (a third browser, no cookie) gets only the sign-in page, on any page's URL
    anonymous = browser.new_context().new_page()
    for path in ("", "/forecast", "/plan", "/whatif", "/scenarios", "/budgets"):
        open_app(anonymous, app.url + path)
        assert_sign_in_page_only(anonymous)

    # sign-out: through the provider's end-session form back to the app's sign-in page; the other user stays in
    engineer.get_by_test_id("stSidebar").get_by_role("button", name="Sign out").click()
    end = engineer.get_by_role("button", name="End session")
    end.wait_for(timeout=TIMEOUT_MS)
    end.click()
    engineer.wait_for_url(f"{app.url}/**", timeout=TIMEOUT_MS)
    engineer.wait_for_selector('[data-testid="stApp"]', timeout=TIMEOUT_MS)
    settle(engineer)
    assert_sign_in_page_only(engineer)
    open_app(engineer, app.url)  # a fresh load: the identity cookie is gone
    assert_sign_in_page_only(engineer)
    open_app(finance, app.url)
    assert spend(finance) == expected and "Signed in as Fiona Finance" in sidebar_text(finance)
