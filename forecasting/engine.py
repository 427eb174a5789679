"""Fit candidate models per (team, gpu_type) series, choose by rolling-origin CV, predict quantiles.

Units: inputs and outputs are GPUs in use averaged over each hour (= GPU-hours per hour). Horizons,
histories and CV windows are in hours. Quantiles p10/p50/p90 come from each model's 80% prediction
interval (p10 = lower bound, p90 = upper bound; the point forecast is the median of the symmetric
interval) and are clipped at zero, since demand cannot be negative.

The whole pipeline carries one long frame (``unique_id, ds, y``) through statsforecast; the
forecast frame returned follows ``forecasting.schema.FORECAST_COLUMNS``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from statsforecast import StatsForecast

from forecasting import schema as S
from forecasting.models import CANDIDATES, DEFAULT_MODELS, candidates_for

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ForecastConfig:
    """Settings of one forecast run.

    Attributes:
        horizon_hours: hours to forecast after the last observed hour.
        history_hours: fit on at most this many most recent hours per series (None = all). Eight
            weeks keep hourly fits fast and track recent level shifts; weekly seasonality still has
            eight cycles.
        models: candidate model names (see ``forecasting.models.CANDIDATES``).
        cv_windows: rolling-origin cross-validation windows used to choose a model per series.
        cv_horizon_hours: length of each CV window (default: min(horizon, 336): two-week windows judge
            month-ahead forecasts much better than one-week ones; measured in docs/benchmarks.md).
        level: central prediction-interval level in percent (80 -> p10/p90).
        n_jobs: processes statsforecast may use.
    """

    horizon_hours: int = 168
    history_hours: int | None = 24 * 7 * 8
    models: tuple[str, ...] = DEFAULT_MODELS
    cv_windows: int = 2
    cv_horizon_hours: int | None = None
    level: int = 80
    n_jobs: int = 1

    def __post_init__(self) -> None:
        if self.horizon_hours < 1:
            raise ValueError("horizon_hours must be at least 1")
        if self.history_hours is not None and self.history_hours < 1:
            raise ValueError("history_hours must be at least 1")
        if self.cv_windows < 0:
            raise ValueError("cv_windows must be >= 0")
        if not 0 < self.level < 100:
            raise ValueError("level must be between 0 and 100")
        candidates_for(10**9, self.models)  # raises on unknown names

    @property
    def cv_h(self) -> int:
        return self.cv_horizon_hours or min(self.horizon_hours, 336)


@dataclass(frozen=True)
class ForecastResult:
    """Forecasts plus how each series' model was chosen.

    Attributes:
        forecast: ``team, gpu_type, timestamp, mean, p10, p50, p90, model`` (GPUs per hour).
        selection: one row per series: ``team, gpu_type, model, cv_mae, candidates, history_hours``
            (cv_mae in GPUs, NaN when the series was too short to cross-validate).
        cv_scores: CV mean absolute error of every candidate per series (long format).
        config: the settings used.
    """

    forecast: pd.DataFrame
    selection: pd.DataFrame
    cv_scores: pd.DataFrame
    config: ForecastConfig
    notes: tuple[str, ...] = field(default_factory=tuple)


def _trim_history(long: pd.DataFrame, history_hours: int | None) -> pd.DataFrame:
    if history_hours is None:
        return long
    last = long.groupby(S.UID)[S.DS].transform("max")
    return long[long[S.DS] > last - pd.Timedelta(hours=history_hours)]


def _align_end(long: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Series that stop reporting before the data's last hour had no usage since: pad them with zeros
    so every forecast starts at the same hour."""
    end = long[S.DS].max()
    last = long.groupby(S.UID)[S.DS].max()
    short = last[last < end]
    if short.empty:
        return long, 0
    pads = [pd.DataFrame({S.UID: uid, S.DS: pd.date_range(ts + pd.Timedelta(hours=1), end, freq="h"), S.Y: 0.0})
            for uid, ts in short.items()]
    out = pd.concat([long, *pads], ignore_index=True).sort_values([S.UID, S.DS], kind="stable")
    return out.reset_index(drop=True), len(short)


def _cv_windows_possible(length: int, models: tuple[str, ...], h: int, windows: int) -> int:
    need = max(CANDIDATES[m].min_history for m in models)
    while windows > 0 and length - h * windows < max(need, 2):
        windows -= 1
    return windows


def _run_group(long: pd.DataFrame, models: tuple[str, ...], config: ForecastConfig, windows: int,
               freq: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cross-validate and forecast one group of series that share a candidate set."""
    built = [CANDIDATES[m].build() for m in models]
    sf = StatsForecast(models=built, freq=freq, n_jobs=config.n_jobs)
    scores = pd.DataFrame(columns=[S.UID, S.MODEL, "cv_mae"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if windows > 0 and len(models) > 1:
            cv = sf.cross_validation(df=long, h=config.cv_h, n_windows=windows, step_size=config.cv_h)
            err = cv[list(models)].sub(cv[S.Y], axis=0).abs()
            err[S.UID] = cv[S.UID].to_numpy()
            scores = (err.groupby(S.UID)[list(models)].mean().reset_index()
                      .melt(id_vars=S.UID, var_name=S.MODEL, value_name="cv_mae"))
        fc = sf.forecast(df=long, h=config.horizon_hours, level=[config.level])
    return fc, scores


def forecast(usage: pd.DataFrame, config: ForecastConfig | None = None, *,
             progress: Progress | None = None) -> ForecastResult:
    """Forecast every (team, gpu_type) series of a validated usage frame.

    Args:
        usage: canonical usage frame (see ``forecasting.schema.validate_usage``).
        config: forecast settings; defaults to one week ahead.
        progress: optional callback receiving one line per step (for CLI progress).

    Returns:
        A :class:`ForecastResult`; forecasts start at the hour after each series' last observation.
    """
    config = config or ForecastConfig()
    say = progress or (lambda _msg: None)
    long, padded = _align_end(S.to_long(usage))
    long = _trim_history(long, config.history_hours)
    lengths = long.groupby(S.UID).size()
    notes: list[str] = []
    if padded:
        notes.append(f"{padded} series ended before the last hour of the data; padded with 0 GPUs to the end")
    groups: dict[tuple[tuple[str, ...], int], list[str]] = {}
    for uid, n in lengths.items():
        models = candidates_for(int(n), config.models)
        windows = _cv_windows_possible(int(n), models, config.cv_h, config.cv_windows)
        groups.setdefault((models, windows), []).append(uid)
    lo, hi = f"-lo-{config.level}", f"-hi-{config.level}"
    frames, score_frames = [], []
    for i, ((models, windows), uids) in enumerate(sorted(groups.items(), key=lambda kv: -len(kv[1])), 1):
        say(f"fitting {len(uids)} series with {', '.join(models)} ({windows} CV windows) [{i}/{len(groups)}]")
        if models != config.models:
            notes.append(f"{len(uids)} series too short for {', '.join(m for m in config.models if m not in models)}"
                         f"; candidates: {', '.join(models)}")
        if windows == 0 and len(models) > 1:
            notes.append(f"{len(uids)} series too short to cross-validate; used {models[-1]}")
        part = long[long[S.UID].isin(uids)]
        fc, scores = _run_group(part, models, config, windows, freq="h")
        if scores.empty:
            # No CV possible: take the richest model the series can fit.
            best = pd.Series(models[-1], index=pd.Index(uids, name=S.UID))
        else:
            scores = scores.dropna(subset=["cv_mae"])
            best = scores.loc[scores.groupby(S.UID)["cv_mae"].idxmin()].set_index(S.UID)[S.MODEL]
            best = best.reindex(uids).fillna(models[0])
            score_frames.append(scores)
        chosen = fc[S.UID].map(best).to_numpy()
        out = pd.DataFrame({S.UID: fc[S.UID].to_numpy(), S.TIMESTAMP: fc[S.DS].to_numpy(), S.MODEL: chosen})
        for col, suffix in ((S.MEAN, ""), (S.P10, lo), (S.P90, hi)):
            values = np.zeros(len(fc))
            for m in models:
                rows = chosen == m
                values[rows] = fc.loc[rows, m + suffix].to_numpy(dtype=float)
            out[col] = values
        frames.append(out)
    say("assembling quantiles")
    out = pd.concat(frames, ignore_index=True)
    values = out[[S.MEAN, S.P10, S.P90]].to_numpy(dtype=float)
    values = np.nan_to_num(values, nan=0.0)
    mean = np.clip(values[:, 0], 0.0, None)
    p10 = np.clip(np.minimum(values[:, 1], values[:, 0]), 0.0, None)
    p90 = np.clip(np.maximum(values[:, 2], values[:, 0]), 0.0, None)
    team, gpu = S.split_uid(out[S.UID])
    fc = pd.DataFrame({S.TEAM: team, S.GPU_TYPE: gpu, S.TIMESTAMP: pd.to_datetime(out[S.TIMESTAMP]),
                       S.MEAN: mean, S.P10: p10, S.P50: mean, S.P90: p90, S.MODEL: out[S.MODEL]})
    fc = fc.sort_values([S.TEAM, S.GPU_TYPE, S.TIMESTAMP]).reset_index(drop=True)

    scores = (pd.concat(score_frames, ignore_index=True) if score_frames
              else pd.DataFrame(columns=[S.UID, S.MODEL, "cv_mae"]))
    chosen = fc.drop_duplicates([S.TEAM, S.GPU_TYPE])[[S.TEAM, S.GPU_TYPE, S.MODEL]]
    chosen = chosen.assign(**{S.UID: S.series_id(chosen[S.TEAM], chosen[S.GPU_TYPE]).to_numpy()})
    sel = chosen.merge(scores, on=[S.UID, S.MODEL], how="left")
    n_cand = scores.groupby(S.UID).size().rename("candidates")
    sel = sel.merge(n_cand, left_on=S.UID, right_index=True, how="left").fillna({"candidates": 1})
    sel["history_hours"] = sel[S.UID].map(lengths).astype(int)
    sel = sel[[S.TEAM, S.GPU_TYPE, S.MODEL, "cv_mae", "candidates", "history_hours"]].reset_index(drop=True)
    team, gpu = S.split_uid(scores[S.UID]) if not scores.empty else (pd.Series(dtype=str),) * 2
    cv_scores = pd.DataFrame({S.TEAM: team, S.GPU_TYPE: gpu, S.MODEL: scores[S.MODEL],
                              "cv_mae": scores["cv_mae"]}).reset_index(drop=True)
    return ForecastResult(forecast=fc, selection=sel, cv_scores=cv_scores, config=config, notes=tuple(notes))


def default_n_jobs() -> int:
    """Processes to use for fitting: all cores, but 1 inside CI-sized test runs when asked."""
    return int(os.environ.get("GPUPLAN_N_JOBS", os.cpu_count() or 1))


def write_forecast_csv(fc: pd.DataFrame, path) -> None:
    """Write the forecast contract CSV (timestamps as ISO 8601 UTC) atomically."""
    from forecasting.io import write_csv_atomic

    out = fc[list(S.FORECAST_COLUMNS)].copy()
    out[S.TIMESTAMP] = S.format_timestamp(out[S.TIMESTAMP])
    write_csv_atomic(out, path)


def read_forecast_csv(path) -> pd.DataFrame:
    """Read a forecast CSV written by :func:`write_forecast_csv` (or by another tool in that contract)."""
    src = str(path)
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise S.UsageError(src, f"cannot read forecast file ({exc.__class__.__name__})",
                           fix="pass a CSV written by gpuplan forecast") from None
    needed = [S.TEAM, S.GPU_TYPE, S.TIMESTAMP, S.MEAN, S.P10, S.P50, S.P90]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise S.UsageError(src, f"missing column '{missing[0]}'", column=missing[0],
                           fix=f"a forecast needs {', '.join(needed)}")
    df[S.TIMESTAMP] = S.parse_timestamps(df[S.TIMESTAMP], src)
    for col in (S.MEAN, S.P10, S.P50, S.P90):
        vals = pd.to_numeric(df[col], errors="coerce")
        bad = vals.isna() | (vals < 0)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise S.UsageError(src, f"{col} value {df[col].iloc[row]!r} is not a number >= 0",
                               row=S.csv_row(row), column=col, fix="forecasts are GPUs per hour, >= 0")
        df[col] = vals.astype(float)
    if S.MODEL not in df.columns:
        df[S.MODEL] = "external"
    df[S.TEAM] = df[S.TEAM].astype(str)
    df[S.GPU_TYPE] = df[S.GPU_TYPE].astype(str)
    return df[list(S.FORECAST_COLUMNS)]
