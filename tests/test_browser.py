"""The planner in a real browser: headless Debian Chromium driven by Playwright against ``gpuplan app``.

A real ``gpuplan app --port <free port>`` subprocess serves the app on 127.0.0.1 with the real Helios sample
(16 teams, one-week window) and a scenario store in a temporary folder. The test moves the demand-growth
slider and waits for the expected cost to change, saves a scenario, reloads the page (a new browser session)
and loads the scenario back, uploads a bad usage file and reads the inline error, and saves a full-page
screenshot of every page in ``out/screenshots/<page>.png``.

Playwright cannot download browsers here; it drives the system Chromium (``/usr/bin/chromium``, Debian
package ``chromium``, installed by ``make test``) through ``executable_path``. Without it the test is skipped
with that reason.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.chromium import free_port, needs_chromium

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "out" / "screenshots"
IDLE = '[data-test-script-state="notRunning"]'
TIMEOUT_MS = 240_000

pytestmark = [
    pytest.mark.slow,
    needs_chromium,
]


class Server(NamedTuple):
    url: str
    store: Path
    """The server's GPUPLAN_STORE file."""


@contextmanager
def running_app(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """A real ``gpuplan app`` on a free 127.0.0.1 port with ``env`` added to the environment; yields its URL once
    its health check answers, then stops its process group. Raises RuntimeError (with the log's tail) when the
    server does not come up within 60 s."""
    port = free_port()
    gpuplan = Path(sys.executable).with_name("gpuplan")
    cmd = [str(gpuplan)] if gpuplan.exists() else [sys.executable, "-m", "app.cli"]
    log = log_path.open("w")
    proc = subprocess.Popen([*cmd, "app", "--port", str(port)], cwd=ROOT,
                            env={**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", **env},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gpuplan app did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``gpuplan app`` on the Helios sample with a scenario store in a temporary folder."""
    tmp = tmp_path_factory.mktemp("browser")
    env = {"GPUPLAN_DEFAULT_SAMPLE": "helios", "GPUPLAN_DEFAULT_HOURS": "168",
           "GPUPLAN_STORE": str(tmp / "scenarios.duckdb"), "GPUPLAN_MAX_UPLOAD_MB": "5"}
    try:
        with running_app(env, tmp / "server.log") as url:
            yield Server(url, tmp / "scenarios.duckdb")
    except RuntimeError as exc:
        pytest.fail(str(exc))


def settle(page) -> None:
    """Wait until the script run finished (the app root reports notRunning) and no spinner is left."""
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)
    page.wait_for_timeout(300)  # a rerun triggered by the last interaction starts within this
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)
    page.get_by_test_id("stSpinner").first.wait_for(state="detached", timeout=TIMEOUT_MS)


def metric_value(page, label: str) -> str:
    metric = page.get_by_test_id("stMetric").filter(has=page.get_by_test_id("stMetricLabel").get_by_text(
        label, exact=True)).first
    return metric.get_by_test_id("stMetricValue").inner_text(timeout=TIMEOUT_MS).strip()


def page_links(page) -> list[tuple[str, str]]:
    """(title, href) of every page in the sidebar navigation."""
    links = page.get_by_test_id("stSidebarNav").get_by_test_id("stSidebarNavLink")
    # the link text starts with the icon's ligature name (e.g. "compare"); the title is the last line
    return [(links.nth(i).inner_text().strip().splitlines()[-1].strip(), links.nth(i).get_attribute("href"))
            for i in range(links.count())]


def goto(page, url: str) -> None:
    """Open ``url`` in a new session (a full page load) and wait for the script run to finish."""
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector('[data-testid="stApp"]', timeout=TIMEOUT_MS)
    settle(page)


def click_page(page, title: str) -> None:
    """Switch page through the sidebar navigation (same session, as a user does)."""
    page.get_by_test_id("stSidebarNav").get_by_test_id("stSidebarNavLink").filter(has_text=title).first.click()
    page.wait_for_timeout(300)
    settle(page)


def shoot(page, name: str) -> Path:
    """Full-height screenshot: the app scrolls inside its main container, so grow the viewport to fit it."""
    height = page.evaluate("() => Math.max(document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight || 0,"
                           " document.body.scrollHeight)")
    page.set_viewport_size({"width": 1500, "height": min(max(int(height) + 40, 1100), 12_000)})
    page.wait_for_timeout(500)  # charts re-layout to the new size
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1500, "height": 1100})
    assert path.stat().st_size > 10_000
    return path


def growth_slider(page):
    return page.get_by_test_id("stSlider").filter(has_text="Demand growth").first


def expected_cost(page) -> int:
    return int(metric_value(page, "Expected cost in the window (USD)").removesuffix(" USD").replace(",", ""))


def test_planner_in_chromium(server: Server, browser, tmp_path: Path) -> None:
    from app.store import ScenarioStore

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    page = context.new_page()
    goto(page, server.url)
    titles = [t for t, _ in page_links(page)]
    assert {"What-if", "Scenarios"} <= set(titles), titles

    # 1. move a slider: the plan changes
    click_page(page, "What-if")
    before = expected_cost(page)
    for pct in (5, 10, 15, 20):  # to +20% demand, one 5% step at a time, as a keyboard user would
        growth_slider(page).get_by_role("slider").press("ArrowRight")
        page.wait_for_function(
            """(want) => [...document.querySelectorAll('[data-testid="stSlider"]')].some(s =>
                 s.innerText.includes('demand growth') &&
                 s.querySelector('[data-testid="stSliderThumbValue"]')?.innerText.trim() === want)""",
            arg=f"{pct}%", timeout=TIMEOUT_MS)
        settle(page)
    page.wait_for_function(
        """([label, old]) => [...document.querySelectorAll('[data-testid="stMetric"]')].some(m =>
             m.querySelector('[data-testid="stMetricLabel"]')?.innerText.trim() === label &&
             m.querySelector('[data-testid="stMetricValue"]')?.innerText.trim() !== old)""",
        arg=["Expected cost in the window (USD)", f"{before:,} USD"], timeout=TIMEOUT_MS)
    settle(page)
    assert growth_slider(page).get_by_test_id("stSliderThumbValue").inner_text().strip() == "20%"
    after = expected_cost(page)
    assert after > before, (before, after)  # 20% more demand costs more
    shoot(page, "whatif_growth_20pct")

    # 2. save the scenario (same session), reload the page (a new session), load it back
    click_page(page, "Scenarios")
    page.get_by_role("textbox", name="Scenario name", exact=True).fill("browser +20% growth")
    page.get_by_role("button", name="Save scenario").click()
    page.get_by_text("Saved scenario 'browser +20% growth'").wait_for(timeout=TIMEOUT_MS)
    settle(page)
    saved = ScenarioStore(server.store).load("browser +20% growth")
    assert saved.settings["growth"] == 0.2 and saved.settings["sample"] == "helios"
    assert round(saved.summary.expected_usd) == after  # the plan the What-if page showed
    page.reload(wait_until="domcontentloaded")
    settle(page)
    assert page.get_by_text("1 saved in").count() == 1
    page.get_by_role("button", name="Load into What-if").click()
    page.get_by_text("Loaded 'browser +20% growth'").wait_for(timeout=TIMEOUT_MS)
    settle(page)
    click_page(page, "What-if")
    assert growth_slider(page).get_by_test_id("stSliderThumbValue").inner_text().strip() == "20%"
    assert expected_cost(page) == after

    # 3. upload a bad file: the error is inline, nothing else of the session is lost
    bad = tmp_path / "bad_usage.csv"
    bad.write_text("timestamp,team,gpu_type,gpus\n2020-05-01T00:00Z,vc1,NVIDIA Tesla V100,3\n"
                   "2020-05-01T01:00Z,vc1,NVIDIA Tesla V100,-2\n")
    expander = page.get_by_test_id("stExpander").filter(has_text="Your data (upload)")
    expander.locator("summary").click()
    expander.locator('input[type="file"]').set_input_files(str(bad))
    error = page.get_by_text(re.compile(r"Upload rejected, nothing else changed\. bad_usage\.csv, row 3, "
                                        r"column 'gpus'"))
    error.wait_for(timeout=TIMEOUT_MS)
    settle(page)
    assert "(fix: " in error.inner_text()
    assert growth_slider(page).get_by_test_id("stSliderThumbValue").inner_text().strip() == "20%"
    assert expected_cost(page) == after
    data_source = page.get_by_test_id("stSidebar").get_by_role("combobox", name="Data source")
    assert data_source.input_value().startswith("Helios cluster Earth")  # the sample stays selected
    shoot(page, "upload_error")

    # 4. a second scenario (the base) and the two side by side
    click_page(page, "What-if")
    page.get_by_role("button", name="Reset to the base scenario").click()
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stSlider"]')].some(s =>
             s.innerText.includes('demand growth') &&
             s.querySelector('[data-testid="stSliderThumbValue"]')?.innerText.trim() === '0%')""",
        timeout=TIMEOUT_MS)
    settle(page)
    assert expected_cost(page) == before
    click_page(page, "Scenarios")
    page.get_by_role("textbox", name="Scenario name", exact=True).fill("browser base")
    page.get_by_role("button", name="Save scenario").click()
    page.get_by_text("Saved scenario 'browser base'").wait_for(timeout=TIMEOUT_MS)
    settle(page)
    store = ScenarioStore(server.store)
    costs = {n: round(store.load(n).summary.expected_usd) for n in ("browser base", "browser +20% growth")}
    assert costs == {"browser base": before, "browser +20% growth": after}
    compared = [v for v in page.get_by_test_id("stMetric").filter(has_text="Expected cost (USD)")
                .get_by_test_id("stMetricValue").all_inner_texts()]
    assert compared == [f"{after:,} USD", f"{before:,} USD"], compared  # in saving order: +20%, then base

    # 5. a screenshot of every page: the sample organisation, the saved scenarios on the Scenarios page
    for title in titles:
        click_page(page, title)
        assert not page.get_by_test_id("stException").count(), title
        shoot(page, re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_"))
    context.close()


def test_owned_commitments_upload_in_chromium(server: Server, browser, tmp_path: Path) -> None:
    """A platform lead uploads the commitments they own (5 reserved p3dn.24xlarge and a 200 USD/h Compute SP, the
    --existing format) on the What-if page: the plan buys at least those 40 GPUs fewer, the Plan page lists them as
    owned; a bad file is one inline error line."""
    owned = tmp_path / "owned.csv"
    owned.write_text("instance_type,option,count,start,expiry,commitment_usd_per_hour\n"
                     "p3dn.24xlarge,reserved_1y_no_upfront,5,2020-01-01,2021-01-01,\n"
                     ",compute_sp_1y_no_upfront,,2020-01-01,2021-01-01,200\n")
    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    page = context.new_page()
    goto(page, server.url)
    click_page(page, "What-if")
    before = float(metric_value(page, "Committed GPUs").split()[0].replace(",", ""))
    page.get_by_test_id("stRadio").filter(has_text="Owned commitments").get_by_text("Upload a file").click()
    settle(page)
    uploader = page.get_by_test_id("stFileUploader").filter(has_text="Owned commitments file")
    uploader.locator('input[type="file"]').set_input_files(str(owned))
    page.wait_for_function(
        """([label, old]) => [...document.querySelectorAll('[data-testid="stMetric"]')].some(m =>
             m.querySelector('[data-testid="stMetricLabel"]')?.innerText.trim() === label &&
             m.querySelector('[data-testid="stMetricValue"]')?.innerText.trim().split(' ')[0] !== old)""",
        arg=["Committed GPUs", f"{before:,.0f}"], timeout=TIMEOUT_MS)
    settle(page)
    after = float(metric_value(page, "Committed GPUs").split()[0].replace(",", ""))
    assert before - after >= 40, (before, after)
    click_page(page, "Plan")
    assert page.get_by_text("owned", exact=True).count() == 2
    click_page(page, "What-if")
    bad = tmp_path / "bad_owned.csv"
    bad.write_text("instance_type,option,count,start,expiry\np3dn.24xlarge,reserved_1y_no_upfront,0,2020-01-01,2021\n")
    uploader = page.get_by_test_id("stFileUploader").filter(has_text="Owned commitments file")
    uploader.locator('input[type="file"]').set_input_files(str(bad))
    page.get_by_text(re.compile(r"bad_owned\.csv, row 2, column 'count'")).wait_for(timeout=TIMEOUT_MS)
    assert not page.get_by_test_id("stException").count()
    context.close()


def test_planned_run_priced_on_a_capacity_block_in_chromium(server: Server, browser, tmp_path: Path) -> None:
    """An events file uploaded on the What-if page with a 3-day run of 32 H100: the Plan page prices it on a
    Capacity Block (4 x p5.48xlarge for 72 h at 39.33 USD/instance-h = 11,327 USD upfront)."""
    events = tmp_path / "runs.yaml"
    events.write_text("events:\n  - {team: vc3sl, gpu_type: NVIDIA H100, kind: add, gpus: 32, start: 2020-06-02 11:30,"
                      " end: 2020-06-05 11:30, note: eval run}\n")
    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    page = context.new_page()
    goto(page, server.url)
    click_page(page, "What-if")
    page.get_by_test_id("stRadio").filter(has_text="Planned events").get_by_text("Upload a file").click()
    settle(page)
    uploader = page.get_by_test_id("stFileUploader").filter(has_text="Events file")
    uploader.locator('input[type="file"]').set_input_files(str(events))
    settle(page)
    click_page(page, "Plan")
    page.get_by_text("Planned runs: Capacity Block or not").wait_for(timeout=TIMEOUT_MS)
    assert page.get_by_text(re.compile(r"^4 x p5\.48xlarge for 3 days from 2020-06-02")).count() == 1
    assert page.get_by_text(f"{4 * 72 * 39.33:,.0f}", exact=True).count() >= 1
    assert not page.get_by_test_id("stException").count()
    context.close()
