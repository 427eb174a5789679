"""Ranges from short histories (run: .venv/bin/python benchmarks/short_history.py [--tune] [--quick]).

What the short-history widening of the engine (``forecasting.paths.short_history``, ``ForecastConfig.
widen_short_history``) does to the ranges of forecasts fitted on a few days or weeks of usage: for each origin,
history length and horizon, the shipped SYNTHETIC organisation (22 teams, 30 team x GPU-type series) is cut to
the ``days`` days before the origin, forecast ``horizon`` hours ahead with the engine's defaults, and scored on
the realised hours after the origin:

- ``cov_h``: share of held-out series-hours inside the forecast's p10-p90 (target 0.80), overall and per lead
  time (``1-24``, ``25-168``, ``169-336``, ``337-720`` hours ahead);
- ``cov_total``: share of series whose realised GPU-hours over the whole horizon lie inside the p10-p90 of the
  sum over each of 200 joint sample paths (what ``gpuplan alerts`` prices; target 0.80);
- ``cov_gpu``: the same for the organisation's total per GPU model (what the planner buys for);
- ``width``: mean p10-p90 width over the mean realised demand (sharpness: lower is better at equal coverage).

Each cell is forecast once with the widening on; ``off`` rows give the ranges the same forecasts had without it
(:func:`forecasting.engine.conformal_quantiles` without spread, sample paths without walks), and ``--tune`` rescales
the walk rates (``WALK_NOISE_FACTOR``) and the common share of the walks (``WALK_CORRELATION``) on the TUNING
origins only, so the shipped constants can be chosen there and reported on the REPORTING origins.

Origins (first hour forecast): TUNING = the first of each month December 2024 - May 2025, REPORTING = June -
November 2025 (the last 720-hour window ends on 2025-12-01, the data's end). Histories: 1, 7, 14, 30, 60, 90, 120
and 180 days (the data starts on 2024-06-01, so the 180-day cut of 2024-12-01 has 183 days). Young series (teams
that started within the cut) are counted with the history they have.

Units: GPUs per hour (GPU-hours per hour), hours, shares 0-1.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import pandas as pd

from forecasting import engine as E
from forecasting import paths as P
from forecasting.engine import ForecastConfig, LongForecast, conformal_quantiles, forecast_long, sample_paths
from forecasting.samples import load_sample
from usage import schema as S

TUNING = tuple(pd.Timestamp(f"{y}-{m:02d}-01") for y, m in ((2024, 12), (2025, 1), (2025, 2), (2025, 3), (2025, 4),
                                                             (2025, 5)))
REPORTING = tuple(pd.Timestamp(f"2025-{m:02d}-01") for m in range(6, 12))
HISTORY_DAYS = (1, 7, 14, 30, 60, 90, 120, 180)
HORIZONS = (168, 720)
LEADS = ((1, 24), (25, 168), (169, 336), (337, 720))
N_PATHS = 200


@dataclasses.dataclass(frozen=True)
class Cell:
    """One forecast (widening on) and the realised demand after its origin."""

    origin: pd.Timestamp
    days: int
    horizon: int
    long: LongForecast
    actual: pd.DataFrame  # unique_id, ds, y


def cells(usage: pd.DataFrame, origins: tuple[pd.Timestamp, ...], days: tuple[int, ...], horizons: tuple[int, ...],
          ) -> list[Cell]:
    long = S.to_long(usage)
    out = []
    for origin in origins:
        for h in horizons:
            after = long[(long[S.DS] >= origin) & (long[S.DS] < origin + pd.Timedelta(hours=h))]
            for d in days:
                cut = long[(long[S.DS] >= origin - pd.Timedelta(days=d)) & (long[S.DS] < origin)]
                res = forecast_long(cut, ForecastConfig(horizon_hours=h))
                out.append(Cell(origin, d, h, res, after[[S.UID, S.DS, S.Y]]))
    return out


def variant(res: LongForecast, widen: bool, rate_scale: float = 1.0) -> LongForecast:
    """The same forecast with the widening off, or with every walk rate multiplied by ``rate_scale``."""
    short = res.short_history
    point = res.forecast[[S.UID, S.DS, S.MEAN, S.MODEL]]
    if not widen or short is None:
        fc = conformal_quantiles(point, res.errors, res.noise)
        return dataclasses.replace(res, forecast=fc[res.forecast.columns], short_history=None)
    series = short.series.assign(rate=short.series["rate"] * rate_scale)
    short = dataclasses.replace(short, series=series)
    fc = conformal_quantiles(point, res.errors, res.noise, spread=E.walk_spread(point, series))
    return dataclasses.replace(res, forecast=fc[res.forecast.columns], short_history=short)


CENTRED = True
"""Sample paths centred on the forecast's mean (the engine's default since issue 15; ``--uncentred``: as drawn)."""


def score(cell: Cell, res: LongForecast, seed: int = 0) -> dict[str, float]:
    """Coverage and width of one cell's forecast (see the module docstring)."""
    fc = res.forecast.copy()
    fc["lead"] = fc.groupby(S.UID).cumcount() + 1
    m = fc.merge(cell.actual, on=[S.UID, S.DS])
    inside = ((m[S.Y] >= m[S.P10] - 1e-9) & (m[S.Y] <= m[S.P90] + 1e-9)).to_numpy()
    row: dict[str, float] = {"cov_h": float(inside.mean()),
                             "width": float((m[S.P90] - m[S.P10]).mean() / max(m[S.Y].mean(), 1e-9))}
    for lo, hi in LEADS:
        sel = ((m["lead"] >= lo) & (m["lead"] <= hi)).to_numpy()
        row[f"cov_{lo}-{hi}"] = float(inside[sel].mean()) if sel.any() else np.nan
    paths = sample_paths(res, N_PATHS, seed, centred=CENTRED)
    real = cell.actual.groupby(S.UID)[S.Y].sum()
    ok, gpu_sum, gpu_real = [], {}, {}
    for uid, p in paths.items():
        total = p.sum(axis=1)
        y = float(real.get(uid, 0.0))
        lo, hi = np.quantile(total, [0.1, 0.9])
        ok.append(lo - 1e-6 <= y <= hi + 1e-6)
        gpu = uid.split(S.UID_SEP)[1]
        gpu_sum[gpu] = gpu_sum.get(gpu, 0.0) + total
        gpu_real[gpu] = gpu_real.get(gpu, 0.0) + y
    row["cov_total"] = float(np.mean(ok))
    row["cov_gpu"] = float(np.mean([np.quantile(v, 0.1) <= gpu_real[g] <= np.quantile(v, 0.9)
                                     for g, v in gpu_sum.items()]))
    n_short = 0 if res.short_history is None else len(res.short_history.series)
    row["short"] = n_short / len(paths)
    return row


def table(scored: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(scored)
    cols = ["short", "cov_h", *[f"cov_{lo}-{hi}" for lo, hi in LEADS], "cov_total", "cov_gpu", "width"]
    return frame.groupby(["set", "horizon", "days", "ranges"])[cols].mean().round(3)


def evaluate(all_cells: list[Cell], sets: dict[pd.Timestamp, str], rate_scale: float = 1.0,
             with_off: bool = True) -> pd.DataFrame:
    rows = []
    for c in all_cells:
        base = {"set": sets[c.origin], "horizon": c.horizon, "days": c.days, "origin": c.origin}
        rows.append({**base, "ranges": "on", **score(c, variant(c.long, True, rate_scale))})
        if with_off:
            rows.append({**base, "ranges": "off", **score(c, variant(c.long, False))})
    return table(rows)


def tune(all_cells: list[Cell], sets: dict[pd.Timestamp, str]) -> None:
    """Grids over the walk's noise factor, the floor's level share and the walks' common share, on the tuning
    origins' cells that have short series."""
    tuning = [c for c in all_cells if sets[c.origin] == "tuning" and c.long.short_history is not None
              and len(c.long.short_history.series) > 0.5 * c.long.forecast[S.UID].nunique()]
    base = P.WALK_NOISE_FACTOR
    print("hourly p10-p90 coverage / horizon-total coverage per horizon h / history days")
    for factor in (0.2, 0.3, 0.4, 0.5):
        for share in (0.0, 0.5, 1.0):
            E.FLOOR_LEVEL_SHARE = share
            t = evaluate(tuning, sets, rate_scale=(factor / base) ** 2, with_off=False)
            miss = (t[["cov_h", "cov_total"]] - 0.8).abs().to_numpy().mean()
            print(f"factor {factor:.2f} level share {share:.1f}: mean |coverage - 0.8| {miss:.3f}  " + "  ".join(
                f"{h}/{d} {r['cov_h']:.2f}/{r['cov_total']:.2f}" for (_, h, d, _), r in t.iterrows()))
    E.FLOOR_LEVEL_SHARE = P.FLOOR_LEVEL_SHARE
    print("organisation total per GPU model coverage (shipped factor and level share)")
    for corr in (0.0, 0.5, 1.0):
        E.WALK_CORRELATION = corr
        t = evaluate(tuning, sets, with_off=False)
        print(f"correlation {corr:.1f}: " + "  ".join(f"{h}/{d} {r['cov_gpu']:.2f}" for (_, h, d, _), r in t.iterrows())
              + f"  mean {t['cov_gpu'].mean():.3f}")
    E.WALK_CORRELATION = P.WALK_CORRELATION


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune", action="store_true", help="grid of walk settings on the tuning origins")
    parser.add_argument("--quick", action="store_true", help="two origins per set, histories 1/14/60 days")
    parser.add_argument("--uncentred", action="store_true", help="sample paths as drawn, not centred on the mean")
    args = parser.parse_args()
    global CENTRED
    CENTRED = not args.uncentred
    usage = load_sample("synthetic")
    tuning, reporting, days = TUNING, REPORTING, HISTORY_DAYS
    if args.quick:
        tuning, reporting, days = TUNING[:2], REPORTING[-2:], (1, 14, 60)
    sets = {o: "tuning" for o in tuning} | {o: "reporting" for o in reporting}
    t0 = time.perf_counter()
    all_cells = cells(usage, tuning + (() if args.tune else reporting), days, HORIZONS)
    print(f"{len(all_cells)} forecasts in {time.perf_counter() - t0:.0f} s")
    if args.tune:
        tune(all_cells, sets)
        return
    pd.set_option("display.width", 200)
    pd.set_option("display.max_rows", 200)
    print(evaluate(all_cells, sets).to_string())


if __name__ == "__main__":
    main()
