"""Issue 18's Done-when end to end: headless Chromium, a real ``gpuplan app`` with sign-in and roles, a real local
OpenID Connect provider and a real PostgreSQL server.

One app (sign-in settings from the environment, a roles file naming a finance user, an engineer of one Helios team
and a platform group; ``GPUPLAN_STORE=postgresql://...`` on a throw-away server from :mod:`tests.pg_server`):

- 8 platform users (8 browser contexts) fill the Scenarios page's save form, then all 8 "Save scenario" clicks are
  dispatched back to back (well under a second); all 8 pages show success, and the PostgreSQL store holds the 8
  scenarios and 8 'save' audit rows, each with its user's e-mail;
- the engineer and the finance user open every page and every Budgets tab: the engineer's text (tables read through
  the grid's accessible cells) and every download's bytes name their team and no other; finance's name several
  teams; the organisation totals (Overview spend, Budgets bill) are the same for both and equal the core's number;
- a second app on the synthetic sample (which ships budgets, units and policy files) does the same for every
  Budgets & chargeback tab and download (alerts.json, chargeback.csv, unit_costs.csv, report.html);
- with no settings at all (no store, no sign-in; HOME a new folder) the app saves a scenario into the DuckDB file
  ``~/.gpuplan/scenarios.duckdb``.

Team names are the Helios sample's (``vc3sl``, ``vcJLV``, ...): none is part of another or of any word the app
writes (checked below), so a plain substring search finds every leak.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.auth import ENV
from tests import pg_server
from tests.chromium import needs_chromium
from tests.test_auth_browser import (
    ROOT,
    TIMEOUT_MS,
    free_port,
    open_app,
    settle,
    sign_in,
    spend,
    stop,
    wait_healthy,
)

pytest.importorskip("oidc_provider_mock", reason="needs the dev extra oidc-provider-mock (pip install -e .[dev])")
pytest.importorskip("playwright", reason="needs the dev extra playwright")
pytest.importorskip("psycopg", reason="needs psycopg (the postgres extra) for the PostgreSQL store")
pytestmark = [
    pytest.mark.slow,
    needs_chromium,
    pytest.mark.skipif(pg_server.missing_reason() is not None, reason=str(pg_server.missing_reason())),
]

MINE = "vc3sl"
SYNTHETIC_MINE = "llm-finetune"
ENGINEER, FINANCE = "eve.engineer@example.com", "fay.finance@example.com"
PLATFORM_GROUP = "gpu-platform"
PLATFORM_USERS = [f"plat{i}@example.com" for i in range(8)]
ROLES = f"""\
users:
  {FINANCE}: finance
  {ENGINEER}: {{role: engineer, teams: [{MINE}, {SYNTHETIC_MINE}]}}
groups:
  {PLATFORM_GROUP}: platform
"""
PAGES = {"Overview": "", "Forecast": "/forecast", "Plan": "/plan", "What-if": "/whatif", "Scenarios": "/scenarios",
         "Budgets & chargeback": "/budgets"}
HOURS = 168


def helios_teams() -> list[str]:
    from forecasting.samples import load_sample
    from usage import schema as S

    return sorted(load_sample("helios")[S.TEAM].unique())


TEAMS = helios_teams()
OTHERS = [t for t in TEAMS if t != MINE]


def test_team_names_cannot_be_part_of_other_words() -> None:
    """A substring search for a team name finds only that team: no name is in another, nor in the app's code."""
    assert MINE in TEAMS and len(TEAMS) == 16
    assert not [(a, b) for a in TEAMS for b in TEAMS if a != b and a in b]
    code = "".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "app").rglob("*.py")))
    assert not [t for t in TEAMS if t in code]


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    with pg_server.running_server() as server:
        yield server.new_database()


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    import oidc_provider_mock

    with oidc_provider_mock.run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


def run_app(tmp: Path, env: dict[str, str], port: int | None = None,
            sample: str = "helios") -> tuple[str, subprocess.Popen, Path]:
    """Start ``gpuplan app`` in ``tmp`` with ``env`` and ``sample``'s last week; (url, process, log)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp / "server.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "app", "--port", str(port)], cwd=tmp,
                                env={**env, "PYTHONPATH": str(ROOT), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
                                     "GPUPLAN_DEFAULT_SAMPLE": sample, "GPUPLAN_DEFAULT_HOURS": str(HOURS)},
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    return url, proc, log


@pytest.fixture(scope="module")
def app(provider: str, pg: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``gpuplan app``: sign-in from the environment, the roles file, the PostgreSQL store, the Helios sample."""
    yield from signed_in_app(provider, pg, tmp_path_factory.mktemp("org_app"), "helios")


@pytest.fixture(scope="module")
def synthetic_app(provider: str, pg: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same with the synthetic sample (it ships budgets, units and policy files: every Budgets tab has data)."""
    yield from signed_in_app(provider, pg, tmp_path_factory.mktemp("org_synthetic"), "synthetic")


def signed_in_app(provider: str, pg: str, tmp: Path, sample: str) -> Iterator[str]:
    (tmp / "roles.yaml").write_text(ROLES, encoding="utf-8")
    port = free_port()
    settings = {"redirect_uri": f"http://127.0.0.1:{port}/oauth2callback", "cookie_secret": secrets.token_hex(32),
                "client_id": "gpuplan", "client_secret": secrets.token_hex(16),
                "server_metadata_url": f"{provider}/.well-known/openid-configuration"}
    env = {**os.environ, "GPUPLAN_STORE": pg, "GPUPLAN_ROLES": str(tmp / "roles.yaml"),
           **{ENV[k]: v for k, v in settings.items()}}
    url, proc, log = run_app(tmp, env, port, sample)
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        stop(proc)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def signed_in(browser, url: str, email: str, groups: list[str]):
    page = browser.new_context(viewport={"width": 1600, "height": 1400}, accept_downloads=True).new_page()
    open_app(page, url)
    sign_in(page, email, groups)
    return page


def goto(page, url: str) -> None:
    open_app(page, url)
    page.get_by_test_id("stSidebar").get_by_text("Signed in as", exact=False).first.wait_for(timeout=TIMEOUT_MS)
    settle(page)


def shown_text(page) -> str:
    """Everything the page holds as text, hidden tabs and closed expanders included, plus the table cells the
    data grids expose to assistive technology (their canvas is not text)."""
    text = page.get_by_test_id("stApp").text_content(timeout=TIMEOUT_MS) or ""
    cells = page.locator('[data-testid="stDataFrame"] [role="gridcell"], [data-testid="stDataFrame"] th')
    return text + "\n" + "\n".join(cells.all_text_contents())


def downloads(page) -> dict[str, bytes]:
    """Click every visible download button on the page; each file's bytes by file name."""
    files: dict[str, bytes] = {}
    closed = page.locator('[data-testid="stExpander"] details:not([open]) > summary')
    while closed.count() and closed.first.is_visible():  # open every closed expander: its buttons become visible
        closed.first.click()
    buttons = page.get_by_test_id("stDownloadButton")
    for i in range(buttons.count()):
        button = buttons.nth(i)
        if not button.is_visible():
            continue
        with page.expect_download(timeout=TIMEOUT_MS) as info:
            button.get_by_role("button").click()
        download = info.value
        files[download.suggested_filename] = Path(download.path()).read_bytes()
        settle(page)
    return files


def visit(page, url: str) -> dict[str, tuple[str, dict[str, bytes]]]:
    """Every page (and Budgets tab): its text and downloads, by page (and tab) name."""
    seen: dict[str, tuple[str, dict[str, bytes]]] = {}
    for name, path in PAGES.items():
        goto(page, url + path)
        tabs = page.get_by_test_id("stMain").get_by_role("tab")
        labels = tabs.all_inner_texts() or [""]
        for i, label in enumerate(labels):
            if label:
                tabs.nth(i).click()
                settle(page)
            seen[f"{name} / {label}".rstrip(" /")] = (shown_text(page), downloads(page))
    return seen


def teams_in(data: str | bytes) -> set[str]:
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    return {t for t in TEAMS if t in text}


def metric(page, label: str) -> str:
    m = page.get_by_test_id("stMetric").filter(
        has=page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)).first
    return m.get_by_test_id("stMetricValue").inner_text(timeout=TIMEOUT_MS).strip()


def test_8_platform_users_saving_at_once_to_postgresql_all_succeed_and_are_audited(app: str, pg: str,
                                                                                   browser) -> None:
    from app.store import open_store

    pages = [signed_in(browser, app, user, [PLATFORM_GROUP]) for user in PLATFORM_USERS]
    for i, (page, user) in enumerate(zip(pages, PLATFORM_USERS, strict=True)):
        goto(page, app + "/scenarios")
        page.get_by_role("textbox", name="Scenario name").fill(f"plan of {user}")
        note = page.get_by_role("textbox", name="Note (optional)")
        note.fill(f"asked by {TEAMS[i * 2]}")  # vc3sl (TEAMS[0]) and 7 other teams
    # every page clicks its "Save scenario" button at the same wall-clock instant (one machine, one clock)
    buttons = [page.get_by_role("button", name="Save scenario").element_handle() for page in pages]
    at_ms = time.time() * 1000 + 3000
    for button in buttons:
        button.evaluate("(b, at) => setTimeout(() => { window.clickedAt = Date.now(); b.click(); }, at - Date.now())",
                        at_ms)
    time.sleep(3.5)
    clicked = [page.evaluate("window.clickedAt") for page in pages]
    assert None not in clicked and max(clicked) - min(clicked) < 1000, clicked  # the 8 saves are in flight at once
    for page, user in zip(pages, PLATFORM_USERS, strict=True):
        page.get_by_test_id("stAlert").get_by_text(f"Saved scenario 'plan of {user}'").wait_for(timeout=TIMEOUT_MS)
    for page in pages:
        page.context.close()

    store = open_store(pg)
    assert sorted(store.names()) == sorted(f"plan of {u}" for u in PLATFORM_USERS)
    log = store.audit(None)
    saves = log[(log["action"] == "save") & (log["object_kind"] == "scenario")]
    assert sorted(zip(saves["actor"], saves["object_name"], strict=True)) == sorted(
        (u, f"plan of {u}") for u in PLATFORM_USERS)


def saved_scenarios_of_the_platform_users(pg: str) -> None:
    """The 8 platform users' scenarios in the store, as the concurrent-save test leaves them (saved here when that test
    did not run first, e.g. with ``-k``): "plan of <user>", note "asked by <team>" (vc3sl and 7 other teams)."""
    from app.store import open_store
    from tests.test_store import flat_plan

    store = open_store(pg)
    have = set(store.names())
    for i, user in enumerate(PLATFORM_USERS):
        if f"plan of {user}" not in have:
            store.save(f"plan of {user}", {"sample": "helios"}, flat_plan(), note=f"asked by {TEAMS[i * 2]}",
                       actor=user)


def test_engineer_sees_only_their_team_finance_all_and_both_the_same_totals(app: str, pg: str, browser) -> None:
    from app import forecast_state as FS

    saved_scenarios_of_the_platform_users(pg)
    engineer = signed_in(browser, app, ENGINEER, ["engineering"])
    finance = signed_in(browser, app, FINANCE, ["staff"])
    eng, fin = visit(engineer, app), visit(finance, app)
    assert set(eng) == set(fin) and len(eng) == len(PAGES) - 1 + 7, sorted(eng)  # 7 Budgets tabs

    for where, (text, files) in eng.items():
        assert teams_in(text) == {MINE}, (where, teams_in(text))
        for file, data in files.items():
            assert teams_in(data) <= {MINE}, (where, file, teams_in(data))
    eng_files = {f: d for _, files in eng.values() for f, d in files.items()}
    assert {"forecast_helios_168h.csv", "forecast.csv", "plan_summary.html", "chargeback.csv"} <= set(eng_files), \
        sorted(eng_files)
    assert sum(MINE in d.decode("utf-8", "replace") for d in eng_files.values()) >= 3, sorted(eng_files)

    fin_files = {f: d for _, files in fin.values() for f, d in files.items()}
    assert set(fin_files) >= set(eng_files)
    for file in ("chargeback.csv", "forecast.csv"):
        assert len(teams_in(fin_files[file])) >= 5, (file, teams_in(fin_files[file]))
    fin_seen = {where: teams_in(text) for where, (text, _) in fin.items()}
    assert set().union(*fin_seen.values(), *map(teams_in, fin_files.values())) == set(TEAMS), fin_seen
    assert sum(len(teams) >= 2 for teams in fin_seen.values()) >= 3, fin_seen  # pages naming several teams
    # the engineer sees the saved scenarios of their team only (names or notes naming others are dropped)
    assert "asked by vc3sl" in eng["Scenarios"][0] and "asked by vc3sl" in fin["Scenarios"][0]
    assert len(re.findall(r"plan of plat\d@example\.com", fin["Scenarios"][0])) >= 8

    # the same organisation totals for both, the core's number
    goto(engineer, app)
    goto(finance, app)
    org = FS.cached_overview(FS.OverviewSettings(sample="helios", weeks=8, dimension="team"))
    assert spend(engineer) == spend(finance) == f"{org.spend_usd:,.0f} USD"
    goto(engineer, app + "/budgets")
    goto(finance, app + "/budgets")
    for page in (engineer, finance):
        page.get_by_test_id("stMain").get_by_role("tab", name="Chargeback").click()
        settle(page)
    assert metric(engineer, "Bill (USD)") == metric(finance, "Bill (USD)")


def test_with_no_settings_the_app_saves_to_the_duckdb_file_in_home(tmp_path: Path, browser) -> None:
    from app.store import open_store

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GPUPLAN_") and not k.startswith("STREAMLIT_")} | {"HOME": str(home)}
    url, proc, log = run_app(tmp_path, env)
    try:
        wait_healthy(url, proc, log)
        page = browser.new_context().new_page()
        open_app(page, url + "/scenarios")
        assert "Local use (sign-in off)" in page.get_by_test_id("stSidebar").inner_text()
        page.get_by_role("textbox", name="Scenario name").fill("local one")
        page.get_by_role("button", name="Save scenario").click()
        page.get_by_test_id("stAlert").get_by_text("Saved scenario 'local one'").wait_for(timeout=TIMEOUT_MS)
        page.context.close()
    finally:
        stop(proc)
    assert "127.0.0.1" in log.read_text() or "localhost" in log.read_text()
    file = home / ".gpuplan" / "scenarios.duckdb"
    assert file.exists()
    assert open_store(file).names() == ["local one"]


def test_on_the_synthetic_sample_every_budgets_tab_and_download_shows_the_engineer_only_their_team(
        synthetic_app: str, browser) -> None:
    """Budgets & chargeback with budgets, units and policy files: alerts, chargeback, idle, unit costs, guardrails
    and the cost review report. Leaks are searched for with the synthetic teams whose names the app's code does not
    use as examples (e.g. 'speech' is in help texts)."""
    from forecasting.samples import load_sample
    from usage import schema as S

    teams = sorted(load_sample("synthetic")[S.TEAM].unique())
    code = "".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "app").rglob("*.py")))
    others = [t for t in teams if t != SYNTHETIC_MINE and t not in code]
    assert len(others) >= 15 and not [(a, b) for a in teams for b in teams if a != b and a in b]

    engineer = signed_in(browser, synthetic_app, ENGINEER, ["engineering"])
    finance = signed_in(browser, synthetic_app, FINANCE, ["staff"])
    seen = {}
    for who, page in (("engineer", engineer), ("finance", finance)):
        goto(page, synthetic_app + "/budgets")
        tabs = page.get_by_test_id("stMain").get_by_role("tab")
        for i, label in enumerate(tabs.all_inner_texts()):
            tabs.nth(i).click()
            settle(page)
            seen[who, label] = (shown_text(page), downloads(page))
    eng_files: dict[str, bytes] = {}
    for (who, label), (text, files) in seen.items():
        if who != "engineer":
            continue
        leaked = [t for t in others if t in text]
        assert SYNTHETIC_MINE in text and not leaked, (label, leaked)
        for file, data in files.items():
            body = data.decode("utf-8", "replace")
            assert not [t for t in others if t in body], (label, file, [t for t in others if t in body])
        eng_files.update(files)
    assert {"alerts.json", "chargeback.csv", "unit_costs.csv", "report.html"} <= set(eng_files), sorted(eng_files)
    fin_files = {f: d for (who, _), (_, files) in seen.items() if who == "finance" for f, d in files.items()}
    assert set(fin_files) >= set(eng_files)
    assert len([t for t in others if t in fin_files["chargeback.csv"].decode()]) >= 10
