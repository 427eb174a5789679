"""Hold-out check of the whole pipeline on the shipped samples (run: .venv/bin/python benchmarks/pipeline_backtest.py).

For each sample: forecast the last ``H`` hours from the history before them and compare with the naive
baselines fitted on the same data; then plan that window from the forecast, bill the plan on the
*realised* demand with the plan.json serving rule, and compare with all on-demand and with the hindsight
plan (``optimizer.baselines.hindsight_plan``: the same optimizer given the realised demand as its only
scenario). Ratios, not seconds, so the numbers do not depend on how busy this machine is. The look-back
recommenders and several origins are in ``benchmarks/plan_backtest.py``.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from forecasting.backtest import holdout_accuracy
from forecasting.engine import ForecastConfig, default_n_jobs
from forecasting.samples import load_sample
from optimizer.baselines import hindsight_plan
from optimizer.billing import bill
from optimizer.catalog import load_catalog
from optimizer.inputs import PlanConfig, scenarios_from_paths
from optimizer.solve import make_plan
from usage import schema as S


def run(sample: str, hours: int, allow_spot: bool, scenarios: str = "paths") -> dict[str, float]:
    usage = load_sample(sample)
    cat = load_catalog()
    start = usage[S.TIMESTAMP].max() - pd.Timedelta(hours=hours - 1)
    history, actual = usage[usage[S.TIMESTAMP] < start], usage[usage[S.TIMESTAMP] >= start]
    t0 = time.perf_counter()
    acc = holdout_accuracy(usage, hours, ForecastConfig(n_jobs=default_n_jobs()))
    overall = acc.overall.set_index("method")
    from app.cli import run_forecast

    res = run_forecast(history, hours, 1344)
    config = PlanConfig(start=start, hours=hours, allow_spot=allow_spot)
    if scenarios == "paths":
        result = make_plan(None, cat, config, scenarios=scenarios_from_paths(res.long, config, n_paths=50))
    else:
        result = make_plan(res.forecast, cat, config)
    ours = result.plan
    hindsight = hindsight_plan(actual, cat, config)
    billed = bill(ours, actual).totals()
    best = bill(hindsight, actual).totals()
    return {
        "sample": sample, "hours": hours, "spot": allow_spot, "scenarios": scenarios,
        "mae_selected": overall.loc["selected", "total_mae_gpus"],
        "mae_vs_snaive24": overall.loc["selected", "total_mae_gpus"] / overall.loc["SeasonalNaive24", "total_mae_gpus"],
        "mae_vs_snaive168": overall.loc["selected", "total_mae_gpus"]
        / overall.loc["SeasonalNaive168", "total_mae_gpus"],
        "mae_vs_naive": overall.loc["selected", "total_mae_gpus"] / overall.loc["Naive", "total_mae_gpus"],
        "coverage_p10_p90": overall.loc["selected", "coverage_p10_p90"],
        "billed_usd": billed["total_usd"], "all_on_demand_usd": billed["all_on_demand_usd"],
        "savings_pct": 100 * (1 - billed["total_usd"] / billed["all_on_demand_usd"]),
        "vs_hindsight": billed["total_usd"] / best["total_usd"],
        "commitment_utilization": billed["commitment_utilization"],
        # the plan billed on its own scenarios vs the MILP's expected cost (how far the model is from the bill)
        "bill_vs_model_pct": 100 * (ours.expected.total_usd / result.lp_objective_usd - 1),
        "hindsight_bill_vs_model_pct": 100 * (best["total_usd"] / hindsight.assumptions["model_expected_usd"] - 1),
        "seconds": time.perf_counter() - t0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Helios only")
    parser.add_argument("--scenarios", default="paths", choices=["paths", "quantiles", "both"])
    args = parser.parse_args()
    cases = [("helios", 168, True), ("helios", 168, False)]
    if not args.quick:
        cases += [("synthetic", 720, True), ("synthetic", 720, False)]
    kinds = ["paths", "quantiles"] if args.scenarios == "both" else [args.scenarios]
    rows = [run(*c, scenarios=k) for c in cases for k in kinds]
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:,.3f}".format):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
