"""The term horizon end to end on the shipped synthetic organisation: a wind-down after the window, ranges that
widen with the window, short histories, and the finance figures in plan.json and the summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli import app, plan_from_usage
from forecasting.engine import ForecastConfig, forecast
from forecasting.samples import load_sample
from optimizer.catalog import load_catalog
from optimizer.inputs import PlanConfig
from optimizer.solve import make_plan, weighted_quantiles
from optimizer.term import plan_scenarios, planner_longterm
from usage import schema as S

START = pd.Timestamp("2025-12-01")
H100 = "NVIDIA H100"


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    return load_sample("synthetic")


def test_a_wind_down_commits_no_more_h100_than_the_demand_after_it_supports(synthetic, tmp_path):
    # llm-pretrain (about 120 of the organisation's ~270 H100) winds down to 0 by 2026-01-01: the plan's committed
    # H100 is at most the median of the H100 demand after that date over the term, within one p5.48xlarge
    events = tmp_path / "wind_down.yaml"
    events.write_text("events:\n  - {team: llm-pretrain, kind: wind_down, start: 2025-12-01, end: 2026-01-01}\n")
    result, _ = plan_from_usage(synthetic, load_catalog(), PlanConfig(start=START, hours=720), events=events)
    sc = result.scenarios
    after = sc.tail_hours >= pd.Timestamp("2026-01-01")
    tail = sc.tail[H100][:, after]
    (p50,) = weighted_quantiles(tail.ravel(), np.repeat(sc.weights, tail.shape[1]), (0.5,))
    committed = sum(c.gpus for c in result.plan.commitments if c.gpu_model == H100 and c.firm)
    assert committed <= p50 + 8
    # without the wind-down the plan commits clearly more H100
    base, _ = plan_from_usage(synthetic, load_catalog(), PlanConfig(start=START, hours=720))
    assert sum(c.gpus for c in base.plan.commitments if c.gpu_model == H100) > committed + 40
    e = result.plan.expected
    assert e.obligation_after_window_usd > 0.8 * e.obligation_total_usd > 0


def test_cost_ranges_widen_with_the_window_and_hold_the_expected_value(synthetic):
    history = synthetic[synthetic[S.TIMESTAMP] < START]
    fc = forecast(history, ForecastConfig(horizon_hours=720, history_hours=1344))
    cat = load_catalog()
    lt = planner_longterm(history, PlanConfig(start=START, hours=720))
    widths = []
    for hours in (720, 2160, 8760):
        config = PlanConfig(start=START, hours=hours)
        plan = make_plan(None, cat, config, scenarios=plan_scenarios(config, history, long=fc.long, longterm=lt)).plan
        e = plan.expected
        assert e.total_p10_usd < e.total_usd < e.total_p90_usd
        widths.append(e.total_p90_usd - e.total_p10_usd)
    assert widths[0] < widths[1] < widths[2]


def _cli_plan(usage: pd.DataFrame, tmp_path: Path, *extra: str) -> tuple[int, str, dict | None]:
    src = tmp_path / "usage.csv"
    table = usage.copy()
    table[S.TIMESTAMP] = S.format_timestamp(table[S.TIMESTAMP])
    table[[S.TIMESTAMP, S.TEAM, S.GPU_TYPE, S.GPUS]].to_csv(src, index=False)
    out = tmp_path / "plan.json"
    start = usage[S.TIMESTAMP].max() + pd.Timedelta(hours=1)
    r = CliRunner().invoke(app, ["plan", "--usage", str(src), "--start", f"{start:%Y-%m-%dT%H:%M}Z", "--hours", "168",
                                 "--out", str(out), *extra])
    return r.exit_code, r.output, json.loads(out.read_text()) if out.exists() else None


def test_a_plan_from_a_day_of_history_says_so_and_keeps_its_mean_inside_its_range(synthetic, tmp_path):
    day = synthetic[(synthetic[S.TIMESTAMP] >= pd.Timestamp("2025-11-30")) & (synthetic[S.TEAM] == "recsys-serving")]
    code, output, doc = _cli_plan(day, tmp_path)
    assert code == 0, output
    assert "history of 1.0 days is short against the 7-day window" in output
    e = doc["expected"]
    assert e["total_p10_usd"] <= e["total_usd"] <= e["total_p90_usd"]
    assert e["horizon_p10_usd"] < e["horizon_total_usd"] < e["horizon_p90_usd"]


def test_under_two_weeks_of_history_buys_no_three_year_commitment_without_the_flag(synthetic, tmp_path):
    days = synthetic[(synthetic[S.TIMESTAMP] >= pd.Timestamp("2025-11-21")) & (synthetic[S.TEAM] == "recsys-serving")]
    opts = "reserved_1y_no_upfront,reserved_3y_no_upfront"
    code, output, doc = _cli_plan(days, tmp_path, "--options", opts)
    assert code == 0, output
    assert "3-year options left out" in output and "--allow-short-history" in output
    assert doc["assumptions"]["options_considered"] == ["reserved_1y_no_upfront"]
    assert doc["term"]["horizon_hours"] == 8760
    code, output, doc = _cli_plan(days, tmp_path, "--options", opts, "--allow-short-history")
    assert code == 0, output
    assert doc["assumptions"]["options_considered"] == ["reserved_1y_no_upfront", "reserved_3y_no_upfront"]
    assert doc["term"]["horizon_hours"] == 3 * 8760


def test_window_only_plans_keep_the_old_judgement_and_say_so(synthetic, tmp_path):
    days = synthetic[(synthetic[S.TIMESTAMP] >= pd.Timestamp("2025-10-01")) & (synthetic[S.TEAM] == "recsys-serving")]
    code, output, doc = _cli_plan(days, tmp_path, "--window-only", "--cost-of-capital", "0")
    assert code == 0, output
    assert "term" not in doc and doc["assumptions"]["horizon"] == "window"
    assert "judged on the window, taken as representative of the term" in output
