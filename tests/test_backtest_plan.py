"""Plan backtest: replay a trace, bill plans on the realised demand; ``gpuplan backtest-plan`` end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli import app
from optimizer.backtest_plan import (
    ALL_ON_DEMAND,
    HINDSIGHT,
    PLAN,
    BacktestPlanConfig,
    backtest_plan,
    lookback_name,
    verdict,
    window_origins,
)
from optimizer.inputs import PlanningError
from optimizer.plan import Expected, OnDemandRate, Plan
from tests.helpers import make_catalog
from usage import schema as S

ROWS = [
    {"instance_type": "x.1", "purchase_option": "on_demand", "price": 1.0},
    {"instance_type": "x.1", "purchase_option": "reserved_1y_no_upfront", "price": 0.6},
    {"instance_type": "x.1", "purchase_option": "spot", "price": 0.3},
]
CAT = make_catalog(ROWS)
GPU = "NVIDIA A100"
T0 = pd.Timestamp("2026-01-01")
runner = CliRunner()


def trace(days: int = 20, seed: int = 1) -> pd.DataFrame:
    """Two teams: a steady 6 GPUs with a daily swing, and a team that runs 4 GPUs on weekdays only."""
    ts = pd.date_range(T0, periods=24 * days, freq="h")
    rng = np.random.default_rng(seed)
    steady = 6 + 2 * np.sin(2 * np.pi * ts.hour / 24) + rng.normal(0, 0.2, len(ts))
    weekday = np.where(ts.dayofweek < 5, 4.0, 0.0)
    return pd.concat([pd.DataFrame({S.TIMESTAMP: ts, S.TEAM: team, S.GPU_TYPE: GPU, S.GPUS: np.clip(v, 0, None)})
                      for team, v in (("a", steady), ("b", weekday))], ignore_index=True)


def flat_planner(level: float):
    """A planner that commits to ``level`` GPUs whatever the history (hand-checkable bills)."""
    from optimizer.plan import Commitment

    def plan(history, catalog, configs):
        out = []
        for c in configs:
            commit = Commitment("x.1", "reserved_1y_no_upfront", int(level), c.start, 0.6, 0.0, GPU, 1.0, 8760)
            out.append(Plan(c.start, c.end, c.region, (commit,), (), (OnDemandRate(GPU, "x.1", 1.0),),
                            Expected(0.0, 0.0, 0.0, 0.0, 0.0)))
        return out
    return plan


def test_replay_bills_every_method_on_the_realised_window():
    usage = trace()
    result = backtest_plan(usage, CAT, BacktestPlanConfig(hours=48, origins=2, lookback_days=(1, 7)),
                           planner=flat_planner(5))
    per = result.per_origin
    assert result.windows == (T0 + pd.Timedelta(hours=20 * 24 - 48), T0 + pd.Timedelta(hours=20 * 24 - 96))
    assert set(per["method"]) == {PLAN, ALL_ON_DEMAND, lookback_name(1), lookback_name(7), HINDSIGHT}
    assert len(per) == 2 * 2 * 5
    for origin in result.windows:
        real = usage[(usage[S.TIMESTAMP] >= origin) & (usage[S.TIMESTAMP] < origin + pd.Timedelta(hours=48))]
        hourly = real.groupby(S.TIMESTAMP)[S.GPUS].sum().to_numpy()
        rows = per[per["origin"] == origin].set_index(["spot", "method"])
        # all on-demand: every GPU-hour at 1.0 USD; the flat plan: 5 x 0.6 per hour + the rest on demand
        assert rows.loc[(True, ALL_ON_DEMAND), "billed_usd"] == pytest.approx(hourly.sum())
        assert rows.loc[(False, PLAN), "billed_usd"] == pytest.approx(48 * 5 * 0.6 + np.maximum(hourly - 5, 0).sum())
        assert rows.loc[(False, HINDSIGHT), "vs_hindsight"] == 1.0
        # hindsight is the optimum: never above another method (no spot: exact up to the MIP gap)
        no_spot = rows.loc[False]
        assert (no_spot["billed_usd"] >= no_spot.loc[HINDSIGHT, "billed_usd"] * (1 - 2e-4)).all()
        # with spot, held to the spot share cap, up to one spot instance over the window
        with_spot = rows.loc[True]
        assert (with_spot["capped_usd"] >= with_spot.loc[HINDSIGHT, "billed_usd"] - 48 * 0.7 - 1e-6).all()
        assert with_spot.loc[HINDSIGHT, "spot_share"] <= 0.3 + 1e-9
    s = result.summary.set_index(["spot", "method"])
    assert s.loc[(False, ALL_ON_DEMAND), "savings_pct"] == 0.0
    assert s.loc[(False, PLAN), "billed_usd"] == pytest.approx(per.query("spot == False and method == 'plan'")
                                                               ["billed_usd"].sum())
    lines = verdict(result.summary)
    assert len(lines) == 2 and lines[0].startswith("with spot, billed: plan") and "held to the spot cap" in lines[0]
    assert lines[1].startswith("without spot, billed: plan") and "spot cap" not in lines[1]


def test_windows_outside_the_trace_or_without_history_are_refused():
    usage = trace(days=10)
    with pytest.raises(PlanningError, match="outside the trace"):
        window_origins(usage, BacktestPlanConfig(hours=48, at=T0 + pd.Timedelta(days=9, hours=1)))
    with pytest.raises(PlanningError, match="outside the trace"):
        window_origins(usage, BacktestPlanConfig(hours=48, at=T0 - pd.Timedelta(days=1)))
    with pytest.raises(PlanningError, match=r"only 72 h of history .* at least 168 h"):
        window_origins(usage, BacktestPlanConfig(hours=48, at=T0 + pd.Timedelta(hours=72)))
    with pytest.raises(PlanningError, match="only 144 h of history"):
        window_origins(usage, BacktestPlanConfig(hours=48, origins=2))
    assert window_origins(usage, BacktestPlanConfig(hours=48)) == (T0 + pd.Timedelta(hours=192),)
    assert window_origins(usage, BacktestPlanConfig(hours=24, origins=3)) == tuple(
        T0 + pd.Timedelta(hours=240 - 24 * k) for k in range(1, 4))


def test_default_planner_forecasts_and_beats_all_on_demand(tmp_path):
    usage = trace(days=24)
    result = backtest_plan(usage, CAT, BacktestPlanConfig(hours=48, origins=1, spot_modes=(False,),
                                                          lookback_days=(7,)))
    s = result.summary.set_index("method")
    assert s.loc[PLAN, "billed_usd"] < s.loc[ALL_ON_DEMAND, "billed_usd"]
    assert s.loc[PLAN, "vs_hindsight"] >= 1 - 2e-4


def test_cli_backtest_plan_on_helios_writes_json_and_csv(tmp_path):
    out = tmp_path / "bt.json"
    r = runner.invoke(app, ["backtest-plan", "--sample", "helios", "--hours", "48", "--no-spot", "--lookbacks", "7",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "Plan backtest on sample 'helios'" in r.output and "without spot, billed: plan" in r.output
    doc = json.loads(out.read_text())
    methods = [row["method"] for row in doc["summary"]]
    assert methods == [PLAN, ALL_ON_DEMAND, lookback_name(7), HINDSIGHT]
    assert doc["windows"] == ["2020-05-29T16:00:00Z"]
    rows = {row["method"]: row for row in doc["summary"]}
    assert rows[HINDSIGHT]["vs_hindsight"] == 1.0 and rows[ALL_ON_DEMAND]["savings_pct"] == 0.0
    assert rows[PLAN]["billed_usd"] < rows[ALL_ON_DEMAND]["billed_usd"]
    csv = tmp_path / "bt.csv"
    r = runner.invoke(app, ["backtest-plan", "--sample", "helios", "--hours", "24", "--origins", "2", "--spot",
                            "--lookbacks", "1,7", "--at", "2020-05-20T16:00Z", "--out", str(csv)])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(csv)
    assert set(table["origin"]) == {"2020-05-20T16:00:00Z", "2020-05-19T16:00:00Z", "all"}
    assert (table["spot"]).all() and len(table) == 2 * 5 + 5


def test_cli_backtest_plan_on_a_usage_file(tmp_path):
    path = tmp_path / "usage.csv"
    usage = trace(days=12)
    usage.assign(**{S.TIMESTAMP: S.format_timestamp(usage[S.TIMESTAMP])}).to_csv(path, index=False)
    r = runner.invoke(app, ["backtest-plan", "--usage", str(path), "--hours", "24", "--no-spot", "--lookbacks", "7"])
    assert r.exit_code == 0, r.output
    assert "look-back 7d" in r.output


@pytest.mark.parametrize("args, message", [
    (["--sample", "acme"], "unknown sample 'acme' (fix: choose one of"),
    (["--sample", "helios", "--at", "2021-01-01T00:00Z"], "is outside the trace"),
    (["--sample", "helios", "--at", "2020-05-02T00:00Z"], "of history before the earliest window"),
    (["--sample", "helios", "--origins", "9"], "of history before the earliest window"),
    (["--sample", "helios", "--at", "yesterday"], "--at 'yesterday' is not an ISO 8601 time"),
    (["--sample", "helios", "--at", "2020-05-20T16:30Z"], "is not an hour start"),
    (["--sample", "helios", "--lookbacks", "7,x"], "must be whole days"),
    (["--sample", "helios", "--out", "table.xlsx"], "unknown format '.xlsx'"),
    (["--sample", "helios", "--options", "reserved_2y"], "reserved_2y"),
    ([], "give either --usage FILE or --sample NAME"),
    (["--usage", "missing.csv"], "missing.csv"),
])
def test_cli_backtest_plan_user_errors_are_one_line_with_exit_2(args, message):
    r = runner.invoke(app, ["backtest-plan", *args])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    assert message in r.output
    assert r.output.strip().startswith("error:") and len(r.output.strip().splitlines()) == 1
