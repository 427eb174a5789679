"""Forecast throughput in series per second of ``forecast_long``.

Run: .venv/bin/python benchmarks/forecast_throughput.py [--daily 1000 --hourly 200 --models default --no-dask]

Three workloads, each timed with the local engine at ``n_jobs=1`` and ``n_jobs=2`` and with the Dask engine
(statsforecast through Fugue) on a local two-worker cluster, all on the same data in one process:

- 1,000 daily series of two years (weekly season), 28 days ahead, with the daily counterpart of the default
  set: Naive, SeasonalNaive7, the intermittent models, Ensemble (the default set's 24/168-hour seasons mean
  nothing on daily data);
- 200 hourly series of eight weeks (daily and weekly seasons), one week ahead, default model set;
- the ``make demo`` forecast: the shipped synthetic organisation (30 series), 1,344 hours of history, 720 ahead.

Every run uses the default cross-validation (12 rolling origins, one day apart for hourly data, one week for
daily data). Before timing, each engine forecasts a few series once, so numba compilation, imports and
Dask worker start-up are not counted; the workers start without Dask's ``MALLOC_TRIM_THRESHOLD_``
(see ``forecasting.engine.DASK_WORKER_CONFIG``). Ratios are against ``n_jobs=1`` measured in the same process; the
load average is printed because other work on the machine moves the seconds. The data come from a seeded
numpy generator, so every run forecasts the same series. ``--models full`` times the hourly workloads with
the full set (MSTL, AutoETS, AutoTheta), where fitting, not per-call overhead, dominates.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from forecasting.engine import DASK_WORKER_CONFIG, QUANTILES, ForecastConfig, LongForecast, forecast_long
from forecasting.models import ENSEMBLE, INTERMITTENT, MODEL_SETS
from forecasting.samples import load_sample
from usage import schema as S

DAILY_MODELS = ("Naive", "SeasonalNaive7", *INTERMITTENT, ENSEMBLE)
"""The default set's daily counterpart: the baselines with a weekly season of 7 days."""
START = pd.Timestamp("2024-01-01")
INTERMITTENT_SHARE = 0.15
"""Share of generated series that are bursty (mostly zero), like small teams' GPU usage."""


def _ar1(rng: np.random.Generator, shape: tuple[int, int], sd: float, phi: float = 0.8) -> np.ndarray:
    shocks = rng.normal(0.0, sd, shape)
    out = np.empty(shape)
    out[:, 0] = shocks[:, 0]
    for t in range(1, shape[1]):
        out[:, t] = phi * out[:, t - 1] + shocks[:, t]
    return out


def _long(y: np.ndarray, freq: str, prefix: str) -> pd.DataFrame:
    n, length = y.shape
    uids = np.array([f"{prefix}{i:04d}" for i in range(n)], dtype=object)
    return pd.DataFrame({S.UID: np.repeat(uids, length),
                         S.DS: np.tile(pd.date_range(START, periods=length, freq=freq).to_numpy(), n),
                         S.Y: y.ravel()})


def _bursty(rng: np.random.Generator, y: np.ndarray) -> np.ndarray:
    """Turn a share of the series into intermittent ones: zero most of the time, whole GPUs when busy."""
    pick = rng.random(y.shape[0]) < INTERMITTENT_SHARE
    busy = rng.random(y.shape) < 0.25
    bursts = np.where(busy, rng.integers(1, 9, y.shape), 0).astype(float)
    y[pick] = bursts[pick]
    return y


def daily_series(n: int = 1000, days: int = 730, seed: int = 20251201) -> pd.DataFrame:
    """``n`` daily series (GPU-days per day): level, growth, a weekday/weekend pattern and AR(1) noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    level = rng.lognormal(3.0, 0.8, (n, 1))
    growth = 1 + rng.normal(0.3, 0.3, (n, 1)) * t / days
    weekend = np.asarray(pd.date_range(START, periods=days, freq="D").dayofweek >= 5)
    week = np.where(weekend[None, :], rng.uniform(0.3, 0.9, (n, 1)), 1.0)
    y = level * growth * week * (1 + _ar1(rng, (n, days), 0.05))
    return _long(_bursty(rng, np.clip(y, 0.0, None)), "D", "daily-")


def hourly_series(n: int = 200, hours: int = 24 * 7 * 8, seed: int = 20251202) -> pd.DataFrame:
    """``n`` hourly series (GPUs): level, a daily cycle, a weekday/weekend pattern and AR(1) noise."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(START, periods=hours, freq="h")
    hour = np.asarray(ts.hour)[None, :]
    weekend = np.asarray(ts.dayofweek >= 5)[None, :]
    level = rng.lognormal(2.5, 0.8, (n, 1))
    day = 1 + rng.uniform(0.1, 0.5, (n, 1)) * np.sin(2 * np.pi * (hour - rng.uniform(8, 16, (n, 1))) / 24)
    week = np.where(weekend, rng.uniform(0.4, 0.9, (n, 1)), 1.0)
    y = level * day * week * (1 + _ar1(rng, (n, hours), 0.05, phi=0.95))
    return _long(_bursty(rng, np.clip(y, 0.0, None)), "h", "hourly-")


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    long: pd.DataFrame
    config: ForecastConfig

    @property
    def series(self) -> int:
        return int(self.long[S.UID].nunique())


def workloads(n_daily: int, n_hourly: int, models: str = "default") -> list[Workload]:
    """The three workloads (a count of 0 leaves that one out); ``models`` names the hourly model set."""
    daily = ForecastConfig(horizon_hours=28, history_hours=None, models=DAILY_MODELS, cv_step_hours=7, freq="D")
    hourly = MODEL_SETS[models]
    out = []
    if n_daily:
        out.append(Workload(f"{n_daily:,} daily series, 730 d, h=28 d", daily_series(n_daily), daily))
    if n_hourly:
        out.append(Workload(f"{n_hourly:,} hourly series, 1,344 h, h=168 h, {models} set", hourly_series(n_hourly),
                            ForecastConfig(horizon_hours=168, models=hourly)))
    out.append(Workload(f"make demo: 30 hourly series, 1,344 h, h=720 h, {models} set",
                        S.to_long(load_sample("synthetic")),
                        ForecastConfig(horizon_hours=720, history_hours=1344, models=hourly)))
    return out


def _timed(run: Callable[[], LongForecast], repeats: int) -> tuple[float, LongForecast]:
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _max_diff(a: LongForecast, b: LongForecast) -> tuple[float, bool]:
    cols = [S.MEAN, *QUANTILES]
    diff = float(np.abs(a.forecast[cols].to_numpy() - b.forecast[cols].to_numpy()).max())
    return diff, bool((a.selection[S.MODEL] == b.selection[S.MODEL]).all())


def markdown(rows: list[dict]) -> str:
    """The results as a Markdown table (seconds to one decimal, series/s to three digits, ratios to two)."""
    fmt = {"seconds": "{:.1f}", "series/s": "{:.3g}", "vs n_jobs=1": "{:.2f}x", "max abs diff vs n_jobs=1": "{:.1e}",
           "same models": "{}"}
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if k in ("workload", "engine") else "---:"
                                                            for k in head) + "|"]
    lines += ["| " + " | ".join(fmt.get(k, "{}").format(r[k]) for k in head) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--daily", type=int, default=1000, help="daily series (default 1000)")
    parser.add_argument("--hourly", type=int, default=200, help="hourly series (default 200)")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers, one thread each (default 2)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per cell; the fastest counts (default 1)")
    parser.add_argument("--models", choices=list(MODEL_SETS), default="default",
                        help="model set of the hourly workloads (default: default)")
    parser.add_argument("--no-dask", action="store_true", help="time the local engine only")
    args = parser.parse_args(argv)

    engines: dict[str, dict] = {"local, n_jobs=1": {"n_jobs": 1}, "local, n_jobs=2": {"n_jobs": 2}}
    client = cluster = None
    if not args.no_dask:
        import dask
        from dask.distributed import Client, LocalCluster

        t0 = time.perf_counter()
        with dask.config.set(DASK_WORKER_CONFIG):
            cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
        client = Client(cluster)
        print(f"Dask LocalCluster with {args.workers} worker processes started in {time.perf_counter() - t0:.1f} s")
        engines[f"dask, {args.workers} workers"] = {"engine": "dask"}
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start")

    rows = []
    try:
        for wl in workloads(args.daily, args.hourly, args.models):
            warm = wl.long[wl.long[S.UID].isin(wl.long[S.UID].unique()[:4])]
            base: tuple[float, LongForecast] | None = None
            for label, change in engines.items():
                config = dataclasses.replace(wl.config, **change)
                forecast_long(warm, config)
                seconds, result = _timed(lambda d=wl.long, c=config: forecast_long(d, c), args.repeats)
                base = base or (seconds, result)
                diff, same_models = _max_diff(base[1], result)
                rows.append({"workload": wl.name, "engine": label, "series": wl.series, "seconds": seconds,
                             "series/s": wl.series / seconds, "vs n_jobs=1": base[0] / seconds,
                             "max abs diff vs n_jobs=1": diff, "same models": same_models})
                print(f"  {wl.name} | {label}: {seconds:.1f} s", flush=True)
    finally:
        if client is not None:
            client.close()
            cluster.close()

    print(f"\nload average {os.getloadavg()[0]:.1f} at end\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
