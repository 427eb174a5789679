"""Savings plans on the synthetic organisation (run: .venv/bin/python benchmarks/savings_plans.py).

One month's plan (2026-01, judged over the 1-year terms to 2027-01-01, 50 sample paths + 60 replayed days, spot
allowed) on the same scenarios, with three option sets: RI only (the GPU models solved one MILP each), RI + Compute SP
and RI + EC2 Instance SP (all models one joint MILP on joint cells). Printed: build and solve time as a ratio to the
RI-only plan in the same process, the plan's billed present value over the horizon and the model's, so the joint
cells' error is visible (model / bill), and what the savings plans buy.

Then laddering: a two-month window (2026-01 and 2026-02, 1,416 h) with RI + Compute SP bought at the window start
and laddered (RIs in any month of the horizon, savings plans in either month of the window), time as a ratio to the
first of the two.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pandas as pd

from app.cli import run_forecast
from forecasting.samples import load_sample
from optimizer.catalog import load_catalog
from optimizer.inputs import PlanConfig
from optimizer.solve import make_plan
from optimizer.term import NEAR_HOURS, plan_scenarios
from usage import schema as S

START = pd.Timestamp("2026-01-01")
HOURS = 744
LADDER_HOURS = 1416
OPTION_SETS = {
    "RI only": ("reserved_1y_no_upfront",),
    "RI + Compute SP": ("compute_sp_1y_no_upfront", "reserved_1y_no_upfront"),
    "RI + EC2 Instance SP": ("ec2_instance_sp_1y_no_upfront", "reserved_1y_no_upfront"),
}


def main() -> None:
    usage = load_sample("synthetic")
    history = usage[usage[S.TIMESTAMP] < START]
    cat = load_catalog()
    config = PlanConfig(start=START, hours=HOURS)
    near = min(HOURS, NEAR_HOURS)
    horizon = int((START + pd.Timedelta(hours=near) - history[S.TIMESTAMP].max()) / pd.Timedelta(hours=1)) - 1
    fc = run_forecast(history, horizon, 1344, None)
    base_seconds = None
    print(f"synthetic org, window {START:%Y-%m-%d} + {HOURS} h, horizon to {config.horizon_end:%Y-%m-%d}")
    for label, options in OPTION_SETS.items():
        cfg = replace(config, options=options)
        scenarios = plan_scenarios(cfg, history, long=fc.long, forecast=fc.forecast)
        t0 = time.perf_counter()
        result = make_plan(fc.forecast, cat, cfg, scenarios=scenarios)
        seconds = time.perf_counter() - t0
        base_seconds = base_seconds or seconds
        plan = result.plan
        e = plan.expected
        sps = [c for c in plan.commitments if c.is_savings_plan]
        ris = [c for c in plan.commitments if not c.is_savings_plan]
        bought = "; ".join(f"{c.purchase_option}{' ' + c.instance_family if c.instance_family else ''} "
                           f"{c.commitment_usd_per_hour:,.3f} USD/h (use {c.expected_utilization:.1%})" for c in sps)
        print(f"{label:22s} time x{seconds / base_seconds:4.2f} (build {result.build_seconds:5.1f} s, solve "
              f"{result.solve_seconds:5.1f} s) | PV {e.present_value_usd:,.0f} USD, model/bill "
              f"{result.lp_present_value_usd / e.present_value_usd:.4f} | window {e.total_usd:,.0f} USD | "
              f"{sum(c.count for c in ris)} RIs | {bought or 'no savings plan'}")
    two = PlanConfig(start=START, hours=LADDER_HOURS, options=OPTION_SETS["RI + Compute SP"])
    horizon = int((START + pd.Timedelta(hours=min(LADDER_HOURS, NEAR_HOURS)) - history[S.TIMESTAMP].max())
                  / pd.Timedelta(hours=1)) - 1
    fc = run_forecast(history, horizon, 1344, None)
    scenarios = plan_scenarios(two, history, long=fc.long, forecast=fc.forecast)
    base_seconds = None
    print(f"\nladdering, window {START:%Y-%m-%d} + {LADDER_HOURS} h, horizon to {two.horizon_end:%Y-%m-%d}")
    for label, ladder in (("bought at the start", False), ("laddered", True)):
        t0 = time.perf_counter()
        result = make_plan(fc.forecast, cat, replace(two, ladder=ladder), scenarios=scenarios)
        seconds = time.perf_counter() - t0
        base_seconds = base_seconds or seconds
        e = result.plan.expected
        sps = "; ".join(f"{c.commitment_usd_per_hour:,.3f} USD/h from {c.start:%Y-%m-%d}"
                        for c in result.plan.commitments if c.is_savings_plan)
        ris = sum(c.count for c in result.plan.commitments if not c.is_savings_plan)
        print(f"{label:22s} time x{seconds / base_seconds:4.2f} (solve {result.solve_seconds:5.1f} s) | PV "
              f"{e.present_value_usd:,.0f} USD | window {e.total_usd:,.0f} USD | {ris} RIs | Compute SP {sps}")


if __name__ == "__main__":
    main()
