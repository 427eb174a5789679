"""Roles on every page, through Streamlit's AppTest with a signed-in user (``AppTest.user``, read by ``st.user``).

An engineer of teams ``vc3sl`` (Helios sample) and ``llm-finetune`` (synthetic sample) opens every page and tab;
no other team's name may appear in any rendered element (tables, chart data, selectbox options, metric labels,
Markdown: every element's protobuf, which carries all of them) nor in the bytes of any download the page offers
(recorded where Streamlit stores them, :class:`streamlit.runtime.media_file_manager.MediaFileManager`). Finance,
leadership and the engineer see the same organisation totals; leadership and finance have no save or delete
button, platform has. Real app, real samples, a real DuckDB scenario store in a temporary folder; nothing in the
app is patched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from app import fmt, view
from app import forecast_state as FS
from app import operate_state as O
from app import roles as R
from app import state as A
from app import store as St
from app.app_pages import budgets
from forecasting.samples import load_sample
from usage import schema as S

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
PAGES = {"forecast": "app_pages/forecast.py", "plan": "app_pages/plan.py", "whatif": "app_pages/whatif.py"}
ENGINEER, FINANCE, LEADERSHIP, PLATFORM = ("eng@example.com", "fin@example.com", "lead@example.com",
                                           "plat@example.com")
MINE = {"vc3sl", "llm-finetune"}
ROLES = f"""\
users:
  {FINANCE}: finance
  {LEADERSHIP}: leadership
  {ENGINEER}: {{role: engineer, teams: [vc3sl, llm-finetune]}}
groups:
  gpu-platform: platform
"""
HELIOS = sorted(load_sample("helios")[S.TEAM].unique())
SYNTHETIC = sorted(load_sample("synthetic")[S.TEAM].unique())


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    roles = tmp_path / "roles.yaml"
    roles.write_text(ROLES, encoding="utf-8")
    monkeypatch.setenv("GPUPLAN_ROLES", str(roles))
    monkeypatch.setenv("GPUPLAN_STORE", str(tmp_path / "scenarios.duckdb"))
    monkeypatch.setenv(A.DEFAULT_SAMPLE_ENV, "helios")
    monkeypatch.setenv(A.DEFAULT_HOURS_ENV, "168")
    return tmp_path


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, bytes]]]:
    """Every download's (file name, bytes) as the page hands it to Streamlit."""
    seen: list[tuple[str, bytes]] = []
    original = MediaFileManager.add

    def add(self, path_or_data, mimetype, coordinates, file_name=None, is_for_static_download=False):
        data = path_or_data.encode("utf-8") if isinstance(path_or_data, str) else bytes(path_or_data)
        if is_for_static_download:
            seen.append((str(file_name), data))
        return original(self, path_or_data, mimetype, coordinates, file_name, is_for_static_download)

    monkeypatch.setattr(MediaFileManager, "add", add)
    yield seen


AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "test-only-cookie-secret",
        "client_id": "gpuplan", "client_secret": "test-only", "server_metadata_url":
        "http://127.0.0.1:9/.well-known/openid-configuration"}
"""An ``[auth]`` section as a deployment has one (never contacted: ``st.login`` is not called)."""


def sign_in_on(at: AppTest) -> AppTest:
    """Sign-in configured: the ``[auth]`` secrets section Streamlit (and the sign-in gate) look for."""
    at.secrets["auth"] = dict(AUTH)
    return at


def signed_in(at: AppTest, email: str, groups: tuple[str, ...] = ()) -> AppTest:
    at.user = {"is_logged_in": True, "email": email, "name": email.split("@")[0], "groups": list(groups)}
    return sign_in_on(at)


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def open_page(email: str, name: str = "overview", groups: tuple[str, ...] = ()) -> AppTest:
    at = signed_in(AppTest.from_file(APP, default_timeout=300), email, groups)
    ok(at.run())
    if name != "overview":
        ok(at.switch_page(PAGES[name]).run())
    return at


def budgets_page() -> None:
    from app.app_pages import budgets

    budgets.render()


def scenarios_page() -> None:
    from app.app_pages import scenarios

    scenarios.render()


def function_page(fn, email: str, groups: tuple[str, ...] = ()) -> AppTest:
    at = signed_in(AppTest.from_function(fn, default_timeout=300), email, groups)
    return at


def rendered(at: AppTest) -> str:
    """Every element's protobuf as text: Markdown, metric labels and values, table and chart data, options."""
    out: list[str] = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(str(proto))
        children = getattr(node, "children", None)
        for child in (children.values() if isinstance(children, dict) else children or []):
            walk(child)

    walk(at._tree)
    return "\n".join(out)


def leaks(text: str | bytes, teams: list[str]) -> list[str]:
    """The names of other teams (not the engineer's) found in ``text``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return [t for t in teams if t not in MINE and t in text]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def buttons(at: AppTest) -> set[str]:
    return {b.label for b in at.button} | {b.label for b in at.get("form_submit_button")}


# --- the planner pages (Helios sample) ---------------------------------------------------------------------------
def test_engineer_sees_only_their_teams_on_overview_forecast_plan_and_whatif(env, downloads) -> None:
    at = open_page(ENGINEER)
    text = rendered(at)
    assert not leaks(text, HELIOS) and "vc3sl" in text
    assert ("Access of eng@example.com: engineer, teams llm-finetune, vc3sl, read-only."
            in [fmt.unplain(c.value) for c in at.sidebar.caption])
    at = open_page(ENGINEER, "forecast")
    for level in FS.FAN_LEVELS:
        ok(at.radio(key=A.FAN_LEVEL_KEY).set_value(level).run())
        options = at.selectbox(key=A.FAN_ITEM_KEY).options
        if level in (FS.LEVEL_TEAM, FS.LEVEL_SERIES):
            assert options and all(o.startswith("vc3sl") for o in options)
        text = rendered(at)
        assert not leaks(text, HELIOS), (level, leaks(text, HELIOS))
        assert "vc3sl" in text or level in (FS.LEVEL_ORG, FS.LEVEL_GPU)
    at = open_page(ENGINEER, "plan")
    assert not leaks(rendered(at), HELIOS)
    labels = {b.label for b in at.get("download_button")}
    assert {"Commitments (CSV)", "Hourly costs (CSV)", "Forecast (CSV)", "Summary (HTML)"} <= labels
    assert "plan.json" not in labels  # every team's routing and settings
    at = open_page(ENGINEER, "whatif")
    assert at.multiselect(key=A.TEAM_GROWTH_TEAMS_KEY).options == ["vc3sl"]
    assert not leaks(rendered(at), HELIOS)
    names = {n for n, _ in downloads}
    assert {"forecast_helios_168h.csv", "forecast.csv", "plan_summary.html", "commitments.csv"} <= names
    forecast = dict(downloads)["forecast.csv"].decode()
    assert "vc3sl" in forecast and forecast.count("\n") == 168 + 1  # one series, 168 hours, a header
    for name, data in downloads:
        assert not leaks(data, HELIOS), (name, leaks(data, HELIOS))


def test_every_role_sees_the_same_organisation_totals(env) -> None:
    pages = {}
    for email in (ENGINEER, FINANCE, LEADERSHIP):
        pages[email] = (metrics(open_page(email)), metrics(open_page(email, "plan")))
    org = ["Spend (USD)", "GPU-hours", "Untagged share (%)", "Idle GPU cost (USD)", "Untagged spend (%)"]
    plan = ["Expected cost in the window (USD)", "All on-demand cost in the window (USD)",
            "Cost range p10-p90 in the window (USD)"]
    for email in (FINANCE, LEADERSHIP):
        assert [pages[email][0][k] for k in org] == [pages[ENGINEER][0][k] for k in org]
        assert [pages[email][1][k] for k in plan] == [pages[ENGINEER][1][k] for k in plan]
    assert "Your teams' spend (USD)" in pages[ENGINEER][0] and "Your teams' spend (USD)" not in pages[FINANCE][0]
    assert pages[ENGINEER][0]["Your teams' spend (USD)"] != pages[ENGINEER][0]["Spend (USD)"]


def test_only_platform_saves_and_engineers_never_see_other_teams_scenarios(env, downloads) -> None:
    at = ok(function_page(scenarios_page, PLATFORM, groups=("gpu-platform",)).run())
    assert "Save scenario" in buttons(at)
    at.text_input(key="scenario_name").set_value("base")
    ok(at.get("form_submit_button")[0].click().run())
    db = St.ScenarioStore(env / "scenarios.duckdb")
    base = db.load("base")
    settings = A.PlannerSettings(sample="helios", hours=168, team_growth=(("vc6YE", 0.2),))
    db.save("bump", St.settings_dict(settings), base.plan)
    db.save("vc8Sj burst", St.settings_dict(settings), base.plan, note="for vc8Sj")
    assert set(db.list()["name"]) == {"base", "bump", "vc8Sj burst"}
    at = ok(function_page(scenarios_page, PLATFORM, groups=("gpu-platform",)).run())
    assert {"Save scenario", "Delete"} <= buttons(at)
    for email in (LEADERSHIP, FINANCE):
        at = ok(function_page(scenarios_page, email).run())
        assert not {"Save scenario", "Delete"} & buttons(at) and "Load into What-if" in buttons(at)
        assert "vc8Sj burst" in rendered(at)  # every team's scenarios, read-only
    downloads.clear()
    at = ok(function_page(scenarios_page, ENGINEER).run())
    assert not {"Save scenario", "Delete"} & buttons(at)
    assert sorted(at.selectbox(key="scenario_apply").options) == ["base", "bump"]
    text = rendered(at)
    assert not leaks(text, HELIOS), leaks(text, HELIOS)
    assert not downloads  # no plan.json with every team's routing
    # loading a scenario that grows another team: the engineer's plan keeps only their own teams' growth
    at.selectbox(key="scenario_apply").set_value("bump")
    (load,) = [b for b in at.button if b.label == "Load into What-if"]
    ok(load.click().run())
    assert at.session_state[A.WHATIF_KEY].team_growth == (("vc6YE", 0.2),)
    at = open_page(ENGINEER, "plan")
    assert not leaks(rendered(at), HELIOS)


# --- the Overview and Budgets & chargeback pages (synthetic sample: projects, budgets, units, policy) ---------------
def test_engineer_overview_and_every_budgets_tab_show_only_their_teams(env, downloads, monkeypatch) -> None:
    monkeypatch.setenv(A.DEFAULT_SAMPLE_ENV, "synthetic")
    at = open_page(ENGINEER)
    for dim in ("team", "project", "GPU type"):
        ok(at.radio(key=A.OVERVIEW_DIM_KEY).set_value(dim).run())
        text = rendered(at)
        assert not leaks(text, SYNTHETIC), (dim, leaks(text, SYNTHETIC))
    # the data-cost section (shipped data lines of the sample): organisation metrics, the engineer's rows only
    data_org = metrics(open_page(FINANCE))["Data costs (USD)"]
    assert metrics(at)["Data costs (USD)"] == data_org
    downloads.clear()
    at = function_page(budgets_page, ENGINEER).run()
    assert not at.exception and all(e.value.startswith("ALERT") for e in at.error)
    for include_data in (True, False):  # ends on the default (off), the basis the totals below compare
        at.toggle(key=budgets.DATA_KEY).set_value(include_data).run()
        for policy in ("central", "proportional"):
            text = rendered(at.radio(key="operate_unused_policy").set_value(policy).run())
            assert not leaks(text, SYNTHETIC), (include_data, policy, leaks(text, SYNTHETIC))
            assert "llm-finetune" in text
    names = {n for n, _ in downloads}
    assert {"alerts.json", "chargeback.csv", "idle.csv", "unit_costs.csv", "report.html"} <= names
    for name, data in downloads:
        assert not leaks(data, SYNTHETIC), (name, leaks(data, SYNTHETIC))
    charge = dict(downloads)["chargeback.csv"].decode().splitlines()
    assert charge[1].startswith("llm-finetune,") and len(charge) == 2
    totals = {ENGINEER: metrics(at), FINANCE: metrics(function_page(budgets_page, FINANCE).run())}
    org = ["Budgets alerting", "Total budget (USD)", "Projected spend (USD)", "Allocated (USD)", "Bill (USD)",
           "Commitment utilisation"]
    assert [totals[ENGINEER][k] for k in org] == [totals[FINANCE][k] for k in org]


# --- no role, no data ----------------------------------------------------------------------------------------------
def test_engineer_sees_only_their_teams_anomalies(env, downloads) -> None:
    """The Anomalies tab of Budgets & chargeback (Helios sample: its last 17 days) for an engineer: their team's
    rows only, in the table and in anomalies.csv; finance gets every team's."""
    at = function_page(budgets_page, ENGINEER)
    ok(at.run())
    next(b for b in at.button if b.label == "Find anomalies").click()
    ok(at.run())
    everyone = O.anomalies("helios", 1.0, 0.0).table
    assert len(everyone) and set(everyone["team"]) - MINE   # other teams have anomalies too
    shown = [f for f in (view.shown(t.value) for t in at.table) if "Impact (USD)" in f.columns]
    mine = everyone[everyone["team"].isin(MINE)]
    assert (not shown and mine.empty) or set(shown[0]["Team"]) <= MINE
    assert not leaks(rendered(at), HELIOS)
    for name, data in downloads:
        assert not leaks(data, HELIOS), (name, leaks(data, HELIOS))
    fin = function_page(budgets_page, FINANCE)
    ok(fin.run())
    next(b for b in fin.button if b.label == "Find anomalies").click()
    ok(fin.run())
    (table,) = [f for f in (view.shown(t.value) for t in fin.table) if "Impact (USD)" in f.columns]
    assert sorted(set(table["Team"])) == sorted(set(everyone["team"]))



def test_engineer_sees_commitments_without_the_teams_that_could_move(env, downloads, monkeypatch) -> None:
    """The Commitments tab (synthetic sample: the shipped example CUR): a commitment is the organisation's, so an
    engineer sees the inventory and the under-used finding but not the teams that could move onto it (team vision
    of the export), in the table or in under_used.csv; finance sees them."""
    monkeypatch.setenv(A.DEFAULT_SAMPLE_ENV, "synthetic")
    at = function_page(budgets_page, ENGINEER).run()   # the synthetic budgets' ALERT lines are errors: no ok()
    assert not at.exception
    assert metrics(at)["Commitments"] == "2"

    def finding(page: AppTest) -> pd.DataFrame:
        (table,) = [f for f in (view.shown(t.value) for t in page.table) if "Unused per 30 days (USD)" in f.columns]
        return table

    assert len(finding(at)) == 1 and not {"Teams that could move onto it", "Finding"} & set(finding(at).columns)
    assert "vision (576.0 GPU-h)" not in rendered(at)
    under = dict(downloads)["under_used.csv"].decode()
    assert "movable_teams" not in under and "vision" not in under
    fin = function_page(budgets_page, FINANCE).run()
    assert not fin.exception
    assert list(finding(fin)["Teams that could move onto it"]) == ["vision (576.0 GPU-h)"]

def test_unknown_user_and_bad_roles_file_get_no_data(env, monkeypatch) -> None:
    at = signed_in(AppTest.from_file(APP, default_timeout=300), "eve@example.com")
    at.run()
    assert not at.exception
    assert [fmt.unplain(e.value) for e in at.error] == ["eve@example.com has no role in " + str(env / "roles.yaml")
                                           + ": no data is shown (fix: ask the platform team to add your e-mail or "
                                           "group to the roles file)"]
    assert not at.metric and not at.table and not at.get("vega_lite_chart")
    (env / "roles.yaml").write_text("users:\n  fin@example.com: finanse\n", encoding="utf-8")
    at = signed_in(AppTest.from_file(APP, default_timeout=300), FINANCE)
    at.run()
    bad = (f"error: {env / 'roles.yaml'}, line 2, key 'users.fin@example.com': unknown role 'finanse' (fix: use one "
           "of finance, platform, leadership, engineer)")
    assert [fmt.unplain(e.value) for e in at.error] == [bad]
    assert not at.metric and not at.table


def test_sign_in_off_is_the_local_planner_with_full_access(env) -> None:
    at = ok(AppTest.from_file(APP, default_timeout=300).run())  # AppTest's default user: nobody logged in
    text = rendered(at)
    assert "Local use (sign-in off): every team, saving allowed." in [fmt.unplain(c.value) for c in at.sidebar.caption]
    assert all(t in text for t in HELIOS)


def access_probe() -> None:
    import streamlit as st

    from app.roles import current_access

    st.session_state["access"] = current_access()


def test_current_access_reads_st_user_through_the_identity(env) -> None:
    at = signed_in(AppTest.from_function(access_probe), ENGINEER)
    assert at.run().session_state["access"] == R.Access(ENGINEER, "engineer", frozenset(MINE))
    at = signed_in(AppTest.from_function(access_probe), "Someone@Example.com", groups=("gpu-platform",))
    assert at.run().session_state["access"] == R.Access("someone@example.com", "platform", None)
    at = AppTest.from_function(access_probe)  # nobody logged in, no [auth] settings: sign-in off
    assert at.run().session_state["access"] == R.LOCAL


def test_engineer_sees_only_their_teams_rightsizing_rows(env, downloads) -> None:
    at = open_page(ENGINEER, "whatif")
    ok(at.checkbox(key=A.RIGHTSIZE_KEY).check().run())
    downloads.clear()
    ok(at.switch_page(PAGES["plan"]).run())
    routing = [f for f in (view.shown(t.value) for t in at.table) if "Routed to" in f.columns]
    assert routing and set(routing[0]["Team"]) == {"vc3sl"}
    assert not leaks(rendered(at), HELIOS)
    rows = dict(downloads)["routing.csv"].decode().splitlines()
    assert len(rows) == 2 and rows[1].startswith("vc3sl,")
    for name, data in downloads:
        assert not leaks(data, HELIOS), (name, leaks(data, HELIOS))
    assert "Rightsized" in " ".join(c.value for c in at.caption)  # the organisation's routing, counted


def test_engineer_sees_only_their_teams_planned_runs(env) -> None:
    """Planned runs of two teams priced on Capacity Blocks: the engineer's Plan page lists their team's run only,
    and the other team's name appears nowhere on it."""
    other = next(t for t in HELIOS if t not in MINE)
    events = "events:\n" + "".join(
        f"  - {{team: {team}, gpu_type: NVIDIA H100, kind: add, gpus: 32, start: 2020-06-02 11:30,"
        f" end: 2020-06-05 11:30}}\n" for team in ("vc3sl", other))
    at = open_page(ENGINEER, "whatif")
    at.session_state[A.WHATIF_KEY] = A.PlannerSettings(sample="helios", hours=168, events_name="runs.yaml",
                                                       events_text=events)
    ok(at.run())
    ok(at.switch_page(PAGES["plan"]).run())
    runs = [f for f in (view.shown(t.value) for t in at.table) if "Planned run" in f.columns]
    assert runs and list(runs[0]["Team"]) == ["vc3sl"]
    assert not leaks(rendered(at), HELIOS)
    finance = open_page(FINANCE, "whatif")
    finance.session_state[A.WHATIF_KEY] = at.session_state[A.WHATIF_KEY]
    ok(finance.run())
    ok(finance.switch_page(PAGES["plan"]).run())
    runs = [f for f in (view.shown(t.value) for t in finance.table) if "Planned run" in f.columns]
    assert sorted(runs[0]["Team"]) == sorted(["vc3sl", other])


def test_signed_out_with_sign_in_on_gets_no_data(env) -> None:
    at = sign_in_on(AppTest.from_file(APP, default_timeout=300))
    at.user = {"is_logged_in": False}  # what st.user holds with [auth] configured and nobody signed in
    at.run()
    assert not at.exception
    assert not at.metric and not at.table and not at.get("vega_lite_chart")
    assert not [t for t in HELIOS if t in rendered(at)]


@pytest.mark.parametrize("email", [FINANCE, LEADERSHIP])
def test_finance_and_leadership_see_every_team_read_only(env, email) -> None:
    at = open_page(email, "forecast")
    ok(at.radio(key=A.FAN_LEVEL_KEY).set_value(FS.LEVEL_TEAM).run())
    assert at.selectbox(key=A.FAN_ITEM_KEY).options == HELIOS
    at = open_page(email, "whatif")
    assert at.multiselect(key=A.TEAM_GROWTH_TEAMS_KEY).options == HELIOS
    at = open_page(email, "plan")
    assert "plan.json" in {b.label for b in at.get("download_button")}
    role = "finance" if email == FINANCE else "leadership"
    assert (f"Access of {email}: {role}, every team, read-only."
            in [fmt.unplain(c.value) for c in at.sidebar.caption])


# --- the shared store under roles: who may save, who is audited, what an engineer never sees ------------------------
def test_store_forms_follow_the_role_and_saves_are_audited_with_the_signed_in_user(env, monkeypatch) -> None:
    monkeypatch.setenv(A.DEFAULT_SAMPLE_ENV, "synthetic")
    db = St.open_store()
    db.save_budgets("multimodal only", "team,period,budget_usd\nmultimodal,2025-Q4,1000\n", actor="seed")
    at = function_page(budgets_page, PLATFORM, ("gpu-platform",)).run()
    assert not at.exception
    assert "Save the budgets in use" in buttons(at)
    at.text_input(key="store_budgets_name_synthetic").set_value("platform copy")
    next(b for b in at.get("form_submit_button") if b.label == "Save the budgets in use").click()
    at.run()
    assert db.audit()[["actor", "action", "object_name"]].values.tolist()[0] == [PLATFORM, "save", "platform copy"]
    for email in (FINANCE, LEADERSHIP):  # read-only: may use saved budgets, never save
        at = function_page(budgets_page, email).run()
        assert "Save the budgets in use" not in buttons(at)
        assert "multimodal only" in at.selectbox(key="store_budgets_pick_synthetic").options
    at = function_page(budgets_page, ENGINEER).run()  # saved budgets files hold every team's rows
    assert "Save the budgets in use" not in buttons(at)
    assert not [s for s in at.selectbox if s.key == "store_budgets_pick_synthetic"]
    assert not [e for e in at.expander if "Saved budgets" in e.label]
