"""Forecast accuracy on real GPU traces (run: .venv/bin/python benchmarks/forecast_accuracy.py [--models full]).

Traces:
- SenseTime Helios Earth, May 2020: 16 teams (VCs), hourly GPU demand (data_samples/helios_earth_may2020.csv);
- Alibaba cluster-trace-gpu-v2023 (openb), about 34 days hourly: GPUs in use per QoS class (4 series) and
  per GPU-model constraint (17 series); copies in benchmarks/data/ (research-use licence, see
  benchmarks/data/ALIBABA_SOURCE.md). Their timestamps are synthetic (1970 + hour offset): only the
  hourly and 24/168-hour structure is meaningful.

Each trace is backtested from ``--origins`` rolling origins 168 hours apart, each forecasting the next
168 hours (the last weeks held out), and scored per series and for the total against the naive
baselines fitted on the same data (ratios, so the machine's speed does not matter). A second table scores
every origin on its own (series level; the best baseline is picked per origin), so one lucky week cannot
hide behind the average. ``--calibration series`` reproduces the ranges from the series' own CV errors only.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting import schema as S
from forecasting.backtest import METHOD_SELECTED, BacktestConfig, rolling_backtest
from forecasting.engine import ForecastConfig, default_n_jobs
from forecasting.models import BASELINES, MODEL_SETS
from forecasting.samples import load_sample

DATA = Path(__file__).resolve().parent / "data"


def helios() -> pd.DataFrame:
    return S.to_long(load_sample("helios"))


def alibaba_qos() -> pd.DataFrame:
    df = pd.read_csv(DATA / "openb_gpu_hourly_by_qos.csv")
    return pd.DataFrame({S.UID: df["team"] + S.UID_SEP + "gpu", S.DS: pd.to_datetime(df["timestamp"]),
                         S.Y: df["gpus_in_use"].astype(float)})


def alibaba_spec() -> pd.DataFrame:
    df = pd.read_csv(DATA / "openb_gpu_hourly_by_gpu_spec.csv")
    return pd.DataFrame({S.UID: df["gpu_type"].str.replace("|", "/", regex=False) + S.UID_SEP + "gpu",
                         S.DS: pd.to_datetime(df["timestamp"]), S.Y: df["gpus_in_use"].astype(float)})


TRACES = {"helios_per_team": helios, "alibaba_per_qos": alibaba_qos, "alibaba_per_gpu_spec": alibaba_spec}


def per_origin(points: pd.DataFrame) -> pd.DataFrame:
    """Series-level scores of each origin: mean MASE of the selected forecasts over the best baseline's,
    and p10-p90 coverage."""
    pts = points[points["level"] == "series"]
    node = pts.groupby(["origin", "method", "key"]).agg(mae=("abs_err", "mean"), scale=("scale", "mean"),
                                                         in80=("in80", "mean"))
    node["mase"] = node["mae"] / node["scale"]
    lv = node.groupby(["origin", "method"]).agg(mase=("mase", "mean"), coverage_80=("in80", "mean")).reset_index()
    rows = []
    for origin, g in lv.groupby("origin"):
        g = g.set_index("method")
        base = g.loc[[b for b in BASELINES if b in g.index], "mase"]
        rows.append({"origin": origin, "mase_selected": g.loc[METHOD_SELECTED, "mase"], "best_baseline": base.idxmin(),
                     "ratio": g.loc[METHOD_SELECTED, "mase"] / base.min() if base.min() > 0 else np.nan,
                     "coverage_80": g.loc[METHOD_SELECTED, "coverage_80"]})
    return pd.DataFrame(rows)


def run(models: str, origins: int, calibration: str = "blend") -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, origin_rows = [], []
    for name, load in TRACES.items():
        long = load()
        t0 = time.perf_counter()
        config = ForecastConfig(models=MODEL_SETS[models], n_jobs=default_n_jobs(MODEL_SETS[models]))
        config = replace(config, calibration=calibration)
        res = rolling_backtest(long, config, BacktestConfig(horizon_hours=168, origins=origins))
        seconds = time.perf_counter() - t0
        for _, r in res.summary[res.summary["level"].isin(["series", "total"])].iterrows():
            rows.append({"trace": name, "level": r["level"], "nodes": r["nodes"],
                         "mase_selected": r["mase_selected"], "best_baseline": r["best_baseline"],
                         "mase_best_baseline": r["mase_best_baseline"], "ratio": r["mase_ratio"],
                         "coverage_80": r["coverage_80"], "coverage_90": r["coverage_90"], "seconds": seconds})
        origin_rows.append(per_origin(res.points).assign(trace=name))
    return pd.DataFrame(rows), pd.concat(origin_rows, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="default", choices=sorted(MODEL_SETS))
    parser.add_argument("--origins", type=int, default=2)
    parser.add_argument("--calibration", default="blend", choices=["blend", "series"])
    args = parser.parse_args()
    table, origins = run(args.models, args.origins, args.calibration)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        print(f"model set: {args.models}; calibration: {args.calibration}; {args.origins} origins x 168 h")
        print(table.to_string(index=False))
        print("\nper origin (series level):")
        cols = ["trace", "origin", "mase_selected", "best_baseline", "ratio", "coverage_80"]
        print(origins[cols].to_string(index=False))


if __name__ == "__main__":
    main()
