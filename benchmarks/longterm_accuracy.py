"""Long-term forecast accuracy with and without the estimated trend
(run: .venv/bin/python benchmarks/longterm_accuracy.py [--sets tuning,reporting] [--variants on,off]).

The only long trace is the SYNTHETIC organisation (``data_samples/synthetic_org.parquet``, 2024-06-01 to
2025-11-30, 548 days, 30 series). Each hold-out cuts the usage after its last day and runs
:func:`forecasting.longterm.holdout_longterm`: fit on the days before the hold-out, forecast its days, score
the daily means. The hold-outs are split ONCE into two sets that do not overlap in time:

* ``tuning`` (settings are chosen on these only): 90-day hold-outs ending 2025-03-05, 2025-04-04, 2025-05-04
  and 2025-06-03 (188, 218, 248 and 278 days of history) and a 180-day hold-out ending 2025-06-03 (188 days).
* ``short`` (tuning era too; only used to judge the minimum history of a trend): 90-day hold-outs ending
  2024-12-05, 2025-01-04 and 2025-02-03 (98, 128 and 158 days of history).
* ``reporting`` (never used to choose a setting): the last 90 days (2025-09-02 .. 2025-11-30, 458 days of
  history), the last 180 days (2025-06-04 .. 2025-11-30, 368 days) and the last 365 days (2024-12-01 ..
  2025-11-30, 183 days: the only hold-out as long as a 1-year commitment term; its days include the tuning
  hold-outs', so it illustrates the long horizon rather than giving independent evidence).

Scores per hold-out and variant (units: GPU-days = GPUs averaged over a day, summed over days and series):

* ``abs_err``: total absolute error of the daily means over every series and held-out day, and its ratio to
  the plain ``SeasonalNaive`` (7 days) and ``Naive`` fitted on the same days (no trend: the baselines).
* ``cov80`` / ``cov90``: share of held-out series-days inside p10-p90 / p05-p95 (targets 0.8 / 0.9);
  ``mean_outside_p10_p90``: forecast rows (of ``rows``) whose mean lies outside p10-p90.
* ``bias``: forecast GPU-hours / realised GPU-hours - 1 over the hold-out, for the organisation and each GPU
  model (the level the purchase planner commits at).
* growth recovered vs realised: for the organisation and each GPU model, the estimated rate (the trend
  frame's ``gpu_type_rate``; the organisation has none), :func:`forecasting.longterm.annual_growth` of the
  forecast's daily totals over the hold-out and of the realised ones (a 90-day realised growth is noisy:
  one 3-week job of 128 H100 moves it by tens of points).

Variants (``--variants``, comma-separated): ``on`` (the default config: estimated trend), ``off``
(``trend="none"``, the forecast before the trend existed) and the settings tried while tuning (see
:data:`VARIANTS`). The default run (all 11 hold-outs, on and off, plus the two baselines) takes about a
minute on 2 cores.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from forecasting.events import DATE
from forecasting.longterm import GPU_TYPE_RATE, LongTermConfig, annual_growth, holdout_longterm
from forecasting.samples import load_sample
from usage import schema as S


@dataclass(frozen=True)
class Holdout:
    """One hold-out: the ``days`` days ending on ``end`` (inclusive), forecast from the days before."""

    name: str
    set: str
    end: str
    days: int


HOLDOUTS = (
    Holdout("t90-0305", "tuning", "2025-03-05", 90),
    Holdout("t90-0404", "tuning", "2025-04-04", 90),
    Holdout("t90-0504", "tuning", "2025-05-04", 90),
    Holdout("t90-0603", "tuning", "2025-06-03", 90),
    Holdout("t180-0603", "tuning", "2025-06-03", 180),
    Holdout("s90-1205", "short", "2024-12-05", 90),
    Holdout("s90-0104", "short", "2025-01-04", 90),
    Holdout("s90-0203", "short", "2025-02-03", 90),
    Holdout("r90-last", "reporting", "2025-11-30", 90),
    Holdout("r180-last", "reporting", "2025-11-30", 180),
    Holdout("r365-last", "reporting", "2025-11-30", 365),
)
"""The split, fixed before any setting was chosen: tuning hold-outs end before the reporting ones start.
``short`` (also before the reporting days) only serves to choose the minimum history for a trend."""
SETS = ("tuning", "short", "reporting")

VARIANTS: dict[str, dict] = {
    "on": {},
    "off": {"trend": "none"},
    # tried while tuning (on the tuning hold-outs; min90 on the short ones), each one change from "on"
    "series": {"trend_calibrate": False},
    "gpu": {"trend_series_weight": 0.0},
    "half": {"trend_series_weight": 0.5},
    "least_squares": {"trend_method": "least_squares"},
    "window180": {"trend_window_days": 180},
    "min90": {"trend_min_days": 90},
}
"""``on`` is the default :class:`~forecasting.longterm.LongTermConfig`: Theil-Sen on weekly means of the last
365 days, series' own rates shifted to their GPU model's total (weight 1, calibrated), at least 180 days."""


def cut(usage: pd.DataFrame, end: str) -> pd.DataFrame:
    """Usage up to the end of day ``end`` (UTC)."""
    return usage[usage[S.TIMESTAMP] < pd.Timestamp(end) + pd.Timedelta(days=1)].reset_index(drop=True)


def _levels(frame: pd.DataFrame, col: str) -> dict[str, pd.Series]:
    """Daily totals of the organisation and each GPU model."""
    out = {"organisation": frame.groupby(DATE)[col].sum()}
    for gpu, g in frame.groupby(S.GPU_TYPE):
        out[str(gpu)] = g.groupby(DATE)[col].sum()
    return out


def score(h: Holdout, variant: str, usage: pd.DataFrame, baselines: bool) -> tuple[dict, list[dict]]:
    """(one summary row, growth rows per level) of hold-out ``h`` under ``variant``."""
    config = replace(LongTermConfig(), **VARIANTS[variant])
    t0 = time.perf_counter()
    res = holdout_longterm(cut(usage, h.end), h.days, config,
                           baselines=("SeasonalNaive", "Naive") if baselines else ())
    overall = res.overall.set_index("method")
    fc = res.forecast.daily
    fc = fc[fc[DATE] >= res.holdout_start]
    outside = int(((fc[S.MEAN] < fc["p10"] - 1e-9) | (fc[S.MEAN] > fc["p90"] + 1e-9)).sum())
    row = {"holdout": h.name, "set": h.set, "days": h.days, "variant": variant,
           "history_days": int(res.forecast.history[DATE].nunique()),
           "abs_err": overall.loc["selected", "abs_err_gpu_days"],
           "cov80": overall.loc["selected", "coverage_p10_p90"], "cov90": overall.loc["selected", "coverage_p05_p95"],
           "mean_outside_p10_p90": outside, "rows": len(fc), "seconds": time.perf_counter() - t0}
    for base in ("SeasonalNaive", "Naive"):
        row[f"abs_err_{base}"] = overall.loc[base, "abs_err_gpu_days"] if base in overall.index else np.nan
    rates = res.forecast.trend.groupby(S.GPU_TYPE)[GPU_TYPE_RATE].first()
    actual, forecast = _levels(res.actual, S.GPUS), _levels(fc, S.MEAN)
    growth = []
    for level, a in actual.items():
        f = forecast.get(level, pd.Series(dtype=float))
        growth.append({"holdout": h.name, "set": h.set, "variant": variant, "level": level,
                       "estimated": rates.get(level, np.nan), "forecast": annual_growth(f.to_numpy()),
                       "realised": annual_growth(a.to_numpy()), "bias": f.sum() / a.sum() - 1})
        row[f"bias_{level}"] = f.sum() / a.sum() - 1
    return row, growth


def run(sets: list[str], variants: list[str], say=print) -> tuple[pd.DataFrame, pd.DataFrame]:
    usage = load_sample("synthetic")
    rows, growth = [], []
    for h in (h for h in HOLDOUTS if h.set in sets):
        for i, variant in enumerate(variants):
            row, g = score(h, variant, usage, baselines=i == 0)
            if i > 0:
                for base in ("SeasonalNaive", "Naive"):
                    row[f"abs_err_{base}"] = rows[-i][f"abs_err_{base}"]
            rows.append(row)
            growth.extend(g)
            say(f"{h.name} {variant}: abs_err {row['abs_err']:,.0f} GPU-days "
                f"(SeasonalNaive {row['abs_err_SeasonalNaive']:,.0f}), cov80 {row['cov80']:.3f} "
                f"[{row['seconds']:.0f} s]")
    table = pd.DataFrame(rows)
    table["vs_SeasonalNaive"] = table["abs_err"] / table["abs_err_SeasonalNaive"]
    table["vs_Naive"] = table["abs_err"] / table["abs_err_Naive"]
    return table, pd.DataFrame(growth)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per set and variant: summed errors over the set's hold-outs, their ratios, mean coverages, bias range."""
    bias_cols = [c for c in table.columns if c.startswith("bias_")]
    g = table.groupby(["set", "variant"], sort=False)
    out = g[["abs_err", "abs_err_SeasonalNaive", "abs_err_Naive"]].sum()
    out["vs_SeasonalNaive"] = out["abs_err"] / out["abs_err_SeasonalNaive"]
    out["vs_Naive"] = out["abs_err"] / out["abs_err_Naive"]
    out["worst_vs_SeasonalNaive"] = g["vs_SeasonalNaive"].max()
    out[["cov80", "cov90"]] = g[["cov80", "cov90"]].mean()
    out[["mean_outside_p10_p90", "rows"]] = g[["mean_outside_p10_p90", "rows"]].sum()
    out["mean_abs_bias_gpu"] = g[[c for c in bias_cols if c != "bias_organisation"]].apply(
        lambda x: np.nanmean(np.abs(x.to_numpy())))
    out["mean_abs_bias_org"] = g["bias_organisation"].apply(lambda x: np.abs(x).mean())
    return out.reset_index()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="tuning,short,reporting", help=f"comma-separated, from {', '.join(SETS)}")
    parser.add_argument("--variants", default="on,off", help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--out", default=None, help="write the per-hold-out table as CSV")
    args = parser.parse_args(argv)
    sets, variants = args.sets.split(","), args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS] + [s for s in sets if s not in SETS]
    if unknown:
        parser.error(f"unknown variant or set {unknown[0]!r}")
    table, growth = run(sets, variants)
    pd.set_option("display.width", 200)
    print("\nper hold-out:")
    print(table.drop(columns=["seconds"]).round(3).to_string(index=False))
    print("\nsummary (errors summed over each set's hold-outs):")
    print(summary(table).round(3).to_string(index=False))
    print("\ngrowth (annual rates) estimated / forecast over the hold-out / realised, and bias:")
    print(growth.round(3).to_string(index=False))
    if args.out:
        table.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
