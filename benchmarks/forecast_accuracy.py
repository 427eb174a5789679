"""Forecast accuracy on every public trace and the shipped samples, per horizon, on held-apart origins.

Run: ``.venv/bin/python benchmarks/forecast_accuracy.py [--set tuning|reporting|both] [--traces a,b]
[--horizons 24,168] [--config key=value ...]``

Traces (series = what a forecast is made for; hourly GPUs in use):
- ``helios``: SenseTime Helios Earth, May 2020, 16 teams (``data_samples/helios_earth_may2020.csv``, 744 h);
- ``alibaba_qos`` / ``alibaba_spec``: Alibaba cluster-trace-gpu-v2023 (openb), GPUs in use per QoS class
  (4 series) and per GPU-model constraint (17 series), 815 h (``benchmarks/data/``, research-use licence);
- ``philly``: Microsoft Philly, the whole cluster's active nodes (1 series, 1,771 h; ``benchmarks/data/``,
  CC BY 4.0): the only Philly series public data gives (no per-team log is available);
- ``synthetic``: the shipped synthetic organisation (30 team x GPU-type series, 18 months).

Horizons: 24, 168, 720 and 1,512 hours, each where the trace leaves at least :data:`MIN_HISTORY` hours of
history before its first origin (Helios and Alibaba: 24 and 168 h; Philly: up to 720 h; synthetic: all four).

**The split, made once and never changed** (:func:`origins`): per trace and horizon, origins are spaced
:data:`STEP` hours apart, counted back from the last hour that leaves a full horizon, at most :data:`MAX_ORIGINS`
of them and none with less than :data:`MIN_HISTORY` hours of history; the earlier half (rounded down) are
**tuning** origins, the later half **reporting** origins. Every engine setting, threshold and model-set rule
is chosen on ``--set tuning`` only; docs/benchmarks.md reports ``--set reporting`` even where it is worse.

Scores per trace x horizon x set, pooled over series and origins (series level):
- ``mae_ratio``: the selected forecast's mean absolute error over that of the best naive baseline
  (Naive, SeasonalNaive24, SeasonalNaive168: the one with the lowest MAE on that trace, horizon and set,
  chosen in hindsight, the hardest comparison);
- ``mase`` / ``mase_naive``: mean over series x origins of MAE / in-sample 24 h seasonal-naive MAE;
- ``pinball``: mean pinball loss over p05, p10, p50, p90, p95 divided by the same scale;
- ``cov80``: share of hours inside p10-p90 (target 75-85%), also per lead bucket (1-24, 25-168, 169-720,
  721-1,512 hours ahead) in the second table;
- by series type (:func:`series_type`, from the training part at each origin): intermittent (at least 30% zero
  hours), step-like (most hours do not change; the level moves in jumps), seasonal (hour-to-hour changes repeat
  24 or 168 hours later: autocorrelation of the changes above :data:`SEASONAL_ACF`), smooth (the rest).
"""

from __future__ import annotations

import argparse
import ast
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.engine import QUANTILES, ForecastConfig, forecast_long
from forecasting.models import BASELINES
from forecasting.samples import load_sample
from usage import schema as S

DATA = Path(__file__).resolve().parent / "data"
HORIZONS = (24, 168, 720, 1512)
STEP = {24: 24, 168: 48, 720: 168, 1512: 336}
"""Hours between origins per horizon."""
MAX_ORIGINS = {24: 14, 168: 10, 720: 8, 1512: 8}
MIN_HISTORY = 336
"""Fewest hours of history before an origin (two weeks: the engine's weekly baseline needs one)."""
LEAD_BUCKETS = ((1, 24), (25, 168), (169, 720), (721, 1512))
TYPES = ("smooth", "seasonal", "step-like", "intermittent")
SEASONAL_ACF = 0.3
"""A series is seasonal when its hour-to-hour changes correlate above this with those 24 or 168 hours earlier
(a random walk's changes do not correlate at all; a daily cycle's correlate close to 1)."""


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


def philly() -> pd.DataFrame:
    df = pd.read_csv(DATA / "philly_cluster_nodes_hourly.csv")
    return pd.DataFrame({S.UID: "philly" + S.UID_SEP + "nodes", S.DS: pd.to_datetime(df["timestamp"]),
                         S.Y: df["active_nodes"].astype(float)})


def synthetic() -> pd.DataFrame:
    return S.to_long(load_sample("synthetic"))


TRACES = {"helios": helios, "alibaba_qos": alibaba_qos, "alibaba_spec": alibaba_spec, "philly": philly,
          "synthetic": synthetic}


def origins(hours: int, horizon: int) -> tuple[list[int], list[int]]:
    """Tuning and reporting origins (hour index of the first forecast hour) of a trace of ``hours`` hours."""
    last = hours - horizon
    picks = [o for o in range(last, MIN_HISTORY - 1, -STEP[horizon])][:MAX_ORIGINS[horizon]]
    picks = sorted(picks)
    half = len(picks) // 2
    return picks[:half], picks[half:]


def series_type(train: pd.DataFrame) -> pd.Series:
    """Type of each series from its training part (``unique_id, ds, y`` sorted): see the module docstring."""
    out = {}
    for uid, g in train.groupby(S.UID, sort=False):
        y = g[S.Y].to_numpy(dtype=float)
        y = y[np.isfinite(y)]
        if len(y) < 48 or (y == 0).mean() >= 0.3:
            out[uid] = "intermittent"
            continue
        d1 = np.abs(np.diff(y))
        scale = d1.mean()
        if scale <= 0 or np.median(d1) <= 0.1 * scale:
            out[uid] = "step-like"
            continue
        seasonal = False
        d = np.diff(y) - np.diff(y).mean()
        for season in (24, 168):
            if len(d) > 2 * season and (d ** 2).sum() > 0:
                seasonal |= (d[season:] * d[:-season]).sum() / (d ** 2).sum() > SEASONAL_ACF
        out[uid] = "seasonal" if seasonal else "smooth"
    return pd.Series(out)


def naive_forecasts(train: pd.DataFrame, horizon: int) -> dict[str, pd.DataFrame]:
    """The three naive baselines at the origin (``unique_id, step, mean``), as statsforecast defines them."""
    out = {}
    for name, season in (("Naive", 1), ("SeasonalNaive24", 24), ("SeasonalNaive168", 168)):
        rows = []
        for uid, g in train.groupby(S.UID, sort=False):
            y = g[S.Y].to_numpy(dtype=float)
            s = min(season, len(y))
            tail = y[-s:]
            rows.append(pd.DataFrame({S.UID: uid, "step": np.arange(horizon), S.MEAN: np.resize(tail, horizon)}))
        out[name] = pd.concat(rows, ignore_index=True)
    return out


def score_origin(long: pd.DataFrame, hour0: pd.Timestamp, horizon: int, config: ForecastConfig) -> pd.DataFrame:
    """Forecast from ``hour0`` and score every series-hour: one row per series x step."""
    train = long[long[S.DS] < hour0]
    test = long[(long[S.DS] >= hour0) & (long[S.DS] < hour0 + pd.Timedelta(hours=horizon))]
    res = forecast_long(train, replace(config, horizon_hours=horizon))
    fc = res.forecast.copy()
    fc["step"] = fc.groupby(S.UID).cumcount()
    test = test.assign(step=((test[S.DS] - hour0) // pd.Timedelta(hours=1)).astype(int))
    pts = test[[S.UID, "step", S.Y]].merge(fc[[S.UID, "step", S.MEAN, *QUANTILES, S.MODEL]], on=[S.UID, "step"])
    pts = pts[np.isfinite(pts[S.Y])]
    filled = train.dropna(subset=[S.Y]).sort_values([S.UID, S.DS])
    for name, f in naive_forecasts(filled, horizon).items():
        pts = pts.merge(f.rename(columns={S.MEAN: name}), on=[S.UID, "step"], how="left")
    y24 = filled.groupby(S.UID)[S.Y].apply(lambda s: np.abs(s.to_numpy()[24:] - s.to_numpy()[:-24]).mean()
                                            if len(s) > 24 else np.nan)
    pts["scale"] = pts[S.UID].map(y24.where(y24 > 1e-9))
    pts["type"] = pts[S.UID].map(series_type(filled))
    actual = pts[S.Y].to_numpy()
    pinball = np.zeros(len(pts))
    for col, q in QUANTILES.items():
        diff = actual - pts[col].to_numpy()
        pinball += np.maximum(q * diff, (q - 1) * diff)
    pts["pinball"] = pinball / len(QUANTILES)
    pts["in80"] = (actual >= pts[S.P10].to_numpy()) & (actual <= pts[S.P90].to_numpy())
    pts["err_selected"] = np.abs(actual - pts[S.MEAN].to_numpy())
    for name in BASELINES:
        pts[f"err_{name}"] = np.abs(actual - pts[name].to_numpy())
    return pts.assign(origin=hour0, lead=pts["step"] + 1)


def collect(traces: list[str], horizons: list[int], which: str, config: ForecastConfig) -> pd.DataFrame:
    frames = []
    for name in traces:
        long = TRACES[name]().sort_values([S.UID, S.DS]).reset_index(drop=True)
        start = long[S.DS].min()
        hours = int((long[S.DS].max() - start) // pd.Timedelta(hours=1)) + 1
        for h in horizons:
            tuning, reporting = origins(hours, h)
            sets = {"tuning": tuning, "reporting": reporting}
            for set_name, picks in sets.items():
                if which not in (set_name, "both"):
                    continue
                for o in picks:
                    pts = score_origin(long, start + pd.Timedelta(hours=o), h, config)
                    frames.append(pts.assign(trace=name, horizon=h, set=set_name))
    return pd.concat(frames, ignore_index=True)


def summarise(pts: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    rows = []
    for key, g in pts.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        mae = {m: g[f"err_{m}"].mean() for m in BASELINES}
        best = min(mae, key=mae.get)
        per = g.groupby([S.UID, "origin"]).agg(sel=("err_selected", "mean"), base=(f"err_{best}", "mean"),
                                               scale=("scale", "first"), pin=("pinball", "mean"))
        per = per[per["scale"] > 0]
        rows.append({**dict(zip(keys, key, strict=True)), "series_origins": len(per),
                     "mae_ratio": g["err_selected"].mean() / mae[best] if mae[best] > 0 else np.nan,
                     "best_naive": best, "mase": (per["sel"] / per["scale"]).mean(),
                     "mase_naive": (per["base"] / per["scale"]).mean(),
                     "pinball": (per["pin"] / per["scale"]).mean(), "cov80": g["in80"].mean()})
    return pd.DataFrame(rows)


def lead_coverage(pts: pd.DataFrame) -> pd.DataFrame:
    bucket = pd.cut(pts["lead"], [b[0] - 1 for b in LEAD_BUCKETS] + [LEAD_BUCKETS[-1][1]],
                    labels=[f"{a}-{b}" for a, b in LEAD_BUCKETS])
    return pts.assign(lead_bucket=bucket).pivot_table(index=["set", "trace", "horizon"], columns="lead_bucket",
                                                      values="in80", aggfunc="mean", observed=True)


def parse_config(pairs: list[str]) -> ForecastConfig:
    overrides = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    return replace(ForecastConfig(), **overrides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="both", choices=["tuning", "reporting", "both"])
    parser.add_argument("--traces", default=",".join(TRACES))
    parser.add_argument("--horizons", default=",".join(map(str, HORIZONS)))
    parser.add_argument("--config", nargs="*", default=[], help="ForecastConfig overrides, e.g. selection_margin=0.1")
    parser.add_argument("--points", help="also write every scored hour to this Parquet file")
    args = parser.parse_args()
    config = parse_config(args.config)
    t0 = time.perf_counter()
    pts = collect(args.traces.split(","), [int(h) for h in args.horizons.split(",")], args.set, config)
    seconds = time.perf_counter() - t0
    if args.points:
        pts.to_parquet(args.points)
    opts = {"display.width": 200, "display.max_columns": 30, "display.float_format": "{:.3f}".format}
    with pd.option_context(*[x for kv in opts.items() for x in kv]):
        print(f"config overrides: {args.config or 'none'}; {seconds:.0f} s")
        print(summarise(pts, ["set", "trace", "horizon"]).to_string(index=False))
        print("\npooled over traces and horizons:")
        print(summarise(pts, ["set"]).to_string(index=False))
        print("\nby series type (pooled over traces):")
        print(summarise(pts, ["set", "type", "horizon"]).sort_values(["set", "type", "horizon"]).to_string(index=False))
        print("\np10-p90 coverage by hours ahead:")
        print(lead_coverage(pts).to_string())
        chosen = pts[pts["lead"] == 1].assign(model=lambda d: d[S.MODEL].str.split("(").str[0])
        print("\nmodels chosen (series x origins):")
        print(chosen.groupby(["set", "model"]).size().unstack("set").fillna(0).astype(int).to_string())


if __name__ == "__main__":
    main()
