"""Screenshots of every planner page with real numbers, for the docs (run:
.venv/bin/python benchmarks/screenshots.py [--sample synthetic] [--hours 720] [--out docs/screenshots]).

Starts a real ``gpuplan app`` on a free port (the synthetic sample organisation by default, a scenario store in a
temporary folder holding three scenarios saved through :class:`app.store.ScenarioStore` with the app's own cached
plans), opens it in headless Debian Chromium through Playwright (``executable_path``, as tests/test_browser.py),
and saves one viewport screenshot (1400 x 900, not full page) per page to ``<out>/<page>.png``:

- overview, forecast, plan (headline figures of the base plan);
- whatif (after switching on rightsizing and moving the speed priority to 20% with the keyboard);
- plan_routing (the Plan page scrolled to the per-team routing of that rightsized plan);
- scenarios (scrolled to the side-by-side comparison), budgets (alerts of the shipped budgets).

Every page is checked for Streamlit exceptions, error boxes (budget ALERT lines are expected on the Budgets
page) and the problems of :func:`tests.screen_checks.problems` (cut text, None/nan, money with more than two
decimals, legends that drop series) before its screenshot; the script fails
otherwise. Units on the pages: USD, GPUs, GPU-hours, hours.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.screen_checks import problems  # noqa: E402
from tests.test_browser import CHROMIUM, click_page, goto, running_app, settle  # noqa: E402

VIEWPORT = {"width": 1400, "height": 900}


def save_scenarios(store_path: Path, sample: str, hours: int) -> list[str]:
    """Three scenarios (base, +20% growth, rightsized at speed 100%) planned with the app's own cached calls."""
    from app import state as A
    from app import store as St
    from app.app_pages import scenarios as P

    base = A.PlannerSettings(sample=sample, hours=hours)
    chosen = {"base": base, "+20% growth": dataclasses.replace(base, growth=0.2),
              "rightsized, speed 100%": dataclasses.replace(base, rightsize=True, speed_priority=1.0)}
    db = St.ScenarioStore(store_path)
    for name, settings in chosen.items():
        result = A.cached_plan(settings)
        db.save(name, settings, result.plan, data_source=A.data_source_provenance(sample),
                time_to_result_hours=P.time_to_result(settings, result), overwrite=True)
    return list(chosen)


def check_page(page, name: str) -> None:
    """No exception and no error box (budget alerts excepted) on the page."""
    if page.get_by_test_id("stException").count():
        raise RuntimeError(f"{name}: {page.get_by_test_id('stException').first.inner_text()}")
    errors = [t for t in page.get_by_test_id("stAlertContentError").all_inner_texts() if "ALERT " not in t]
    if errors:
        raise RuntimeError(f"{name}: {errors[0]}")
    found = problems(page, '[data-testid="stApp"]')  # cut text, None/nan, long money, dropped legends
    if found:
        raise RuntimeError(f"{name}: " + "; ".join(found))


def shoot(page, out: Path, name: str, scroll_to: str | None = None) -> Path:
    """Viewport screenshot after scrolling ``scroll_to`` (a heading's text) to the top of the view."""
    check_page(page, name)
    if scroll_to is not None:
        page.get_by_text(scroll_to, exact=True).first.evaluate("e => e.scrollIntoView({block: 'start'})")
    else:
        page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]')?.scrollTo(0, 0)")
    page.wait_for_timeout(800)  # charts finish drawing
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} ({path.stat().st_size:,} bytes)")
    return path


def press_until(page, label: str, key: str, want: str) -> None:
    """Move the slider labelled ``label`` with the keyboard until its thumb shows ``want``."""
    slider = page.get_by_test_id("stSlider").filter(has_text=label).first
    for _ in range(20):
        if slider.get_by_test_id("stSliderThumbValue").inner_text().strip() == want:
            return
        slider.get_by_role("slider").press(key)
        page.wait_for_timeout(300)
        settle(page)
    raise RuntimeError(f"slider '{label}' did not reach {want}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", default="synthetic")
    parser.add_argument("--hours", type=int, default=720)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "scenarios.duckdb"
        os.environ["GPUPLAN_STORE"] = str(store)
        names = save_scenarios(store, args.sample, args.hours)
        env = {"GPUPLAN_DEFAULT_SAMPLE": args.sample, "GPUPLAN_DEFAULT_HOURS": str(args.hours)}
        with running_app(env, Path(tmp) / "server.log") as url:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
                page = browser.new_context(viewport=VIEWPORT).new_page()
                goto(page, url)
                shoot(page, args.out, "overview")
                click_page(page, "Forecast")
                shoot(page, args.out, "forecast")
                click_page(page, "Plan")
                shoot(page, args.out, "plan")
                click_page(page, "What-if")
                page.get_by_test_id("stCheckbox").filter(has_text="Rightsize GPU models per team").first.click()
                page.wait_for_timeout(300)
                settle(page)
                press_until(page, "Speed priority", "ArrowRight", "20%")
                shoot(page, args.out, "whatif")
                click_page(page, "Plan")
                shoot(page, args.out, "plan_routing", scroll_to="GPU model per team (rightsizing)")
                click_page(page, "Scenarios")
                page.get_by_text(f"{len(names)} saved in").first.wait_for(timeout=60_000)
                shoot(page, args.out, "scenarios", scroll_to="Compare side by side")
                click_page(page, "Budgets & chargeback")
                shoot(page, args.out, "budgets")
                browser.close()


if __name__ == "__main__":
    main()
