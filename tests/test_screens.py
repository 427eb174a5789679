"""Every page of the planner in headless Chromium, checked for what a finished screen must not show.

A real ``gpuplan app`` (the shipped synthetic organisation, the default 720 h window, a scenario store in a
temporary folder) is driven by Playwright through Debian's Chromium (``executable_path``; Playwright cannot
download browsers here). The test saves two scenarios (the base, and +5% demand growth) so the Scenarios page
shows its comparison and cost-vs-time charts, switches on rightsizing for the Plan page's routing table, then
visits every page of the sidebar navigation and every tab of Budgets & chargeback at 1400 x 900 and fails on
any problem :func:`tests.screen_checks.problems` finds: cut-off text (incl. any canvas data grid), "None"/"nan"
cells, money with more than two decimals, legends that drop series or repeat a colour. Each check is shown able
to fail on a small bad page first (``test_checker_*``).

Full-page screenshots of every checked page go to ``out/screenshots/screen_<page>.png`` (the README's 1400 x 900
pictures in docs/screenshots/ come from ``benchmarks/screenshots.py``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chromium import needs_chromium
from tests.screen_checks import problems
from tests.test_browser import TIMEOUT_MS, click_page, goto, page_links, running_app, settle

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "screenshots"
WIDTH, HEIGHT = 1400, 900
APP = '[data-testid="stApp"]'

pytestmark = [pytest.mark.slow, needs_chromium]


@pytest.fixture()
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    yield context.new_page()
    context.close()


# --- the checker can fail: one small bad page per check ---------------------------------------------------
def test_checker_passes_a_clean_page(page) -> None:
    page.set_content("""<p>Spend 1,234 USD, rate 3.41 USD/h, none of the budgets alert.</p>
        <table><thead><tr><th>Team</th><th>Cost (USD)</th></tr></thead>
        <tbody><tr><td>a</td><td>113,819</td></tr><tr><td>b</td><td>0.35</td></tr></tbody></table>
        <div style="width:80px; overflow:hidden; white-space:normal">wraps instead of being cut</div>""")
    assert problems(page) == []


def test_checker_finds_cut_text(page) -> None:
    page.set_content("""<div style="width:60px; overflow:hidden; white-space:nowrap">projected_overspend_usd</div>
        <div style="width:60px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap">llm-pretrain-team</div>
        <input style="width:60px" value="Synthetic organisation (made up, 22 teams)">
        <svg><text x="5" y="15">llm-pretr\u2026</text></svg>
        <svg width="60" height="20"><text x="5" y="15">recsys-serving: 1k recommendations</text></svg>""")
    found = problems(page)
    assert len(found) == 5 and all(p.startswith("cut:") for p in found), found
    assert any("runs past its chart's edge" in p for p in found)
    assert any("projected_overspend_usd" in p for p in found) and any("llm-pretr" in p for p in found)
    assert any(p.startswith("cut: input") for p in found)


def test_checker_finds_a_canvas_grid(page) -> None:
    page.set_content('<div data-testid="stDataFrame" style="width:200px;height:50px">grid</div>')
    assert problems(page) == ["cut: a canvas data grid (st.dataframe) whose cells cannot be checked"]


@pytest.mark.parametrize("text", ["None", "nan", "NaN", "NaT", "<NA>", "cost nan USD"])
def test_checker_finds_missing_values(page, text: str) -> None:
    from html import escape

    page.set_content(f"<table><tr><td>Utilisation (%)</td><td>{escape(text)}</td></tr></table>")
    found = problems(page)
    assert len(found) == 1 and found[0].startswith("missing:"), found


def test_checker_finds_money_with_three_decimals(page) -> None:
    page.set_content("""<p>plan saves 113,819.004 USD</p>
        <table><thead><tr><th>Team</th><th>Spot (USD)</th><th>Speed</th></tr></thead>
        <tbody><tr><td>a</td><td>28.125</td><td>1.234</td></tr></tbody></table>""")
    found = problems(page)
    assert found == ['money: "plan saves 113,819.004 USD" in p', 'money: "28.125" under "Spot (USD)"'], found


def _legend_svg(n: int, symbol_limit: int | None, palette: list[str] | None = None) -> str:
    """A real Vega render (vl-convert, the SVG Vega draws) of ``n`` series with a legend."""
    import altair as alt
    import pandas as pd
    import vl_convert as vlc

    data = pd.DataFrame({"x": range(n), "y": range(n), "team": [f"team-{i}" for i in range(n)]})
    legend = alt.Legend() if symbol_limit is None else alt.Legend(symbolLimit=symbol_limit)
    scale = alt.Scale() if palette is None else alt.Scale(range=palette)
    chart = alt.Chart(data).mark_point().encode(x="x:Q", y="y:Q", color=alt.Color("team:N", legend=legend,
                                                                                     scale=scale))
    return vlc.vegalite_to_svg(chart.to_dict())


def test_checker_finds_legends_that_drop_series(page) -> None:
    page.set_content(_legend_svg(6, None))
    assert problems(page) == []
    page.set_content(_legend_svg(6, 3))  # Vega lists 2 and "...4 entries"
    found = problems(page)
    assert len(found) == 1 and found[0].startswith("legend: 2 of 6 series listed"), found


def test_checker_finds_repeated_legend_colours(page) -> None:
    page.set_content(_legend_svg(4, None, palette=["#4c78a8", "#f58518"]))  # 4 series, 2 colours
    found = problems(page)
    assert found and found[0].startswith("legend: colour(s)") and "repeated" in found[0], found


# --- every page of the app ----------------------------------------------------------------------------------
SHORT_NAMES = {"what_if": "whatif", "budgets_chargeback": "budgets"}
"""File names of docs/screenshots/ (the README's) for pages whose titles make long slugs."""


def _slug(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")
    for long, short in SHORT_NAMES.items():
        slug = slug.replace(long, short)
    return slug


def _shoot(page, name: str) -> None:
    """A full-page screenshot at 1400 px width: the app scrolls inside its main container, so the viewport grows
    to its height for the picture, then returns to 1400 x 900."""
    height = page.evaluate("() => Math.max(document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight || 0,"
                           " document.body.scrollHeight)")
    page.set_viewport_size({"width": WIDTH, "height": min(max(int(height) + 40, HEIGHT), 12_000)})
    page.wait_for_timeout(500)  # charts re-layout to the new size
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"screen_{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    page.wait_for_timeout(300)


def _save_scenario(page, name: str) -> None:
    click_page(page, "Scenarios")
    page.get_by_role("textbox", name="Scenario name", exact=True).fill(name)
    page.get_by_role("button", name="Save scenario").click()
    page.get_by_text(f"Saved scenario '{name}'").wait_for(timeout=TIMEOUT_MS)
    settle(page)


def _check(page, where: str, found: dict[str, list[str]]) -> None:
    assert not page.get_by_test_id("stException").count(), f"{where}: the page raised"
    issues = problems(page, APP)
    if issues:
        found[where] = issues


def test_every_page_has_no_cut_text_missing_values_long_money_or_dropped_legends(tmp_path: Path, page) -> None:
    env = {"GPUPLAN_STORE": str(tmp_path / "scenarios.duckdb"),  # the app of this checkout, not an installed one
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    found: dict[str, list[str]] = {}
    visited: list[str] = []
    with running_app(env, tmp_path / "server.log") as url:
        goto(page, url)
        titles = [t for t, _ in page_links(page)]
        assert len(titles) == 6, titles
        # two saved scenarios (the Scenarios page's comparison and cost-vs-time chart need two)
        _save_scenario(page, "base")
        click_page(page, "What-if")
        _check(page, "What-if (base)", found)
        page.get_by_test_id("stSlider").filter(has_text="Organisation demand growth").first.get_by_role(
            "slider").press("ArrowRight")
        settle(page)
        _save_scenario(page, "growth +5%")
        for title in titles:
            click_page(page, title)
            tabs = page.get_by_test_id("stTab")
            for i in range(max(tabs.count(), 1)):
                where = title
                if tabs.count():
                    tabs.nth(i).click()
                    settle(page)
                    where = f"{title} / {tabs.nth(i).inner_text().strip()}"
                _check(page, where, found)
                visited.append(where)
                _shoot(page, _slug(title if i == 0 else where))
        # the Plan page with the per-team routing (rightsizing on)
        click_page(page, "What-if")
        page.get_by_test_id("stCheckbox").filter(has_text="Rightsize GPU models per team").first.click()
        settle(page)
        _check(page, "What-if (rightsized)", found)
        click_page(page, "Plan")
        _check(page, "Plan (rightsized)", found)
        _shoot(page, "plan_routing")
    assert len(visited) >= len(titles) + 4, visited  # every page, and the five tabs of Budgets & chargeback
    assert not found, "\n".join(f"{where}:\n  " + "\n  ".join(issues) for where, issues in found.items())
