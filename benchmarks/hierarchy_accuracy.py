"""Hierarchy reconciliation accuracy (run: .venv/bin/python benchmarks/hierarchy_accuracy.py [--quick]).

Measures what issue 3 asks of the reconciled hierarchy (team x GPU type -> team -> GPU type -> organisation):
accuracy at every level no worse than the unreconciled (base) forecasts. For each data set and origin, the
usage is cut so that its last 168 hours are held out; :func:`forecasting.hierarchy.hierarchy_holdout` forecasts
every distinct node from the hours before (the engine's default model set, CV choice and calibration), reconciles
the same base forecasts with each method of ``--methods`` and scores every level on the held-out hours.

Units: MAE in GPUs (GPU-hours per hour), averaged over a level's nodes; the numbers printed are ratios
*reconciled MAE / base MAE* of the same level and hold-out (< 1: reconciliation helped; so the machine's speed
and the data's scale do not matter), plus the p10-p90 coverage of the held-out hours (target 0.8).

Data sets (all canonical usage frames ``timestamp, team, gpu_type, gpus``):

- ``helios``: SenseTime Helios Earth, May 2020, 16 teams (VCs) on one GPU model (``load_sample("helios")``):
  levels total (= the GPU-type node) and team (= team/gpu_type).
- ``alibaba_qos``: Alibaba cluster-trace-gpu-v2023 (openb), GPUs in use per QoS class
  (``benchmarks/data/openb_gpu_hourly_by_qos.csv``): team = QoS class (LS, BE, Burstable, Guaranteed), one GPU
  type; the same two-level structure as Helios.
- ``alibaba_gpu_spec``: the same trace per GPU-model constraint (``openb_gpu_hourly_by_gpu_spec.csv``, 17
  constraints such as ``T4`` or ``V100M16|V100M32``, ``any`` without one). The file has no team column, so
  team = the constraint, and gpu_type = the catalog GPU model the constraint is billed on in
  ``benchmarks/plan_backtest.py`` (the cheapest model it allows: T4, V100 or A100). This gives a real
  three-level structure: total -> 3 GPU models -> 17 constraints (a team is its one bottom series). One GPU
  type per constraint would collapse it to total + 17 series; the per-QoS x GPU-model split of the pod table
  (``plan_backtest.alibaba_usage``) is a second view of the same pods, not an independent data set.
  Alibaba timestamps are SYNTHETIC (1970 + hour offset); licence in ``benchmarks/data/ALIBABA_SOURCE.md``.
- ``synthetic``: the shipped SYNTHETIC organisation (22 teams, 4 GPU models, 30 series;
  ``load_sample("synthetic")``), a real grouped structure (8 teams use two GPU models).

Every cut is trimmed to the engine's fitting history (``ForecastConfig.history_hours``, 8 weeks) plus the
hold-out and one spare week before fitting: the engine drops the older hours anyway (the scores are identical
to those of the untrimmed cut; the spare week keeps outage filling's look-back).

Origins: ``--origins N`` hold-outs, 168 hours apart, the first ending at the data's last hour;
``--skip K`` starts K weeks earlier (tuning hold-outs that do not overlap the reported ones: ``--skip 3``).
Helios (744 h) and Alibaba (815 h) have room for 3 origins only (the third leaves Helios 240 h of history); an
origin that leaves less than :data:`MIN_HISTORY_HOURS` of history is skipped and said so.

Output: per hold-out and method the ratio per level, then per method the worst ratio and the geometric mean
over hold-outs per level, how many hold-outs were more than 1% worse than base at some level, and how many
fell back to ``wls_struct`` (a residual method needs at least 2 CV errors of every series: a series that
started a few days before the origin makes the whole hierarchy fall back). A fallback is scored under the
method asked for, since that is what a user of the method gets.
``--quick``: one origin per data set. The 12 default hold-outs take about 10 s on 2 cores (the default model
set; base forecasts are made once per hold-out and shared by every method).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.engine import ForecastConfig, default_n_jobs
from forecasting.hierarchy import LEVEL, LEVELS, METHODS, hierarchy_holdout
from forecasting.samples import load_sample
from optimizer.catalog import load_catalog
from usage import schema as S

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.plan_backtest import ALIBABA_GPU_MAP, cheapest_model  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
HOLDOUT_HOURS = 168
MIN_HISTORY_HOURS = 240
"""An origin is scored only when it leaves at least this much history before its hold-out (ten days: Helios's
third origin; the engine then drops SeasonalNaive168, which needs more)."""
DEFAULT_METHODS = ("wls_var_total", "wls_var", "bottom_up")
WORSE = 1.01
"""A hold-out counts as worse than base at a level when its ratio exceeds this."""


def helios() -> pd.DataFrame:
    return load_sample("helios")


def alibaba_qos() -> pd.DataFrame:
    df = pd.read_csv(DATA / "openb_gpu_hourly_by_qos.csv")
    usage = pd.DataFrame({S.TIMESTAMP: pd.to_datetime(df["timestamp"]), S.TEAM: df["team"], S.GPU_TYPE: "gpu",
                          S.GPUS: df["gpus_in_use"].astype(float)})
    return S.validate_usage(usage, "openb_gpu_hourly_by_qos.csv")[0]


def alibaba_gpu_spec() -> pd.DataFrame:
    df = pd.read_csv(DATA / "openb_gpu_hourly_by_gpu_spec.csv")
    catalog = load_catalog()
    everything = set(ALIBABA_GPU_MAP.values())
    model = {spec: cheapest_model({ALIBABA_GPU_MAP[s] for s in spec.split("|")} if spec != "any" else everything,
                                  catalog) for spec in df["gpu_type"].unique()}
    usage = pd.DataFrame({S.TIMESTAMP: pd.to_datetime(df["timestamp"]),
                          S.TEAM: df["gpu_type"].str.replace("|", "/", regex=False),
                          S.GPU_TYPE: df["gpu_type"].map(model), S.GPUS: df["gpus_in_use"].astype(float)})
    return S.validate_usage(usage, "openb_gpu_hourly_by_gpu_spec.csv")[0]


def synthetic() -> pd.DataFrame:
    return load_sample("synthetic")


DATASETS = {"helios": helios, "alibaba_qos": alibaba_qos, "alibaba_gpu_spec": alibaba_gpu_spec,
            "synthetic": synthetic}


def cuts(usage: pd.DataFrame, origins: int, skip: int, keep_hours: int | None,
         ) -> list[tuple[int, pd.DataFrame | None]]:
    """``(weeks back, usage up to that origin's hold-out end)`` per origin; None when too short.

    Args:
        usage: canonical usage frame.
        origins: how many hold-outs.
        skip: weeks between the data's last hour and the end of the first hold-out.
        keep_hours: hours kept before the hold-out (None = all).
    """
    last = usage[S.TIMESTAMP].max()
    first = usage[S.TIMESTAMP].min()
    out = []
    for back in range(skip, skip + origins):
        end = last - pd.Timedelta(hours=HOLDOUT_HOURS * back)
        start_holdout = end - pd.Timedelta(hours=HOLDOUT_HOURS - 1)
        if (start_holdout - first) / pd.Timedelta(hours=1) < MIN_HISTORY_HOURS:
            out.append((back, None))
            continue
        cut = usage[usage[S.TIMESTAMP] <= end]
        if keep_hours is not None:
            cut = cut[cut[S.TIMESTAMP] >= start_holdout - pd.Timedelta(hours=keep_hours)]
        out.append((back, cut.reset_index(drop=True)))
    return out


def run(datasets: list[str], origins: int, skip: int, methods: list[str], config: ForecastConfig,
        say=print) -> pd.DataFrame:
    """One row per (data set, weeks back, method, level): the columns of ``hierarchy_holdout`` (``method`` the
    method asked for) plus ``used`` (the method that ran), ``dataset`` and ``weeks_back``."""
    keep = None if config.history_hours is None else config.history_hours + HOLDOUT_HOURS
    frames = []
    for name in datasets:
        usage = DATASETS[name]()
        for back, cut in cuts(usage, origins, skip, keep):
            if cut is None:
                say(f"{name}: origin {back} weeks back leaves less than {MIN_HISTORY_HOURS} h of history; skipped")
                continue
            started = time.perf_counter()
            table = hierarchy_holdout(cut, HOLDOUT_HOURS, config, methods=methods)
            say(f"{name}: origin {back} weeks back scored in {time.perf_counter() - started:.0f} s")
            # a method that fell back (e.g. ``wls_var_total->wls_struct``: a series with < 2 CV errors) is
            # scored under the method asked for; ``used`` keeps what ran
            table["used"] = table["method"]
            table["method"] = table["method"].str.split("->").str[0]
            frames.append(table.assign(dataset=name, weeks_back=back))
    if not frames:
        raise SystemExit("no origin has enough history")
    return pd.concat(frames, ignore_index=True)


def per_holdout(table: pd.DataFrame) -> pd.DataFrame:
    """Ratio reconciled MAE / base MAE: rows (data set, weeks back, method), columns the levels."""
    rec = table[table["method"] != "base"]
    wide = rec.pivot_table(index=["dataset", "weeks_back", "method"], columns=LEVEL, values="mae_vs_base",
                           sort=False)
    return wide.reindex(columns=[lv for lv in LEVELS if lv in wide.columns])


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per method and level: worst and geometric-mean ratio over hold-outs, hold-outs worse than :data:`WORSE`,
    hold-outs where the method fell back to another one, and mean p10-p90 coverage (the ``base`` row: the
    unreconciled forecasts' coverage)."""
    rows = []
    for (method, level), g in table.groupby(["method", LEVEL], sort=False):
        ratio = g["mae_vs_base"].to_numpy(dtype=float)
        ratio = ratio[np.isfinite(ratio)]
        rows.append({"method": method, LEVEL: level, "holdouts": len(ratio), "worst": ratio.max(),
                     "geo_mean": float(np.exp(np.log(ratio).mean())), "worse": int((ratio > WORSE).sum()),
                     "fallbacks": int((g["used"] != g["method"]).sum()),
                     "coverage_p10_p90": g["coverage_p10_p90"].mean()})
    out = pd.DataFrame(rows)
    out[LEVEL] = pd.Categorical(out[LEVEL], categories=list(LEVELS), ordered=True)
    return out.sort_values(["method", LEVEL], key=lambda s: s.map(_method_order) if s.name == "method" else s
                           ).reset_index(drop=True)


def _method_order(method: str) -> int:
    return 0 if method == "base" else 1 + (METHODS.index(method) if method in METHODS else len(METHODS))


def markdown(summ: pd.DataFrame) -> str:
    """Summary as a markdown table: one row per method, worst / geometric mean per level."""
    levels = [lv for lv in LEVELS if lv in set(summ[LEVEL].astype(str))]
    head = ("| method | " + " | ".join(f"{lv} worst / mean" for lv in levels)
            + f" | hold-outs > {WORSE} at some level | fell back |")
    lines = [head, "|---" * (len(levels) + 3) + "|"]
    rec = summ[summ["method"] != "base"]
    for method, g in rec.groupby("method", sort=False):
        g = g.set_index(g[LEVEL].astype(str))
        cells = [f"{g.loc[lv, 'worst']:.3f} / {g.loc[lv, 'geo_mean']:.3f}" for lv in levels]
        lines.append(f"| `{method}` | " + " | ".join(cells)
                     + f" | {int(g['worse_any'].iloc[0])} | {int(g['fallbacks'].iloc[0])} |")
    return "\n".join(lines)


def worse_anywhere(table: pd.DataFrame) -> pd.Series:
    """Per method: hold-outs with a ratio above :data:`WORSE` at any level."""
    rec = table[table["method"] != "base"]
    worst = rec.groupby(["method", "dataset", "weeks_back"])["mae_vs_base"].max()
    return (worst > WORSE).groupby("method").sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--origins", type=int, default=3, help="hold-outs per data set, a week apart")
    parser.add_argument("--skip", type=int, default=0, help="weeks between the data's end and the first hold-out")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help=f"comma-separated, from {', '.join(METHODS)}")
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, from {', '.join(DATASETS)}")
    parser.add_argument("--quick", action="store_true", help="one origin per data set")
    parser.add_argument("--csv", type=Path, help="also write every (hold-out, method, level) row to this CSV")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    for value, allowed, what in ((methods, METHODS, "--methods"), (datasets, DATASETS, "--datasets")):
        bad = [v for v in value if v not in allowed]
        if bad:
            parser.error(f"{what}: unknown '{bad[0]}' (choose from {', '.join(allowed)})")
    origins = 1 if args.quick else args.origins
    config = ForecastConfig(n_jobs=default_n_jobs())
    config = replace(config, horizon_hours=HOLDOUT_HOURS)
    started = time.perf_counter()
    table = run(datasets, origins, args.skip, methods, config)
    summ = summary(table)
    worse = worse_anywhere(table)
    summ["worse_any"] = summ["method"].map(worse).fillna(0).astype(int)
    if args.csv:
        from usage.io import write_csv_atomic

        write_csv_atomic(table, args.csv)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        print(f"\nreconciled MAE / base MAE per hold-out ({HOLDOUT_HOURS} h held out; weeks_back = hold-out end "
              "in weeks before the data's end):")
        print(per_holdout(table).to_string())
        fell = table[table["used"] != table["method"]].drop_duplicates(["dataset", "weeks_back", "used"])
        for _, r in fell.iterrows():
            print(f"{r['dataset']} {r['weeks_back']} weeks back: {r['used']} (fallback)")
        print(f"\nover {table.groupby(['dataset', 'weeks_back']).ngroups} hold-outs (worse: ratio > {WORSE}):")
        print(summ.drop(columns="worse_any").to_string(index=False))
    print("\n" + markdown(summ))
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
