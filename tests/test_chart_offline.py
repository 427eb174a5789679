"""Chart files the CLI writes render offline (issue 15 item 11): ``pareto --chart`` and ``backtest --chart``.

The HTML must load no script from the network (vega, vega-lite and vega-embed are inlined), and in headless
Chromium (the system ``/usr/bin/chromium`` through Playwright's ``executable_path``) with every network request
aborted, the chart must draw its marks: the SVG renderer's ``g.mark-*`` groups hold the points, lines and bars.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.chart_html import REMOTE_SCRIPT
from app.cli import app
from optimizer import catalog as C

HELIOS = C.DATA_DIR / "helios_earth_may2020.csv"
CHROMIUM = os.environ.get("GPUPLAN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
runner = CliRunner()


@pytest.fixture(scope="module")
def charts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``pareto --chart`` and ``backtest --chart`` written by the real CLI on the Helios sample."""
    tmp = tmp_path_factory.mktemp("charts")
    wl = tmp / "wl.yaml"
    wl.write_text("classes:\n  train: {min_gpu_memory_gib: 16, spot_tolerant: true}\ndefault: train\n")
    r = runner.invoke(app, ["pareto", "--usage", str(HELIOS), "--workloads", str(wl), "--hours", "168",
                            "--steps", "5", "--chart", str(tmp / "pareto.html")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["backtest", "--usage", str(HELIOS), "--horizon-hours", "24", "--origins", "1",
                            "--out", str(tmp / "bt.csv"), "--chart", str(tmp / "backtest.html")])
    assert r.exit_code == 0, r.output
    return {"pareto": tmp / "pareto.html", "backtest": tmp / "backtest.html"}


@pytest.mark.parametrize("name", ["pareto", "backtest"])
def test_chart_html_loads_no_script_from_the_network(charts: dict[str, Path], name: str) -> None:
    html = charts[name].read_text()
    scripts = re.findall(r"<script[^>]*>", html, flags=re.IGNORECASE)
    assert scripts and not any("src=" in s.lower() for s in scripts), scripts
    assert not REMOTE_SCRIPT.search(html)
    assert "cdn.jsdelivr" not in html
    assert "vegaEmbed" in html and len(html) > 300_000  # the libraries are in the file


def test_remote_script_pattern_catches_cdn_script_tags() -> None:
    assert REMOTE_SCRIPT.search('<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>')
    assert REMOTE_SCRIPT.search("<script type='text/javascript' src='//cdn.example/vega.js'>")
    assert not REMOTE_SCRIPT.search("<script type=\"text/javascript\">var x = 'https://a';</script>")


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (Debian package chromium)")
@pytest.mark.parametrize(("name", "marks"), [("pareto", {"mark-symbol": 2, "mark-line": 1}),
                                             ("backtest", {"mark-rect": 4})])
def test_chart_draws_marks_with_the_network_blocked(charts: dict[str, Path], name: str,
                                                    marks: dict[str, int]) -> None:
    from playwright.sync_api import sync_playwright

    requested: list[str] = []

    def block(route) -> None:
        requested.append(route.request.url)
        route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.route(re.compile(r"^(https?|wss?)://"), block)
            page.goto(charts[name].as_uri())
            page.wait_for_selector("svg.marks", timeout=60_000)
            for mark, least in marks.items():
                # each mark group holds one path (or line) per datum
                drawn = page.locator(f"g.{mark} > path, g.{mark} > line").count()
                assert drawn >= least, f"{name}: {drawn} {mark} drawn, expected at least {least}"
            assert page.locator("svg.marks text").count() > 5  # titles, axis labels
        finally:
            browser.close()
    assert requested == [], f"the chart asked the network for {requested}"
