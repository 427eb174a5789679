"""Full-term plan backtest: commitments billed over their whole 1-year terms on the realised demand
(run: .venv/bin/python benchmarks/plan_backtest_term.py [--set tuning|reporting|all] [--variant NAME]).

Only the shipped SYNTHETIC organisation is long enough (18 months: 2024-06-01 to 2025-11-30): a 1-year term bought at
an origin must end inside the trace, so origins lie between 2024-09 (three months of history) and 2024-12-01. For each
origin the plan is made on the usage strictly before it (``gpuplan plan``'s pipeline: forecast, sample paths, replayed
history, long-term forecast to the end of the term, the MILP over the term) and billed on the realised demand of the
whole term (``optimizer.backtest_plan`` with ``full_term``), next to the same optimizer judging commitments on the
720-hour window alone, all on-demand, the cloud look-back recommenders (7/30/60 days) and the hindsight optimum over the
term. Ratios of USD totals, with and without spot, with no cost of capital (the bill is then what every plan
minimises, and the hindsight optimum bounds it).

The split of origins into tuning and reporting sets is made once, here: origins every 14 days back from 2024-12-01;
the four earliest are TUNING (every setting was chosen on them), the three latest are REPORTING (reported whatever they
show). Consecutive origins share most of their term, so the sets are not independent; they are kept apart anyway.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from forecasting.samples import load_sample
from optimizer.backtest_plan import BacktestPlanConfig, backtest_plan, forecast_planner, verdict
from optimizer.catalog import load_catalog

LAST_ORIGIN = pd.Timestamp("2024-12-01")
STEP_HOURS = 14 * 24
ORIGINS = tuple(LAST_ORIGIN - pd.Timedelta(hours=STEP_HOURS * i) for i in range(7))[::-1]
TUNING = ORIGINS[:4]
REPORTING = ORIGINS[4:]
WINDOW_HOURS = 720

VARIANTS: dict[str, dict] = {
    "default": {},
    "no_replay_tail": {"replay_tail": False},
    "random_walk_spread": {"longterm_settings": {"spread_growth": 0.5}},
    "neither": {"replay_tail": False, "longterm_settings": {"spread_growth": 0.5}},
    "centred_paths": {},
}
"""Planner settings compared on the tuning origins (``forecast_planner`` keyword arguments): ``default`` is
``optimizer.term``'s (replays carried on after the window, ``REPLAY_TAIL``; the long-term spread kept at what its
cross-validation measured, ``LONGTERM_SETTINGS``); the others switch one or both off; ``centred_paths`` plans on
sample paths shifted onto the point forecast (``optimizer.inputs.PLAN_PATHS_CENTRED``)."""


def run(origins: tuple[pd.Timestamp, ...], variant: str, spot_modes: tuple[bool, ...]) -> tuple[pd.DataFrame,
                                                                                                 pd.DataFrame, float]:
    usage = load_sample("synthetic")
    catalog = load_catalog()
    import optimizer.inputs as inputs

    inputs.PLAN_PATHS_CENTRED = variant == "centred_paths"   # scenarios averaging to the forecast's mean
    planner = forecast_planner(**VARIANTS[variant])
    t0 = time.perf_counter()
    frames = []
    for origin in origins:
        config = BacktestPlanConfig(hours=WINDOW_HOURS, at=origin, origins=1, full_term=True, spot_modes=spot_modes)
        frames.append(backtest_plan(usage, catalog, config, planner=planner).per_origin)
    per_origin = pd.concat(frames, ignore_index=True)
    from optimizer.backtest_plan import summarise

    return per_origin, summarise(per_origin), time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=("tuning", "reporting", "all"), default="reporting")
    parser.add_argument("--variant", choices=tuple(VARIANTS), default="default")
    parser.add_argument("--spot", choices=("both", "yes", "no"), default="both")
    parser.add_argument("--out", type=Path, default=None, help="also write the per-origin rows as CSV")
    args = parser.parse_args()
    origins = {"tuning": TUNING, "reporting": REPORTING, "all": ORIGINS}[args.set]
    spot_modes = {"both": (True, False), "yes": (True,), "no": (False,)}[args.spot]
    per_origin, summary, seconds = run(origins, args.variant, spot_modes)
    with pd.option_context("display.width", 220, "display.max_columns", 20, "display.float_format", "{:,.4f}".format):
        print(f"== synthetic org, {args.set} origins ({', '.join(f'{o:%Y-%m-%d}' for o in origins)}), 1-year terms, "
              f"variant {args.variant} ({seconds:.0f} s)")
        print(summary[["spot", "method", "billed_usd", "vs_hindsight", "savings_pct", "worst_vs_hindsight",
                       "spot_share", "origins"]].to_string(index=False))
        wide = per_origin.pivot_table(index=["spot", "origin"], columns="method", values="vs_hindsight")
        print(wide.to_string())
    for line in verdict(summary):
        print("  " + line)
    if args.out is not None:
        from usage.io import write_csv_atomic

        write_csv_atomic(per_origin, args.out)


if __name__ == "__main__":
    main()
