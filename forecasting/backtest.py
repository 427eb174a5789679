"""Rolling-origin backtests: forecast from several past origins and score against what happened.

Units: errors are in GPUs (GPUs in use averaged over an hour). Metrics, per series and per level of the
organisation (series = team x GPU type, team, GPU type, total):

- ``mase``: mean absolute error divided by the in-sample mean absolute error of the 24-hour seasonal
  naive forecast on the training part (1.0 = as good as repeating yesterday); series whose training
  part has no variation at a 24-hour lag (scale 0) get no MASE;
- ``pinball``: mean pinball (quantile) loss over p05, p10, p50, p90, p95, in GPUs;
- ``coverage_80`` / ``coverage_90``: share of hours whose actual lies inside p10-p90 / p05-p95.

Aggregate levels sum the series' point forecasts for the mean and use the engine's joint sample paths
(summed per path) for their quantiles, so their ranges reflect how teams moved together.
Baselines (Naive, SeasonalNaive24, SeasonalNaive168) are fitted on the same training data at each origin.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from forecasting.engine import QUANTILES, ForecastConfig, forecast_long, sample_paths, seasonal_scale
from forecasting.models import BASELINES
from usage import schema as S

LEVELS = ("series", "team", "gpu_type", "total")
METHOD_SELECTED = "selected"


@dataclass(frozen=True)
class BacktestConfig:
    """Rolling-origin settings.

    Attributes:
        horizon_hours: hours forecast from each origin.
        origins: number of forecast origins; the last one leaves exactly ``horizon_hours`` of data after it.
        step_hours: hours between origins (default: the horizon, so test windows do not overlap).
        n_paths: sample paths used for aggregate-level quantiles.
    """

    horizon_hours: int = 168
    origins: int = 2
    step_hours: int | None = None
    n_paths: int = 200

    @property
    def step(self) -> int:
        return self.step_hours or self.horizon_hours


@dataclass(frozen=True)
class BacktestResult:
    """Scores of a rolling-origin backtest.

    Attributes:
        per_series: one row per (method, series): mae, mase, pinball, coverage_80, coverage_90.
        per_level: one row per (method, level): mean of the level's node scores (mase, pinball, coverage).
        summary: one row per level: selected vs best baseline mean MASE and their ratio, coverage.
        points: every scored hour: origin, method, level, key, timestamp, actual, mean, p05..p95, and the
            node's MASE denominator at that origin (``scale``, GPUs).
    """

    per_series: pd.DataFrame
    per_level: pd.DataFrame
    summary: pd.DataFrame
    points: pd.DataFrame


def _node_keys(uid: pd.Series, level: str) -> pd.Series:
    team, gpu = S.split_uid(uid)
    return {"series": uid, "team": team, "gpu_type": gpu, "total": pd.Series("total", index=uid.index)}[level]


def _level_frames(long: pd.DataFrame, level: str) -> pd.DataFrame:
    df = long.assign(key=_node_keys(long[S.UID], level).to_numpy())
    return df.groupby(["key", S.DS], as_index=False)[S.Y].sum()


def _score_points(points: pd.DataFrame) -> pd.DataFrame:
    p = points
    err = (p["actual"] - p[S.MEAN]).abs()
    pinball = np.zeros(len(p))
    for col, q in QUANTILES.items():
        diff = p["actual"].to_numpy() - p[col].to_numpy()
        pinball += np.maximum(q * diff, (q - 1) * diff)
    pinball /= len(QUANTILES)
    return p.assign(abs_err=err, pinball=pinball,
                    in80=(p["actual"] >= p[S.P10]) & (p["actual"] <= p[S.P90]),
                    in90=(p["actual"] >= p[S.P05]) & (p["actual"] <= p[S.P95]))


def _aggregate(fc: pd.DataFrame, paths: dict[str, np.ndarray] | None, level: str) -> pd.DataFrame:
    """Level-``level`` forecast: summed means; quantiles from summed sample paths (or summed quantiles)."""
    if level == "series":
        return fc.assign(key=fc[S.UID])
    keys = _node_keys(fc[S.UID], level)
    frame = fc.assign(key=keys.to_numpy())
    mean = frame.groupby(["key", S.DS], as_index=False)[S.MEAN].sum()
    if paths is None:
        q = frame.groupby(["key", S.DS], as_index=False)[list(QUANTILES)].sum()
        return mean.merge(q, on=["key", S.DS])
    uid_key = dict(zip(fc[S.UID], keys, strict=True))
    ds = {uid: g[S.DS].to_numpy() for uid, g in fc.groupby(S.UID, sort=False)}
    rows = []
    members: dict[str, list[str]] = {}
    for uid, key in uid_key.items():
        members.setdefault(key, []).append(uid)
    for key, uids in members.items():
        total = np.sum([paths[u] for u in uids], axis=0)
        qs = np.quantile(total, list(QUANTILES.values()), axis=0)
        rows.append(pd.DataFrame({"key": key, S.DS: ds[uids[0]], **dict(zip(QUANTILES, qs, strict=True))}))
    return mean.merge(pd.concat(rows, ignore_index=True), on=["key", S.DS])


def rolling_backtest(long: pd.DataFrame, config: ForecastConfig | None = None,
                     backtest: BacktestConfig | None = None, *, baselines: tuple[str, ...] = BASELINES,
                     progress=None) -> BacktestResult:
    """Backtest the engine on a long frame (``unique_id`` = ``team|gpu_type``, ``ds``, ``y``; hourly GPUs).

    Args:
        long: history to replay.
        config: forecast settings (the horizon is taken from ``backtest``).
        backtest: origins and horizon.
        baselines: naive models scored alongside the selected forecasts.
        progress: optional callback receiving one line per origin.
    """
    backtest = backtest or BacktestConfig()
    config = replace(config or ForecastConfig(), horizon_hours=backtest.horizon_hours)
    say = progress or (lambda _m: None)
    long = long.sort_values([S.UID, S.DS]).reset_index(drop=True)
    end = long[S.DS].max()
    first_test = [end - pd.Timedelta(hours=backtest.horizon_hours - 1 + k * backtest.step)
                  for k in reversed(range(backtest.origins))]
    all_points = []
    for i, start in enumerate(first_test, 1):
        train = long[long[S.DS] < start]
        test = long[(long[S.DS] >= start) & (long[S.DS] < start + pd.Timedelta(hours=backtest.horizon_hours))]
        if train.empty:
            raise ValueError(f"origin {start} leaves no history (use fewer origins or a shorter horizon)")
        say(f"origin {i}/{len(first_test)}: forecasting {test[S.DS].min():%Y-%m-%d %H:%M} onwards")
        res = forecast_long(train, config)
        paths = sample_paths(res, backtest.n_paths, seed=i)
        methods = {METHOD_SELECTED: (res.forecast, paths)}
        for base in baselines:
            bres = forecast_long(train, replace(config, models=(base,), cv_windows=0))
            methods[base] = (bres.forecast, None)
        for level in LEVELS:
            actual = _level_frames(test, level).rename(columns={S.Y: "actual"})
            scale = seasonal_scale(_level_frames(train, level), key="key", floor=1e-9)
            for method, (fc, p) in methods.items():
                agg = _aggregate(fc, p, level)
                pts = actual.merge(agg, on=["key", S.DS], how="inner")
                pts = pts.assign(origin=start, method=method, level=level, scale=pts["key"].map(scale).to_numpy())
                all_points.append(pts)
    points = _score_points(pd.concat(all_points, ignore_index=True))
    per_node = points.groupby(["method", "level", "key"], as_index=False).agg(
        mae=("abs_err", "mean"), scale=("scale", "mean"), pinball=("pinball", "mean"),
        coverage_80=("in80", "mean"), coverage_90=("in90", "mean"))
    per_node["mase"] = per_node["mae"] / per_node["scale"]
    per_series = per_node[per_node["level"] == "series"].drop(columns="level").rename(columns={"key": S.UID})
    per_level = per_node.groupby(["method", "level"], as_index=False).agg(
        nodes=("key", "size"), mean_mase=("mase", "mean"), mae=("mae", "sum"), pinball=("pinball", "mean"),
        coverage_80=("coverage_80", "mean"), coverage_90=("coverage_90", "mean"))
    summary = _summary(per_level, baselines)
    return BacktestResult(per_series=per_series.reset_index(drop=True), per_level=per_level, summary=summary,
                          points=points)


def _summary(per_level: pd.DataFrame, baselines: tuple[str, ...]) -> pd.DataFrame:
    rows = []
    for level in LEVELS:
        lv = per_level[per_level["level"] == level].set_index("method")
        if METHOD_SELECTED not in lv.index:
            continue
        base = lv.loc[[b for b in baselines if b in lv.index], "mean_mase"]
        best = base.idxmin() if base.notna().any() else None
        sel = lv.loc[METHOD_SELECTED]
        rows.append({"level": level, "nodes": int(sel["nodes"]), "mase_selected": sel["mean_mase"],
                     "best_baseline": best, "mase_best_baseline": base.min() if best else np.nan,
                     "mase_ratio": sel["mean_mase"] / base.min() if best else np.nan,
                     "coverage_80": sel["coverage_80"], "coverage_90": sel["coverage_90"],
                     "pinball_selected": sel["pinball"]})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class HoldoutResult:
    """Per-series and overall scores of a single hold-out (the last ``holdout_hours``)."""

    per_series: pd.DataFrame
    overall: pd.DataFrame
    holdout_start: pd.Timestamp


def holdout_accuracy(usage: pd.DataFrame, holdout_hours: int = 168, config: ForecastConfig | None = None,
                     ) -> HoldoutResult:
    """Fit on all but the last ``holdout_hours`` and score the held-out hours (one origin of
    :func:`rolling_backtest`, series level, reported in the shape the pipeline benchmark prints)."""
    res = rolling_backtest(S.to_long(usage), config, BacktestConfig(horizon_hours=holdout_hours, origins=1))
    series = res.per_series
    per = series[series["method"] == METHOD_SELECTED].set_index(S.UID)[["mae", "mase", "coverage_80"]]
    per = per.rename(columns={"coverage_80": "coverage_p10_p90"})
    chosen = res.points[(res.points["method"] == METHOD_SELECTED) & (res.points["level"] == "series")]
    per["model"] = chosen.groupby("key")[S.MODEL].first()
    for base in BASELINES:
        per[f"mae_{base}"] = series[series["method"] == base].set_index(S.UID)["mae"]
    per = per.reset_index()
    per[S.TEAM], per[S.GPU_TYPE] = S.split_uid(per[S.UID])
    lv = res.per_level[res.per_level["level"] == "series"].set_index("method")
    rows = [{"method": m, "mean_mase": lv.loc[m, "mean_mase"], "total_mae_gpus": lv.loc[m, "mae"],
             "coverage_p10_p90": lv.loc[m, "coverage_80"] if m == METHOD_SELECTED else np.nan}
            for m in (METHOD_SELECTED, *BASELINES)]
    start = res.points["origin"].min()
    return HoldoutResult(per_series=per.drop(columns=S.UID), overall=pd.DataFrame(rows), holdout_start=start)
