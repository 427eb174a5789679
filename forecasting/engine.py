"""Fit candidate models per series, choose by rolling-origin CV, predict calibrated quantiles and paths.

Units: inputs and outputs are GPUs in use averaged over each hour (= GPU-hours per hour). Horizons,
histories and CV windows are in hours.

How a forecast is made, per series (one long frame ``unique_id, ds, y`` throughout):
1. Candidates: the models of ``config.models`` the series' history supports (see :mod:`forecasting.models`).
2. Rolling-origin cross-validation: ``cv_windows`` consecutive windows of ``cv_h`` hours at the end of
   the history; each candidate is refitted at each origin and scored by mean absolute error (MAE).
   ``Ensemble`` = the median of the ``ensemble_k`` best candidates, scored on the same windows.
3. The candidate with the lowest CV MAE is chosen, a single model over the ensemble only when clearly better
   (``ForecastConfig.selection``: the backtest's tuning origins showed that per-series CV over a few weeks
   rarely tells single models apart; ``selection="simplest"`` keeps the simplest candidate within noise of the
   best). A level shift in the last hours (:func:`stale_seasonal`) drops the seasonal naives that would repeat
   the old level from the series' ensemble. The chosen point forecast is the ``mean`` column.
4. Quantiles (conformal): the average of two error quantiles is added to the point forecast. One is the
   empirical quantile of the series' own CV errors ``y - forecast`` (the chosen model, all CV windows and
   steps); the other is the quantile of every series' CV errors divided by its noise scale (mean absolute
   hour-to-hour change over the last week of history, :data:`NOISE_SCALE_HOURS`), pooled over the series
   of the run and multiplied back by the series' own scale. The pooled half gives sparse, bursty series,
   whose few CV windows are mostly zero errors, honest widths (see ``ForecastConfig.calibration``).
   Errors are first divided by ``lead ** b`` and the offsets multiplied back by it, with ``b`` the rate at which
   the CV errors' spread grows with lead time (:func:`lead_growth`, fitted per run). This keeps the band's
   coverage flat across lead times: narrower in the first hours, wider towards 720 h and 1,512 h, beyond the CV
   window too. Quantiles are made monotone and clipped at zero.
5. Sample paths (:func:`sample_paths`): the point forecast plus whole CV error trajectories, drawn
   for all series at once from the same window and day shift, so teams that moved together in the
   past move together in the scenarios; each series' replay is rescaled to its blended quantile width,
   and beyond the CV window paths add the level shifts that followed a historical day
   (:mod:`forecasting.paths`).
6. History short against the horizon (``ForecastConfig.widen_short_history``, on by default): a series is short
   when the horizon goes beyond the hours its own CV errors checked (``checked``: the CV window length, 0
   without CV errors) and either it has no CV errors although CV was attempted (its history was too short for
   one window) or its history (hours observed before the origin, counted before ``history_hours`` trims the
   fit) spans fewer than :data:`forecasting.paths.SHORT_HISTORY_FACTOR` (4) horizons: it has seen too little
   to calibrate its range at that lead time. Its quantiles and sample paths are widened beyond
   what CV could check: a Gaussian random walk of variance ``rate x (lead - checked)`` GPUs^2 (lead in hours) is
   added in quadrature to the calibrated band, with ``rate = (WALK_NOISE_FACTOR x noise)^2`` GPUs^2 per hour
   and ``noise`` the series' mean absolute hour-to-hour change over the fitted history, so the spread grows like
   the square root of lead time and is never narrower at a longer lead; a series without CV errors first gets
   its history's hourly standard deviation (GPUs) as the band at lead 1 (:func:`forecasting.paths.spread_floor`).
   The paths get the same walk (half of its variance shared by all series). One line in ``notes`` says whose
   history was short against which horizon and how far CV could check (a series without any hour-to-hour change
   has no rate: the note says no range could be estimated for it). Series that are not short, and whole runs
   without short series, are exactly as without the rule (their forecasts and sample paths are byte-identical).
   Settings chosen on tuning origins of the synthetic organisation, reported on later ones
   (``benchmarks/short_history.py``, docs/benchmarks.md).

Before fitting, hours in which the whole organisation reports 0 GPUs after having been busy (an outage or a
telemetry gap) are filled as missing (:mod:`forecasting.outages`, ``ForecastConfig.fill_outages``).

:func:`forecast_long` works on any ``unique_id`` (the hierarchy uses it for aggregate series);
:func:`forecast` is the team x GPU-type wrapper that returns the forecast contract of
``usage.schema.FORECAST_COLUMNS``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import pandas as pd
from statsforecast import StatsForecast

from forecasting.models import (
    BASELINES,
    CANDIDATES,
    DEFAULT_MODELS,
    ENSEMBLE,
    INTERMITTENT_ZERO_SHARE,
    candidates_for,
    check_models,
    simplicity_rank,
)
from forecasting.outages import describe as describe_outages
from forecasting.outages import fill_outages as fill_outage_hours
from forecasting.outages import outage_hours
from forecasting.paths import (
    FLOOR_LEVEL_SHARE,
    WALK_CORRELATION,
    daily_levels,
    level_shifts,
    shift_origins,
    short_history,
    spread_floor,
    walk_paths,
    walk_rate,
    walk_sd,
    widen_offsets,
    widening,
)
from usage import schema as S

Progress = Callable[[str], None]
QUANTILES = {S.P05: 0.05, S.P10: 0.10, S.P50: 0.50, S.P90: 0.90, S.P95: 0.95}
"""Forecast quantile columns and their probability levels."""
Z_SCORES = np.array([NormalDist().inv_cdf(p) for p in QUANTILES.values()])
"""Standard-normal quantile of each column of :data:`QUANTILES` (the short-history widening is Gaussian)."""
BUCKET_HOURS = 10**9
"""Errors are pooled over the whole CV window: per-day buckets were too narrow early in the horizon
(p10-p90 coverage 68% vs 74% pooled on the Helios rolling backtest)."""
MIN_BUCKET_ERRORS = 20
MIN_RANGE_WINDOWS = 2
"""Fewest CV windows a series' candidates may leave before seasonal baselines are dropped (see _plan_series)."""
NOISE_SCALE_HOURS = 168
"""History (hours) whose mean absolute hour-to-hour change normalises CV errors for pooled calibration."""
CALIBRATIONS = ("blend", "series")


@dataclass(frozen=True)
class ForecastConfig:
    """Settings of one forecast run.

    Attributes:
        horizon_hours: hours to forecast after the last observed hour.
        history_hours: fit on at most this many most recent hours per series (None = all). Eight
            weeks keep hourly fits fast and track recent level shifts.
        models: candidate model names (see ``forecasting.models``; ``MODEL_SETS`` has named sets).
        cv_windows: rolling-origin cross-validation windows used to choose a model and calibrate ranges.
        cv_step_hours: hours between CV origins (default 24: overlapping daily origins give the many
            error samples calibrated ranges need; None = back-to-back windows).
        cv_horizon_hours: length of each CV window (default: min(horizon, 336): two-week windows judge
            month-ahead forecasts much better than one-week ones; measured in docs/benchmarks.md).
        ensemble_k: how many of the best candidates the ensemble takes the median of (None = all).
        selection: ``ensemble`` (default): the candidate with the lowest CV MAE, except that a single model replaces
            the ensemble only when its CV MAE is at least ``selection_margin`` below the ensemble's; ``simplest``:
            the simplest candidate CV cannot tell apart from the best (within ``selection_se`` standard errors of
            the per-window MAE difference; :func:`simplest_within_noise`). On the tuning origins of
            ``benchmarks/forecast_accuracy.py`` (every public trace, 24 h to 1,512 h ahead), ``simplest`` lost to
            ``ensemble`` on 9 of 13 trace x horizon cells (geometric mean MAE ratio to the best naive forecast 1.031
            against 0.972): per-series CV over a few weeks often cannot tell single models apart, and the median of
            them is the more robust forecast. So the median ensemble is the default because the backtest on the
            tuning origins showed it, not because the engine prefers it.
        selection_margin: see ``selection``.
        selection_se: see ``selection``.
        step_quantile: a level shift at the origin (:func:`stale_seasonal`) removes the seasonal naive candidates
            that would copy the old level from a series' ensemble when its last hours moved by more than this
            quantile of the series' usual same-hour change. CV cannot see a step this recent. None = off.
            Tuning origins: 0.9 gave a geometric mean ratio of 0.972 against 0.985 off. Alibaba per QoS, 24 h:
            1.09 -> 1.02.
        lead_growth: widen the range with lead time (:func:`lead_growth`). The CV errors give the exponent
            with which their spread grows with lead time, so the band narrows near the origin and keeps
            widening beyond the CV window. False = the same band at every lead.
        calibration: ``blend`` (default): quantiles average the series' own CV error quantiles and the
            scale-normalised CV errors pooled over all series of the run (series without CV errors get the
            pooled half alone); ``series``: the series' own CV errors only. On the three real traces the p10-p90
            band held 66-76% of held-out hours with ``series`` and 79-83% with ``blend`` (docs/benchmarks.md).
        n_jobs: processes statsforecast may use (local engine).
        engine: ``local`` (pandas), or ``dask`` / ``ray`` to run statsforecast through Fugue.
        freq: pandas frequency of the series (``h``; other values are for benchmarks on non-hourly data).
        fill_outages: treat hours in which every series reports 0 GPUs at once, after the cluster had been
            busy, as an outage or telemetry gap rather than demand: they are filled with each series' value at
            the same hour of the nearest earlier normal day before fitting (:mod:`forecasting.outages`; the
            count is in the notes and ``LongForecast.outage_hours``).
        path_history_hours: hours of history (before ``history_hours`` trims the fit) whose daily levels
            :func:`sample_paths` draws level shifts from beyond the CV window (None = all; 0 = none).
        widen_short_history: widen the quantiles and sample paths of series whose history is short against the
            horizon beyond what cross-validation could check (:func:`forecasting.paths.short_history`; the
            rule and the widening are in the module docstring) and say so in the notes. False gives the ranges
            of the CV errors alone (zero-width for series without any).
    """

    horizon_hours: int = 168
    history_hours: int | None = 24 * 7 * 8
    models: tuple[str, ...] = DEFAULT_MODELS
    cv_windows: int = 12
    cv_horizon_hours: int | None = None
    ensemble_k: int | None = None
    selection: str = "ensemble"
    selection_margin: float = 0.2
    selection_se: float = 1.0
    step_quantile: float | None = 0.9
    lead_growth: bool = True
    cv_step_hours: int | None = 24
    calibration: str = "blend"
    n_jobs: int = 1
    engine: str = "local"
    freq: str = "h"
    fill_outages: bool = True
    path_history_hours: int | None = 24 * 365
    widen_short_history: bool = True

    def __post_init__(self) -> None:
        if self.horizon_hours < 1:
            raise ValueError("horizon_hours must be at least 1")
        if self.history_hours is not None and self.history_hours < 1:
            raise ValueError("history_hours must be at least 1")
        if self.path_history_hours is not None and self.path_history_hours < 0:
            raise ValueError("path_history_hours must be >= 0")
        if self.cv_windows < 0:
            raise ValueError("cv_windows must be >= 0")
        if self.ensemble_k is not None and self.ensemble_k < 2:
            raise ValueError("ensemble_k must be at least 2 (or None for all candidates)")
        if self.selection_se < 0:
            raise ValueError("selection_se must be >= 0")
        if self.selection not in ("ensemble", "simplest"):
            raise ValueError(f"unknown selection '{self.selection}' (choose ensemble or simplest)")
        if not 0.0 <= self.selection_margin < 1.0:
            raise ValueError("selection_margin must be in [0, 1)")
        if self.step_quantile is not None and not 0.0 < self.step_quantile <= 1.0:
            raise ValueError("step_quantile must be in (0, 1] or None")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"unknown calibration '{self.calibration}' (choose from {', '.join(CALIBRATIONS)})")
        if self.engine not in ("local", "dask", "ray"):
            raise ValueError(f"unknown engine '{self.engine}' (choose local, dask or ray)")
        check_models(self.models)

    @property
    def cv_h(self) -> int:
        return self.cv_horizon_hours or min(self.horizon_hours, 336)

    @property
    def cv_step(self) -> int:
        return self.cv_step_hours or self.cv_h


@dataclass(frozen=True)
class LongForecast:
    """Forecasts in statsforecast's long format plus everything needed to explain and resample them.

    Attributes:
        forecast: ``unique_id, ds, mean, p05, p10, p50, p90, p95, model`` (GPUs per hour).
        selection: one row per series: ``unique_id, model, cv_mae, cv_mase, candidates, history_hours,
            intermittent`` (errors in GPUs; NaN when the series was too short to cross-validate).
        cv_scores: CV MAE of every candidate per series (``unique_id, model, cv_mae``).
        errors: CV errors of the chosen model: ``unique_id, window, step, error`` (GPUs, y - forecast).
        notes: what the engine changed or could not do, one line each.
        calibration: how the quantiles were calibrated (``ForecastConfig.calibration``); the hierarchy
            calibrates reconciled ranges the same way.
        outage_hours: cluster-wide all-zero hours treated as an outage and filled before fitting.
        levels: mean GPUs per series over each whole day before the forecast origin (index ``unique_id``,
            column ``k`` = the day ending ``24 k`` hours before the origin; NaN before a series started), from
            up to ``ForecastConfig.path_history_hours`` of history: :func:`sample_paths` draws level shifts
            from it. None = no level shifts (also when the horizon fits in the CV window).
        noise: per-series noise scale used by blend calibration (:func:`noise_scale`; None with ``series``):
            :func:`sample_paths` widens or narrows each series' replayed CV errors to the blended range.
        short_history: the series whose history is short against the horizon and how their ranges were widened
            (None when there are none, or with ``ForecastConfig.widen_short_history`` off).
        lead_growth: the exponent ``b`` with which the range widens with lead time (:func:`lead_growth`; 0 = a flat
            band). Reconciled hierarchy levels fit their own exponent from their own errors when this is positive.
    """

    forecast: pd.DataFrame
    selection: pd.DataFrame
    cv_scores: pd.DataFrame
    errors: pd.DataFrame
    notes: tuple[str, ...] = ()
    calibration: str = "blend"
    outage_hours: int = 0
    levels: pd.DataFrame | None = None
    noise: pd.Series | None = None
    short_history: ShortHistory | None = None
    lead_growth: float = 0.0


@dataclass(frozen=True)
class ShortHistory:
    """Series whose history is short against the horizon (:func:`forecasting.paths.short_history`).

    Attributes:
        series: index ``unique_id``; ``history_hours`` (hours observed before the origin), ``checked_hours``
            (hours ahead covered by the series' own CV errors, 0 without), ``rate`` (random-walk variance,
            GPUs^2 per hour, :func:`forecasting.paths.walk_rate`; 0 when the history shows no hour-to-hour
            change, so no range could be estimated), ``floor`` (GPUs: the band's standard deviation at lead 1
            for series without CV errors, :func:`forecasting.paths.spread_floor`; 0 for the others).
        horizon_hours: hours forecast.
        note: the one line said about them (also in ``LongForecast.notes``).
    """

    series: pd.DataFrame
    horizon_hours: int
    note: str


@dataclass(frozen=True)
class ForecastResult:
    """Team x GPU-type forecasts (the forecast contract) and how each series' model was chosen.

    Attributes:
        forecast: ``team, gpu_type, timestamp, mean, p05, p10, p50, p90, p95, model`` (GPUs per hour).
        selection: ``team, gpu_type, model, cv_mae, cv_mase, candidates, history_hours, intermittent``.
        cv_scores: CV MAE of every candidate per series (``team, gpu_type, model, cv_mae``).
        config: the settings used.
        long: the underlying :class:`LongForecast` (for sample paths and the hierarchy).
    """

    forecast: pd.DataFrame
    selection: pd.DataFrame
    cv_scores: pd.DataFrame
    config: ForecastConfig
    notes: tuple[str, ...] = field(default_factory=tuple)
    long: LongForecast | None = None


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


def _plan_series(length: int, models: tuple[str, ...], h: int, windows: int, step: int | None = None,
                 ) -> tuple[tuple[str, ...], int]:
    """Candidates and CV windows for a series of ``length`` hours.

    Calibrated ranges need several CV windows, so a model whose history need would leave fewer than the
    configured windows is dropped (most demanding first) before windows are given up; the baselines stay,
    unless they would leave fewer than :data:`MIN_RANGE_WINDOWS`: then the seasonal baselines go too
    (most demanding first; Naive always stays), since without CV errors a series gets no model choice and
    no range (on a 240-hour history a 168-hour horizon leaves SeasonalNaive168 no CV window at all).
    """
    def fits(ms: tuple[str, ...], w: int) -> bool:
        return length - h - step * (w - 1) >= max(max(CANDIDATES[m].min_history for m in ms), 2)

    def most_windows(ms: tuple[str, ...]) -> int:
        w = windows
        while w > 0 and not fits(ms, w):
            w -= 1
        return w

    step = step or h
    models = tuple(models)
    while len(models) > 1 and not fits(models, windows):
        demanding = max(models, key=lambda m: CANDIDATES[m].min_history)
        if demanding in BASELINES:
            break
        models = tuple(m for m in models if m != demanding)
    need = min(MIN_RANGE_WINDOWS, windows)
    reduced = models
    while most_windows(reduced) < need and len(reduced) > 1:
        demanding = max((m for m in reduced if m != "Naive"), key=lambda m: CANDIDATES[m].min_history)
        reduced = tuple(m for m in reduced if m != demanding)
    if most_windows(reduced) >= need:
        models = reduced
    return models, most_windows(models)


def seasonal_scale(frame: pd.DataFrame, key: str = S.UID, season: int = 24, floor: float = 0.0) -> pd.Series:
    """In-sample MAE of the ``season``-hour seasonal naive forecast per ``key`` (the MASE denominator).

    ``frame`` holds ``key, ds, y`` sorted by key then time. Keys with no lagged pair, or whose scale is not
    above ``floor``, get NaN (no MASE for series without variation at that lag).
    """
    y = frame[S.Y].to_numpy(dtype=float)
    same = frame[key].to_numpy()
    diff = np.abs(y[season:] - y[:-season])
    valid = same[season:] == same[:-season]
    scale = pd.Series(diff[valid]).groupby(same[season:][valid]).mean()
    return scale.where(scale > floor)


def _statsforecast(models: tuple[str, ...], config: ForecastConfig) -> StatsForecast:
    return StatsForecast(models=[CANDIDATES[m].build() for m in models], freq=config.freq,
                         n_jobs=config.n_jobs if config.engine == "local" else 1)


def _to_engine(df: pd.DataFrame, config: ForecastConfig):
    """The frame statsforecast should run on: pandas locally, a Dask frame or Ray dataset for Fugue.

    Dask runs on the active ``dask.distributed`` client (Fugue starts a local one when there is none); Ray
    on the running Ray instance (or a local one).

    Raises:
        ValueError: the engine's packages are not installed (one line, for the CLI).
    """
    if config.engine == "local":
        return df
    try:
        if config.engine == "dask":
            import dask.dataframe as dd
            import fugue_dask  # noqa: F401  (registers Fugue's Dask engine)

            parts = max(1, min(df[S.UID].nunique(), 2 * (os.cpu_count() or 1)))
            return dd.from_pandas(df, npartitions=parts)
        import fugue_ray  # noqa: F401  (registers Fugue's Ray engine)
        import ray.data

        return ray.data.from_pandas(df)
    except ImportError:
        raise ValueError(f"install {config.engine} to use --engine {config.engine} "
                         f"(pip install 'gpu-cost-planner[{config.engine}]')") from None


def _from_engine(out, like: pd.DataFrame) -> pd.DataFrame:
    """A statsforecast result as the local engine returns it: pandas, a RangeIndex, ``unique_id`` and ``ds``
    (and ``cutoff``) with the dtypes of ``like`` and float64 numbers (Fugue returns Arrow timestamps, string and
    nullable Float64 columns)."""
    if isinstance(out, pd.DataFrame):
        return out
    import fugue.api as fa

    out = fa.as_pandas(out).reset_index(drop=True)
    for col in out.columns:
        if col == S.UID:
            out[col] = out[col].astype(like[S.UID].dtype)
        elif col in (S.DS, "cutoff"):
            out[col] = out[col].astype(like[S.DS].dtype)
        else:
            out[col] = out[col].to_numpy(dtype=float, na_value=np.nan)
    return out


@functools.cache
def _fugue_backend_class() -> type:
    """statsforecast's Fugue backend declaring float64 outputs: the stock one declares float32 columns, which
    moves forecasts by ~1e-7 relative and can flip a close model choice between engines."""
    import pyarrow as pa
    from statsforecast.distributed.fugue import FugueBackend
    from triad import Schema

    class Float64FugueBackend(FugueBackend):
        def _get_output_schema(self, **kwargs) -> Schema:
            schema = super()._get_output_schema(**kwargs)
            return Schema([pa.field(f.name, pa.float64()) if pa.types.is_float32(f.type) else f
                           for f in schema.fields])

    return Float64FugueBackend


DASK_WORKER_CONFIG = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.nanny.pre-spawn-environ.PYTHONWARNINGS":
        "ignore:DataFrameGroupBy.apply operated on the grouping columns:FutureWarning",
}
"""Dask settings for starting worker processes (``with dask.config.set(DASK_WORKER_CONFIG): LocalCluster(...)``).

Dask's default ``MALLOC_TRIM_THRESHOLD_`` switches off glibc's dynamic mmap threshold, which makes statsforecast's
ETS fits about 3x slower in the workers (mostly system time); the pandas deprecation warning comes from Fugue's
group-by once per call. The engine applies this to the local cluster Fugue starts when no client is active."""


def _engine_settings(config: ForecastConfig):
    """Dask: task-based shuffles (the default peer-to-peer shuffle logs two warnings per call), and
    :data:`DASK_WORKER_CONFIG` for the local cluster Fugue starts when no client is active."""
    if config.engine != "dask":
        return contextlib.nullcontext()
    import dask
    import distributed  # noqa: F401  (loads its config defaults first: set() would drop keys it created)

    return dask.config.set({"dataframe.shuffle.method": "tasks", **DASK_WORKER_CONFIG})


def _run_group(long: pd.DataFrame, models: tuple[str, ...], config: ForecastConfig, windows: int,
               ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Cross-validate (when possible) and forecast one group of series that share a candidate set.

    Other engines than ``local`` run the same statsforecast models per series through Fugue and give the
    same numbers (tests/test_engine_dask.py).
    """
    sf = _statsforecast(models, config)
    cv = None
    with warnings.catch_warnings(), _engine_settings(config):
        warnings.simplefilter("ignore")
        if config.engine == "local":
            if windows > 0:
                cv = sf.cross_validation(df=long, h=config.cv_h, n_windows=windows, step_size=config.cv_step)
            fc = sf.forecast(df=long, h=config.horizon_hours)
        else:
            df = _to_engine(long, config)
            backend = _fugue_backend_class()()
            common = {"df": df, "freq": sf.freq, "models": sf.models, "fallback_model": sf.fallback_model,
                      "level": None, "fitted": False, "prediction_intervals": None, "id_col": S.UID,
                      "time_col": S.DS, "target_col": S.Y}
            if windows > 0:
                cv = _from_engine(backend.cross_validation(
                    h=config.cv_h, n_windows=windows, step_size=config.cv_step, test_size=None, input_size=None,
                    refit=True, **common), long)
            fc = _from_engine(backend.forecast(h=config.horizon_hours, X_df=None, **common), long)
    fc = fc.sort_values([S.UID, S.DS]).reset_index(drop=True)
    if cv is not None:
        cv = cv.sort_values([S.UID, "cutoff", S.DS]).reset_index(drop=True)
    return fc, cv


def _choose(cv: pd.DataFrame | None, fc: pd.DataFrame, models: tuple[str, ...], config: ForecastConfig,
            use_ensemble: bool, history: pd.DataFrame | None = None,
            ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Per series: pick the best candidate (or the ensemble) by CV MAE.

    Returns:
        point forecasts (unique_id, ds, mean, model), CV scores (unique_id, model, cv_mae), chosen CV
        errors (unique_id, window, step, error) and the chosen model per series (unique_id, model, cv_mae).
    """
    uids = fc[S.UID].unique()
    if cv is None or len(models) == 1:
        model = models[-1] if cv is None else models[0]
        point = fc[[S.UID, S.DS]].assign(**{S.MEAN: fc[model].to_numpy(dtype=float), S.MODEL: model})
        scores = pd.DataFrame(columns=[S.UID, S.MODEL, "cv_mae"])
        errors = pd.DataFrame(columns=[S.UID, "window", "step", "error"])
        if cv is not None:
            err = cv[S.Y].to_numpy(dtype=float) - cv[model].to_numpy(dtype=float)
            errors = _error_frame(cv, err)
            scores = pd.DataFrame({S.UID: cv[S.UID], S.MODEL: model, "abs": np.abs(err)}).groupby(
                [S.UID, S.MODEL], as_index=False)["abs"].mean().rename(columns={"abs": "cv_mae"})
        chosen = pd.DataFrame({S.UID: uids, S.MODEL: model})
        chosen = chosen.merge(scores, on=[S.UID, S.MODEL], how="left")
        return point, scores, errors, chosen

    y = cv[S.Y].to_numpy(dtype=float)
    preds = {m: cv[m].to_numpy(dtype=float) for m in models}
    cv_uid = cv[S.UID].to_numpy()
    mae = pd.DataFrame({m: np.abs(y - p) for m, p in preds.items()}).groupby(cv_uid).mean()
    mae = mae.fillna(np.inf)
    k = min(config.ensemble_k or len(models), len(models))
    ranked = np.argsort(mae.to_numpy(), axis=1, kind="stable")[:, :k]
    top = {uid: [models[j] for j in ranked[i]] for i, uid in enumerate(mae.index)}
    if use_ensemble:
        ens_cv = np.empty(len(cv))
        for uid, rows in cv.groupby(S.UID, sort=False).indices.items():
            ens_cv[rows] = np.median(np.vstack([preds[m][rows] for m in top[uid]]), axis=0)
        mae[ENSEMBLE] = pd.Series(np.abs(y - ens_cv)).groupby(cv_uid).mean()
        preds[ENSEMBLE] = ens_cv
    scores = mae.replace(np.inf, np.nan).reset_index(names=S.UID).melt(
        id_vars=S.UID, var_name=S.MODEL, value_name="cv_mae")
    names = list(mae.columns)
    window_mae = pd.DataFrame({m: np.abs(y - preds[m]) for m in names}).groupby(
        [cv_uid, cv["cutoff"].to_numpy()]).mean()
    if config.selection == "simplest":
        best = simplest_within_noise(window_mae, names, config.selection_se)
    else:
        best = mae.idxmin(axis=1)
        if use_ensemble and config.selection_margin > 0:
            single = mae.drop(columns=ENSEMBLE).min(axis=1)
            best = best.where(single < (1.0 - config.selection_margin) * mae[ENSEMBLE], ENSEMBLE)
    cv_best = best.copy()
    stale: dict[str, set[str]] = {}
    if history is not None and config.step_quantile:
        seasonal = set(SEASONAL_NAIVES.values())
        ens = [u for u in best.index if best[u] == ENSEMBLE and seasonal & set(top.get(u, ()))]
        if ens:
            stale = stale_seasonal(history[history[S.UID].isin(ens)], config.step_quantile)
    for uid, drop in stale.items():
        kept = [m for m in top[uid] if m not in drop]
        top[uid] = kept if len(kept) >= 2 else top[uid]
        if best.get(uid) in drop or (best.get(uid) == ENSEMBLE and len(kept) < 2):
            ok = mae.loc[uid, [m for m in models if m not in drop]]
            best[uid] = ok.idxmin() if len(ok) else best[uid]

    # point forecasts of the chosen candidate per series
    fc_uid = fc[S.UID].to_numpy()
    chosen_model = pd.Series(fc_uid).map(best).to_numpy()
    mean = np.zeros(len(fc))
    for m in models:
        rows = chosen_model == m
        mean[rows] = fc.loc[rows, m].to_numpy(dtype=float)
    ens_rows = chosen_model == ENSEMBLE
    if ens_rows.any():
        for uid, rows in fc[ens_rows].groupby(S.UID, sort=False).indices.items():
            idx = np.flatnonzero(ens_rows)[rows]
            mean[idx] = np.median(np.vstack([fc[m].to_numpy(dtype=float)[idx] for m in top[uid]]), axis=0)
    model_label = np.array([f"{ENSEMBLE}({'+'.join(top[u])})" if b == ENSEMBLE else b
                            for u, b in zip(fc_uid, chosen_model, strict=True)], dtype=object)
    point = pd.DataFrame({S.UID: fc_uid, S.DS: fc[S.DS].to_numpy(), S.MEAN: mean, S.MODEL: model_label})

    cv_choice = pd.Series(cv_uid).map(cv_best).to_numpy()
    chosen_pred = np.zeros(len(cv))
    for m, p in preds.items():
        rows = cv_choice == m
        chosen_pred[rows] = p[rows]
    errors = _error_frame(cv, y - chosen_pred)
    chosen = pd.DataFrame({S.UID: best.index, S.MODEL: best.to_numpy(),
                           "cv_mae": mae.min(axis=1).to_numpy()})
    return point, scores, errors, chosen


SEASONAL_NAIVES = {24: "SeasonalNaive24", 168: "SeasonalNaive168"}
STEP_WINDOW = 6
"""Hours whose median is the level now and a season ago in :func:`stale_seasonal`."""


def stale_seasonal(history: pd.DataFrame, quantile: float) -> dict[str, set[str]]:
    """Seasonal naive candidates that would copy a level the series has left (a step since a season ago).

    A season of ``s`` hours is stale for a series when the median of its last :data:`STEP_WINDOW` hours differs
    from the median of the same hours ``s`` hours earlier by more than the ``quantile`` of that difference over
    the series' history: the level moved by more than its usual same-hour change, so repeating the last season
    would pull the forecast back to the old level (cross-validation cannot see a step this recent). Such
    candidates are left out of the series' forecast and ensemble.

    Args:
        history: ``unique_id, ds, y`` sorted by series then time (GPUs).
        quantile: in (0, 1]; higher detects fewer steps.

    Returns:
        ``unique_id -> {model names}`` for series with at least one stale season.
    """
    out: dict[str, set[str]] = {}
    for uid, rows in history.groupby(S.UID, sort=False).indices.items():
        y = history[S.Y].to_numpy(dtype=float)[rows]
        level = pd.Series(y).rolling(STEP_WINDOW, min_periods=STEP_WINDOW).median().to_numpy()
        for season, name in SEASONAL_NAIVES.items():
            if len(y) < 2 * season + STEP_WINDOW:
                continue
            diff = np.abs(level[season:] - level[:-season])
            diff = diff[np.isfinite(diff)]
            if len(diff) < season or diff[-1] <= 0:
                continue
            if diff[-1] > np.quantile(diff[:-1], quantile):
                out.setdefault(uid, set()).add(name)
    return out


def simplest_within_noise(window_mae: pd.DataFrame, names: list[str], se: float) -> pd.Series:
    """Per series, the simplest candidate cross-validation cannot tell apart from the best one.

    Args:
        window_mae: MAE of every candidate (columns) per series and CV window (index ``unique_id, cutoff``).
        names: the candidates to choose from.
        se: how many standard errors of the per-window MAE difference a simpler candidate may be behind the
            best one and still be chosen (0 = the best, ties to the simpler).

    Returns:
        ``unique_id -> model``. Simpler means earlier in :data:`forecasting.models.SIMPLICITY` (Naive first, the
        ensemble last): with only a few weeks of CV windows, a model that wins by less than the noise of its
        own window-to-window results is as likely to lose on the next weeks, and the simplest such model loses
        least when it does (``benchmarks/forecast_accuracy.py``, tuning origins; docs/benchmarks.md).
    """
    order = sorted(names, key=simplicity_rank)
    values = window_mae[order].to_numpy(dtype=float)
    values = np.where(np.isfinite(values), values, np.inf)
    uid = window_mae.index.get_level_values(0).to_numpy()
    groups = pd.Series(np.arange(len(uid))).groupby(uid, sort=False).indices
    out = {}
    for key, rows in groups.items():
        v = values[rows]
        mean = v.mean(axis=0)
        b = int(np.argmin(mean))
        if not np.isfinite(mean[b]):
            out[key] = order[0]
            continue
        n = len(rows)
        with np.errstate(invalid="ignore"):
            diff = v - v[:, [b]]
            sd = diff.std(axis=0, ddof=1) if n > 1 else np.zeros(len(order))
        allowed = se * np.nan_to_num(sd, nan=0.0) / np.sqrt(n)
        ok = np.flatnonzero(mean - mean[b] <= allowed + 1e-12)
        out[key] = order[int(ok[0])]
    return pd.Series(out)


def _error_frame(cv: pd.DataFrame, err: np.ndarray) -> pd.DataFrame:
    window = cv.groupby(S.UID, sort=False)["cutoff"].rank(method="dense").astype(int).to_numpy() - 1
    step = cv.groupby([S.UID, "cutoff"], sort=False).cumcount().to_numpy()
    return pd.DataFrame({S.UID: cv[S.UID].to_numpy(), "window": window, "step": step, "error": err})


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def noise_scale(long: pd.DataFrame, hours: int | None = NOISE_SCALE_HOURS) -> pd.Series:
    """Mean absolute hour-to-hour change of each series over its last ``hours`` hours (None = all; GPUs; NaN
    when 0).

    The normaliser of pooled calibration: unlike the 24-hour seasonal MAE it is positive for a mostly-zero
    series as soon as it has one burst in the window, and it grows with the size of its steps.
    """
    return seasonal_scale(_trim_history(long, hours), season=1)


LEAD_BINS = 6
"""Fewest log-spaced lead-time bins (each with :data:`MIN_BUCKET_ERRORS` errors or more) :func:`lead_growth` needs."""
MAX_LEAD_GROWTH = 0.5
"""Upper bound of the lead-time exponent: a random walk's spread grows like the square root of lead time."""


def lead_growth(errors: pd.DataFrame, scale: pd.Series | None = None) -> float:
    """Exponent ``b`` with which CV error spread grows with lead time: p10-p90 width ~ ``lead ** b``.

    Fitted by least squares of the log p10-p90 width of the CV errors (divided by each series' noise ``scale``
    when given, so every series of the run contributes) on the log lead, over log-spaced lead bins (1, 2-3,
    4-7, ... hours ahead) that hold at least :data:`MIN_BUCKET_ERRORS` errors, and kept in
    [0, :data:`MAX_LEAD_GROWTH`]. 0 (a flat band, the behaviour without growth) when fewer than
    :data:`LEAD_BINS` bins can be measured or the errors are all zero.
    """
    if errors.empty:
        return 0.0
    e = errors["error"].to_numpy(dtype=float)
    if scale is not None:
        s = errors[S.UID].map(scale.where(scale > 0)).to_numpy(dtype=float)
        e = e / s
    lead = errors["step"].to_numpy(dtype=int) + 1
    ok = np.isfinite(e)
    e, lead = e[ok], lead[ok]
    bins = np.floor(np.log2(lead)).astype(int)
    xs, ys, ws = [], [], []
    for b in np.unique(bins):
        sel = bins == b
        if sel.sum() < MIN_BUCKET_ERRORS:
            continue
        lo, hi = np.quantile(e[sel], [0.1, 0.9])
        if hi - lo <= 0:
            continue
        xs.append(np.log(np.exp(np.log(lead[sel]).mean())))
        ys.append(np.log(hi - lo))
        ws.append(np.sqrt(sel.sum()))
    if len(xs) < LEAD_BINS:
        return 0.0
    slope = np.polyfit(np.array(xs), np.array(ys), 1, w=np.array(ws))[0]
    return float(np.clip(slope, 0.0, MAX_LEAD_GROWTH))


OWN_SCALE_FLOOR = 0.25
"""The pooled half of blend calibration divides each series' CV errors by their own mean absolute value, but never
by less than this share of the series' hour-to-hour noise scale (a series whose CV windows were nearly all exact)."""


def pooling_scale(errors: pd.DataFrame, noise: pd.Series) -> pd.Series:
    """Per series, what its CV errors are divided by before they are pooled with every other series' (GPUs).

    It is the mean absolute CV error of the series' chosen model, but at least :data:`OWN_SCALE_FLOOR` times its
    noise scale (:func:`noise_scale`); NaN where neither is positive. Series without CV errors are not in it: they
    keep pooling in units of their noise scale. Pooling errors in units of each series' own typical error borrows
    only the *shape* of the error distribution from the other series. Dividing by the noise scale alone had given
    series whose hours move a lot but whose forecast errs little (a daily cycle that the seasonal naive repeats)
    bands that were too wide, and drifting series bands that were too narrow. Tuning origins of
    ``benchmarks/forecast_accuracy.py``, p10-p90 coverage of seasonal / smooth series: 96.7% / 71.1% before,
    80.7% / 76.2% with this scale; scaled pinball loss 0.476 -> 0.453; trace x horizon cells within 75-85%:
    8 -> 10 of 13. The sample paths' widening beyond the CV window (:func:`forecasting.paths.widening`) keeps the
    noise unit: with this unit the full-term plan backtest's tuning origins got slightly worse (plan / hindsight
    1.0193 / 1.0171 with / without spot against 1.0183 / 1.016).
    """
    own = errors["error"].abs().groupby(errors[S.UID]).mean()
    floor = OWN_SCALE_FLOOR * noise.reindex(own.index)
    scaled = pd.concat([own, floor], axis=1).max(axis=1)
    return scaled.where(scaled > 0)


def conformal_quantiles(point: pd.DataFrame, errors: pd.DataFrame, scale: pd.Series | None = None,
                        spread: tuple[np.ndarray, np.ndarray] | None = None, growth: float = 0.0) -> pd.DataFrame:
    """Add p05..p95 to point forecasts from the empirical quantiles of CV errors.

    Args:
        point: ``unique_id, ds, mean`` (and other columns, kept).
        errors: CV errors ``unique_id, window, step, error`` (GPUs, y - forecast).
        scale: per-series noise scale (:func:`noise_scale`). When given, each quantile is the average of the
            series' own error quantile and the quantile of all series' errors pooled in units of each series'
            :func:`pooling_scale` (its own mean absolute CV error, floored by a share of ``scale``), times that
            unit; series without CV errors get the pooled quantile alone, in units of ``scale``. Without it (or with
            fewer than ``MIN_BUCKET_ERRORS`` pooled errors) the series' own errors only.
        spread: per row of ``point``, the standard deviation (GPUs) of a random walk added in quadrature to the
            calibrated offsets and the spread the band has at least before it (GPUs; the short-history widening,
            :func:`forecasting.paths.widen_offsets`, :func:`walk_spread`). None = none.
        growth: lead-time exponent ``b`` (:func:`lead_growth`). Errors are divided by ``lead ** b`` before their
            quantiles are taken and the offsets multiplied back by the forecast hour's ``lead ** b``: the band is
            calibrated on every CV lead at once and narrows near the origin and widens further out, beyond the
            CV window too (0 = the same band at every lead).

    Series without CV errors, without a positive scale and without spread get a zero-width band around the
    point forecast.
    """
    out = point.copy()
    step = out.groupby(S.UID, sort=False).cumcount().to_numpy()
    out["bucket"] = step // BUCKET_HOURS
    if growth > 0 and not errors.empty:
        errors = errors.assign(error=errors["error"].to_numpy(dtype=float)
                               / (errors["step"].to_numpy(dtype=float) + 1.0) ** growth)
    levels = np.array(list(QUANTILES.values()))
    shift = np.zeros((len(out), len(levels)))
    own = np.zeros(len(out), dtype=bool)
    if not errors.empty:
        e = errors.assign(bucket=errors["step"] // BUCKET_HOURS)
        last_bucket = e.groupby(S.UID)["bucket"].max()
        out["bucket"] = np.minimum(out["bucket"].to_numpy(), out[S.UID].map(last_bucket).fillna(0).to_numpy())
        by_bucket = e.groupby([S.UID, "bucket"])["error"]
        q_bucket = by_bucket.quantile(levels).unstack()
        counts = by_bucket.size()
        q_all = e.groupby(S.UID)["error"].quantile(levels).unstack()
        # Buckets with too few errors borrow the series' pooled quantiles.
        thin = counts[counts < MIN_BUCKET_ERRORS].index
        if len(thin):
            q_bucket.loc[thin] = q_all.loc[thin.get_level_values(0)].to_numpy()
        keys = pd.MultiIndex.from_arrays([out[S.UID], out["bucket"]])
        shift = q_bucket.reindex(keys).to_numpy()
        own = ~np.isnan(shift).any(axis=1)
        shift[~own] = 0.0
    if scale is not None and not errors.empty:
        # series with CV errors pool in units of their own typical error; series without pool in noise units
        for unit, rows in ((pooling_scale(errors, scale), own), (scale.where(scale > 0), ~own)):
            if not rows.any():
                continue
            z = (errors["error"] / errors[S.UID].map(unit)).to_numpy(dtype=float)
            z = z[np.isfinite(z)]
            if len(z) < MIN_BUCKET_ERRORS:
                continue
            pooled = np.quantile(z, levels)[None, :] * out[S.UID].map(unit).fillna(0.0).to_numpy()[:, None]
            shift = np.where((rows & own)[:, None], 0.5 * (shift + pooled), np.where(rows[:, None], pooled, shift))
    if growth > 0:
        shift = shift * ((step + 1.0) ** growth)[:, None]
    if spread is not None:
        cols = list(QUANTILES)
        shift = widen_offsets(shift, Z_SCORES, spread[0], cols.index(S.P10), cols.index(S.P90), base=spread[1])
    for j, col in enumerate(QUANTILES):
        out[col] = out[S.MEAN].to_numpy() + shift[:, j]
    values = np.sort(np.clip(out[list(QUANTILES)].to_numpy(dtype=float), 0.0, None), axis=1)
    out[list(QUANTILES)] = values
    out[S.MEAN] = np.clip(out[S.MEAN].to_numpy(dtype=float), 0.0, None)
    return out.drop(columns="bucket")


def forecast_long(long: pd.DataFrame, config: ForecastConfig | None = None, *,
                  progress: Progress | None = None) -> LongForecast:
    """Forecast every series of a long frame (``unique_id, ds, y``; hourly, GPUs).

    Bad series never crash the run: NaN values are dropped (noted), series too short for a model or for
    cross-validation fall back to the models they can fit, and all-zero or constant series get their
    constant back.
    """
    config = config or ForecastConfig()
    say = progress or (lambda _msg: None)
    notes: list[str] = []
    long = long[[S.UID, S.DS, S.Y]].copy()
    nan = long[S.Y].isna() | ~np.isfinite(long[S.Y].to_numpy(dtype=float))
    if nan.any():
        notes.append(f"{int(nan.sum())} missing or non-finite values dropped")
        long = long[~nan]
    if long.empty:
        raise ValueError("no usable values to forecast")
    long = long.sort_values([S.UID, S.DS], kind="stable").reset_index(drop=True)
    long, padded = _align_end(long)
    if padded:
        notes.append(f"{padded} series ended before the last hour of the data; padded with 0 GPUs to the end")
    outages = outage_hours(long) if config.fill_outages else pd.DatetimeIndex([])
    if len(outages):
        long = fill_outage_hours(long, outages)
        notes.append(describe_outages(outages))
        say(notes[-1])
    # sample paths use daily levels only beyond the CV window
    levels = daily_levels(long, config.path_history_hours) if config.horizon_hours > config.cv_h else None
    observed = _observed_hours(long)
    long = _trim_history(long, config.history_hours).reset_index(drop=True)
    stats = long.groupby(S.UID)[S.Y].agg(n="size", zero_share=lambda y: float((y == 0).mean()))
    scale = seasonal_scale(long)

    groups: dict[tuple[tuple[str, ...], int], list[str]] = {}
    for uid, row in stats.iterrows():
        models = candidates_for(int(row["n"]), config.models, row["zero_share"] >= INTERMITTENT_ZERO_SHARE)
        models, windows = _plan_series(int(row["n"]), models, config.cv_h, config.cv_windows, config.cv_step)
        groups.setdefault((models, windows), []).append(uid)
    wanted = [m for m in config.models if m != ENSEMBLE]
    points, scores, errors, chosen = [], [], [], []
    for i, ((models, windows), uids) in enumerate(sorted(groups.items(), key=lambda kv: -len(kv[1])), 1):
        say(f"fitting {len(uids)} series with {', '.join(models)} ({windows} CV windows) [{i}/{len(groups)}]")
        missing = [m for m in wanted if m not in models and not CANDIDATES[m].intermittent_only]
        if missing:
            notes.append(f"{len(uids)} series too short for {', '.join(missing)}; candidates: {', '.join(models)}")
        if windows == 0 and len(models) > 1:
            notes.append(f"{len(uids)} series too short to cross-validate; used {models[-1]}")
        part = long[long[S.UID].isin(uids)]
        fc, cv = _run_group(part, models, config, windows)
        use_ensemble = ENSEMBLE in config.models and len(models) >= 2
        p, s, e, c = _choose(cv, fc, models, config, use_ensemble, part)
        points.append(p)
        scores.append(s)
        errors.append(e)
        chosen.append(c.assign(candidates=len(models) + int(use_ensemble and cv is not None)))
    say("calibrating quantiles")
    point = pd.concat(points, ignore_index=True).sort_values([S.UID, S.DS], kind="stable").reset_index(drop=True)
    err = _concat(errors, [S.UID, "window", "step", "error"])
    noise = noise_scale(long) if config.calibration == "blend" else None
    short = _short_history(point, err, observed, long, config) if config.widen_short_history else None
    growth = lead_growth(err, noise) if config.lead_growth else 0.0
    out = conformal_quantiles(point, err, noise, spread=None if short is None else walk_spread(point, short.series),
                              growth=growth)
    no_cv = set(point[S.UID]) - set(err[S.UID])
    if no_cv:
        pooled = noise is not None and len(err) >= MIN_BUCKET_ERRORS
        walked = short is not None and no_cv <= set(short.series.index)
        notes.append(f"{len(no_cv)} series have no CV errors: " + (
            "their range comes from the other series' errors, scaled to their own hour-to-hour changes"
            if pooled else "their range is the short-history widening below" if walked
            else "their range is the point forecast only"))
    if short is not None:
        notes.append(short.note)
        say(short.note)
    sel = pd.concat([c.astype({"cv_mae": float}) for c in chosen if not c.empty], ignore_index=True)
    sel["cv_mase"] = sel["cv_mae"] / sel[S.UID].map(scale).to_numpy()
    sel["history_hours"] = sel[S.UID].map(stats["n"]).astype(int).to_numpy()
    sel["intermittent"] = sel[S.UID].map(stats["zero_share"] >= INTERMITTENT_ZERO_SHARE).to_numpy()
    cols = [S.UID, S.DS, S.MEAN, *QUANTILES, S.MODEL]
    return LongForecast(forecast=out[cols], selection=sel.sort_values(S.UID).reset_index(drop=True),
                        cv_scores=_concat(scores, [S.UID, S.MODEL, "cv_mae"]), errors=err, notes=tuple(notes),
                        calibration=config.calibration, outage_hours=len(outages), levels=levels,
                        noise=noise, short_history=short, lead_growth=growth)


def _observed_hours(long: pd.DataFrame) -> pd.Series:
    """Hours from each series' first row to the data's last hour (inclusive): the history the short-history
    rule counts, before ``ForecastConfig.history_hours`` trims the fit."""
    first = long.groupby(S.UID)[S.DS].min()
    return ((long[S.DS].max() - first) // pd.Timedelta(hours=1) + 1).astype(int)


def _short_history(point: pd.DataFrame, errors: pd.DataFrame, observed: pd.Series, long: pd.DataFrame,
                   config: ForecastConfig) -> ShortHistory | None:
    """The series whose history is short against the horizon (:func:`forecasting.paths.short_history`), with
    their random-walk rates (from the hour-to-hour changes of the fitted history ``long``), floors and the note;
    None when there are none."""
    uids = pd.Index(point[S.UID].unique())
    checked = pd.Series(0, index=uids)
    if not errors.empty:
        block = errors.groupby(S.UID)["step"].max() + 1
        checked.loc[block.index] = block.to_numpy()
    history = observed.reindex(uids).to_numpy(dtype=float)
    flag = short_history(history, checked.to_numpy(dtype=float), config.horizon_hours,
                         cross_validated=config.cv_windows > 0)
    if not flag.any():
        return None
    noise = noise_scale(long, hours=None).reindex(uids).to_numpy(dtype=float)
    floor = spread_floor(long[S.Y].to_numpy(), long[S.UID].to_numpy()).reindex(uids).fillna(0.0).to_numpy()
    series = pd.DataFrame({"history_hours": history.astype(int), "checked_hours": checked.to_numpy(dtype=int),
                           "rate": walk_rate(noise), "floor": np.where(checked.to_numpy() > 0, 0.0, floor)},
                          index=uids)[flag]
    series.index.name = S.UID
    return ShortHistory(series=series, horizon_hours=config.horizon_hours,
                        note=_short_note(series, len(uids), config.horizon_hours))


def walk_spread(point: pd.DataFrame, short: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``point`` (``unique_id, ds``, sorted by series, then time): the walk's standard deviation at
    that lead time and the series' floor (both GPUs; 0 for series not in ``short``, a
    ``ShortHistory.series`` frame), for :func:`conformal_quantiles`."""
    lead = point.groupby(S.UID, sort=False).cumcount().to_numpy() + 1
    uid = point[S.UID]
    rate = uid.map(short["rate"]).fillna(0.0).to_numpy(dtype=float)
    checked = uid.map(short["checked_hours"]).fillna(0).to_numpy(dtype=float)
    return walk_sd(rate, checked, lead), uid.map(short["floor"]).fillna(0.0).to_numpy(dtype=float)


def _duration(hours: float) -> str:
    return f"{hours:.0f} hours" if hours < 48 else f"{hours / 24:.0f} days"


def _short_note(short: pd.DataFrame, n_series: int, horizon_hours: int) -> str:
    """One line: whose history is short against which horizon, and how the ranges were widened."""
    hist = short["history_hours"]
    span = _duration(hist.min()) if _duration(hist.min()) == _duration(hist.max()) else \
        f"{_duration(hist.min())} to {_duration(hist.max())}"
    horizon = f"{horizon_hours / 24:.0f}-day" if horizon_hours >= 48 else f"{horizon_hours}-hour"
    who = (f"history {span} is" if len(short) == n_series else
           f"the history of {len(short)} of {n_series} series ({span}) is")
    checked = sorted(set(short["checked_hours"]))
    if checked == [0]:
        how = "too short to cross-validate, ranges widened from the first hour ahead"
    elif 0 in checked:
        how = "ranges widened beyond what cross-validation could check (none for some series)"
    else:
        how = f"ranges widened beyond the {_duration(max(checked))} cross-validation could check"
    flat = short.index[short["rate"] <= 0]
    names = f" ({', '.join(S.series_label(u) for u in flat)})" if len(flat) <= 3 else ""
    tail = (f"; {len(flat)} of them{names} never changed from hour to hour, so no range could be estimated for "
            + ("it" if len(flat) == 1 else "them")) if len(flat) else ""
    return (f"{who} short against the {horizon} horizon: {how} (a random walk of each series' hour-to-hour "
            f"changes, spread growing with the square root of lead time){tail}")


def forecast(usage: pd.DataFrame, config: ForecastConfig | None = None, *,
             progress: Progress | None = None) -> ForecastResult:
    """Forecast every (team, gpu_type) series of a validated usage frame.

    Args:
        usage: canonical usage frame (see ``usage.schema.validate_usage``).
        config: forecast settings; defaults to one week ahead.
        progress: optional callback receiving one line per step (for CLI progress).

    Returns:
        A :class:`ForecastResult`; forecasts start at the hour after the data's last hour.
    """
    config = config or ForecastConfig()
    res = forecast_long(S.to_long(usage), config, progress=progress)
    fc = res.forecast
    team, gpu = S.split_uid(fc[S.UID])
    out = pd.DataFrame({S.TEAM: team, S.GPU_TYPE: gpu, S.TIMESTAMP: pd.to_datetime(fc[S.DS]).to_numpy()})
    for col in (S.MEAN, *QUANTILES, S.MODEL):
        out[col] = fc[col].to_numpy()
    out = out.sort_values([S.TEAM, S.GPU_TYPE, S.TIMESTAMP]).reset_index(drop=True)
    sel = res.selection.copy()
    sel[S.TEAM], sel[S.GPU_TYPE] = S.split_uid(sel[S.UID])
    sel = sel[[S.TEAM, S.GPU_TYPE, S.MODEL, "cv_mae", "cv_mase", "candidates", "history_hours", "intermittent"]]
    scores = res.cv_scores.copy()
    if scores.empty:
        scores = pd.DataFrame(columns=[S.TEAM, S.GPU_TYPE, S.MODEL, "cv_mae"])
    else:
        scores[S.TEAM], scores[S.GPU_TYPE] = S.split_uid(scores[S.UID])
        scores = scores[[S.TEAM, S.GPU_TYPE, S.MODEL, "cv_mae"]]
    return ForecastResult(forecast=out, selection=sel.sort_values([S.TEAM, S.GPU_TYPE]).reset_index(drop=True),
                          cv_scores=scores.reset_index(drop=True), config=config, notes=res.notes, long=res)


def sample_paths(result: LongForecast, n_paths: int = 100, seed: int = 0, *,
                 centred: bool = True) -> dict[str, np.ndarray]:
    """Joint demand scenarios: ``uid -> array (n_paths, horizon)`` of GPUs per hour, never negative.

    Each path adds to every series' point forecast the CV error trajectory of one CV window, rolled by a
    whole number of days, block after block of the CV window's length. The window and shift are drawn
    once per block for all series together, which keeps the co-movement of teams seen in the past.
    When the horizon is longer than the CV window (where the CV errors say nothing about how far the level
    wanders), each series' replayed errors are rescaled to the blended p10-p90 width of blend calibration
    (:func:`forecasting.paths.widening`) and, when the forecast carries daily levels, each path gets the level
    shifts that followed one historical day, drawn for all series together
    (:func:`forecasting.paths.level_shifts`). Series without CV errors get their point forecast (plus level
    shifts) in every path.

    Series whose history is short against the horizon (``result.short_history``) also get a random walk from
    the hour after their checked hours (:func:`forecasting.paths.walk_paths`, standard deviation
    ``sqrt(rate x hours)`` as in their widened quantiles), :data:`forecasting.paths.WALK_CORRELATION` of its
    variance common to all series. The walks come from their own random stream (seeded by ``seed``), so the
    other series' paths are the same as without them.

    ``centred`` (the default) shifts the paths per hour so that they average to the point forecast
    (:func:`centre_on_mean`): the forecast table and the budget alerts then state one expected demand per series
    and hour. Without it the paths keep the drift of the replayed errors and level shifts and the lift of clipping
    at 0 GPUs (what the planner's scenarios use, :data:`optimizer.inputs.PLAN_PATHS_CENTRED`).
    """
    rng = np.random.default_rng(seed)
    fc = result.forecast
    err = result.errors
    horizon = int(fc.groupby(S.UID).size().max())
    n_windows = int(err["window"].max()) + 1 if not err.empty else 0
    block = int(err["step"].max()) + 1 if not err.empty else horizon
    n_blocks = -(-horizon // block)
    days = max(block // 24, 1)
    window_draw = rng.integers(0, max(n_windows, 1), size=(n_paths, n_blocks))
    shift_draw = rng.integers(0, days, size=(n_paths, n_blocks)) * 24
    # Beyond the CV window only (drawn after the CV replay's draws): within it the replayed errors are the
    # model's own horizon-matched errors, and rescaling them was neutral to mixed on 168 h plans (3 origins,
    # plan / hindsight: Helios without spot 1.010 -> 1.008, Alibaba with spot 1.030 -> 1.032).
    beyond = horizon > block
    origins = shift_origins(result.levels, horizon, n_paths, rng) if beyond else None
    widen = widening(err, result.noise, MIN_BUCKET_ERRORS) if beyond else {}
    walks = _walks(result.short_history, horizon, n_paths, seed)
    out: dict[str, np.ndarray] = {}
    by_uid = {uid: g for uid, g in err.groupby(S.UID)} if not err.empty else {}
    for uid, rows in fc.groupby(S.UID, sort=False):
        mean = rows[S.MEAN].to_numpy(dtype=float)
        h = len(mean)
        noise = np.zeros((n_paths, h))
        if uid in by_uid:
            g = by_uid[uid]
            traj = np.zeros((n_windows, block))
            traj[g["window"].to_numpy(), g["step"].to_numpy()] = g["error"].to_numpy(dtype=float) * widen.get(uid, 1.0)
            replay = np.empty((n_paths, n_blocks * block))
            for b in range(n_blocks):
                picked = traj[window_draw[:, b]]
                idx = (np.arange(block)[None, :] + shift_draw[:, b][:, None]) % block
                replay[:, b * block:(b + 1) * block] = np.take_along_axis(picked, idx, axis=1)
            noise = replay[:, :h]
        if origins is not None and uid in result.levels.index:
            noise = noise + level_shifts(result.levels.loc[uid].to_numpy(dtype=float), origins, h)
        if uid in walks:
            noise = noise + walks[uid](h)
        out[uid] = centre_on_mean(mean, noise) if centred else np.clip(mean[None, :] + noise, 0.0, None)
    return out


def centre_on_mean(mean: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Paths ``max(mean + noise - c, 0)`` whose average over the paths is ``mean`` in every hour (GPUs).

    The replayed CV errors, level shifts and walks need not average to zero, and clipping at 0 GPUs raises the
    average further; the shift ``c`` per hour removes both, so the paths spread around the same expected demand as
    the forecast's ``mean`` column (a series forecast at 0 GPUs gets 0 in every path). Solved exactly per hour from
    the sorted values: with the ``k`` largest of ``n`` values above the shift, ``c = (top_k_sum - n x mean) / k``.

    Args:
        mean: point forecast, ``(hours,)``, never negative.
        noise: ``(n_paths, hours)``.
    """
    mean = np.maximum(np.asarray(mean, dtype=float), 0.0)
    values = mean[None, :] + noise
    n = values.shape[0]
    desc = -np.sort(-values, axis=0)
    k = np.arange(1, n + 1, dtype=float)[:, None]
    shift = (np.cumsum(desc, axis=0) - n * mean[None, :]) / k
    below = np.vstack([desc[1:], np.full((1, desc.shape[1]), -np.inf)])
    valid = (shift >= below - 1e-9) & (shift <= desc + 1e-9)
    first = np.argmax(valid, axis=0)   # the smallest valid k; one always exists since f(c) is continuous
    c = shift[first, np.arange(desc.shape[1])]
    return np.clip(values - c[None, :], 0.0, None)


def _walks(short: ShortHistory | None, horizon: int, n_paths: int, seed: int) -> dict[str, Callable]:
    """Per short series, a function ``hours -> (n_paths, hours)`` of random-walk GPUs (see :func:`sample_paths`).

    The common shocks are drawn here from a stream of their own; each series' own shocks come from a child
    stream of its position in ``short.series`` and are drawn only when its function is called (a year of hours x
    200 paths x every series at once would not fit in memory)."""
    if short is None or short.series.empty:
        return {}
    common = np.random.default_rng([seed, 1]).standard_normal((n_paths, horizon + 1))
    return {uid: functools.partial(_walk, common, (seed, 1, i), int(row["checked_hours"]), float(row["rate"]),
                                   float(row["floor"]))
            for i, (uid, row) in enumerate(short.series.iterrows())}


def _walk(common: np.ndarray, stream: tuple[int, ...], checked: int, rate: float, floor: float,
          hours: int) -> np.ndarray:
    """One series' random walk (``rate`` GPUs^2 per hour from the hour after ``checked``) plus its floor's noise
    (sd ``floor`` GPUs, :data:`forecasting.paths.FLOOR_LEVEL_SHARE` of the variance held for the whole path), in
    GPUs, ``(n_paths, hours)``; :data:`forecasting.paths.WALK_CORRELATION` of the variance comes from
    ``common``."""
    rng = np.random.default_rng(list(stream))
    n_paths = common.shape[0]
    shocks = np.sqrt(WALK_CORRELATION) * common[:, :hours + 1] + np.sqrt(1.0 - WALK_CORRELATION) * \
        rng.standard_normal((n_paths, hours + 1))
    out = np.sqrt(rate) * walk_paths(shocks[:, :hours], checked, hours)
    if floor > 0:
        out += floor * (np.sqrt(FLOOR_LEVEL_SHARE) * shocks[:, hours:hours + 1]
                        + np.sqrt(1.0 - FLOOR_LEVEL_SHARE) * rng.standard_normal((n_paths, hours)))
    return out


def default_n_jobs(models: tuple[str, ...] = DEFAULT_MODELS) -> int:
    """Processes to use for fitting: ``$GPUPLAN_N_JOBS`` if set; otherwise one for sets of naive-type models
    (process start-up costs more than their fits: 291 vs 136 hourly series/s on 1 vs 2 processes, see
    docs/benchmarks.md) and every core when MSTL, AutoETS or AutoTheta are candidates."""
    if "GPUPLAN_N_JOBS" in os.environ:
        return int(os.environ["GPUPLAN_N_JOBS"])
    heavy = {"MSTL", "AutoETS", "AutoTheta"}
    return (os.cpu_count() or 1) if heavy & set(models) else 1


def write_forecast_csv(fc: pd.DataFrame, path) -> None:
    """Write the forecast contract CSV (timestamps as ISO 8601 UTC) atomically."""
    from usage.io import write_csv_atomic

    cols = [c for c in S.FORECAST_COLUMNS_FULL if c in fc.columns]
    out = fc[cols].copy()
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
    for col in (S.MEAN, *QUANTILES):
        if col not in df.columns:
            continue
        vals = pd.to_numeric(df[col], errors="coerce")
        bad = ~np.isfinite(vals.to_numpy(dtype=float)) | (vals < 0).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise S.UsageError(src, S.bad_value(f"{col} value", df[col].iloc[row], "is not a finite number >= 0"),
                               row=S.csv_row(row), column=col, fix="forecasts are GPUs per hour, >= 0")
        df[col] = vals.astype(float)
    if S.MODEL not in df.columns:
        df[S.MODEL] = "external"
    df[S.TEAM] = df[S.TEAM].astype(str)
    df[S.GPU_TYPE] = df[S.GPU_TYPE].astype(str)
    return df[[c for c in S.FORECAST_COLUMNS_FULL if c in df.columns]]
