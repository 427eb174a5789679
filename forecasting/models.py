"""Candidate forecasting models (statsforecast) and which of them a series can use.

Units: models see hourly GPUs in use (= GPU-hours per hour). Season lengths are in hours: 24 (daily)
and 168 (weekly).

Candidate sets:
- baselines, always present: Naive, SeasonalNaive24, SeasonalNaive168;
- ``SES08``: simple exponential smoothing with smoothing weight 0.8, a level that follows the steps GPU
  demand moves in within a few hours but, unlike Naive, does not jump all the way to the last hour's noise
  (0.8 beat 0.1, 0.3, 0.5 and the optimised weight on the tuning origins of docs/benchmarks.md, and needs
  no fitting);
- ``MSTL`` (daily + weekly seasonal decomposition with an ETS trend), ``AutoETS`` (season 24),
  ``AutoTheta`` (season 24);
- intermittent-demand models ``CrostonOptimized``, ``ADIDA``, ``IMAPA``, offered only to series that are
  zero in at least :data:`INTERMITTENT_ZERO_SHARE` of their hours;
- ``Ensemble``: the median of the k best candidates of a series by cross-validation (computed by the
  engine, not by statsforecast).

``DEFAULT_MODELS`` (baselines, SES08, ensemble) is the set ``gpuplan`` uses unless told otherwise: on the
shipped samples' rolling backtests the median ensemble of the baselines was as accurate as adding MSTL at a
seventh of the fitting time, and adding SES08 to the ensemble lowered the series-level MASE ratio on every real
trace (docs/benchmarks.md). The intermittent-demand models left the default set (2026-12) when
``benchmarks/forecast_accuracy.py`` was run on its tuning origins: GPU demand that is often zero comes in long
blocks (a job holds its GPUs for hours or days), not in sporadic single hours, and Croston-type averages of
those blocks pulled ensembles away from the current level (Alibaba per GPU spec, 24 h ahead: MAE 1.08x the
Naive forecast with them, 0.97x without; no trace got worse). ``FULL_MODELS`` adds MSTL, AutoETS, AutoTheta
and the intermittent models (``--models full``); see docs/benchmarks.md for the measurements.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from statsforecast.models import (
    ADIDA,
    IMAPA,
    MSTL,
    AutoETS,
    AutoTheta,
    CrostonOptimized,
    Naive,
    SeasonalNaive,
    SimpleExponentialSmoothing,
)

ENSEMBLE = "Ensemble"
INTERMITTENT_ZERO_SHARE = 0.3
"""A series is intermittent when at least this share of its hours are zero."""


@dataclass(frozen=True)
class Candidate:
    """A named statsforecast model, the shortest history (hours) it needs, and whether it is for
    intermittent series only."""

    name: str
    min_history: int
    make: Callable[[], object]
    intermittent_only: bool = False

    def build(self):
        return self.make()


CANDIDATES: dict[str, Candidate] = {
    c.name: c for c in (
        Candidate("Naive", 1, lambda: Naive()),
        Candidate("SeasonalNaive24", 24, lambda: SeasonalNaive(season_length=24, alias="SeasonalNaive24")),
        Candidate("SeasonalNaive168", 168, lambda: SeasonalNaive(season_length=168, alias="SeasonalNaive168")),
        # Weekly season of daily series (benchmarks/forecast_throughput.py; not offered to hourly data by default).
        Candidate("SES08", 2, lambda: SimpleExponentialSmoothing(alpha=0.8, alias="SES08")),
        Candidate("SeasonalNaive7", 7, lambda: SeasonalNaive(season_length=7, alias="SeasonalNaive7")),
        # Two full weekly cycles let MSTL separate the weekly from the daily pattern.
        Candidate("MSTL", 2 * 168, lambda: MSTL(season_length=[24, 168], trend_forecaster=AutoETS(model="ZZN"),
                                               alias="MSTL")),
        # ETS and Theta with a 24-hour season need a few full cycles to estimate seasonal states.
        Candidate("AutoETS", 4 * 24, lambda: AutoETS(season_length=24, alias="AutoETS")),
        Candidate("AutoTheta", 4 * 24, lambda: AutoTheta(season_length=24, alias="AutoTheta")),
        Candidate("CrostonOptimized", 2, lambda: CrostonOptimized(alias="CrostonOptimized"), intermittent_only=True),
        Candidate("ADIDA", 2, lambda: ADIDA(alias="ADIDA"), intermittent_only=True),
        Candidate("IMAPA", 2, lambda: IMAPA(alias="IMAPA"), intermittent_only=True),
    )
}
BASELINES = ("Naive", "SeasonalNaive24", "SeasonalNaive168")
INTERMITTENT = ("CrostonOptimized", "ADIDA", "IMAPA")
DEFAULT_MODELS = (*BASELINES, "SES08", ENSEMBLE)
FULL_MODELS = (*BASELINES, "SES08", "MSTL", "AutoETS", "AutoTheta", *INTERMITTENT, ENSEMBLE)
MODEL_SETS = {"default": DEFAULT_MODELS, "full": FULL_MODELS, "baselines": BASELINES}
SIMPLICITY = ("Naive", "SeasonalNaive24", "SeasonalNaive168", "SeasonalNaive7", "SES08", "CrostonOptimized", "ADIDA",
              "IMAPA", "AutoETS", "AutoTheta", "MSTL", ENSEMBLE)
"""Candidates from the simplest (repeat the last value) to the least simple (the median of several models):
when cross-validation cannot tell two candidates apart, the engine keeps the earlier one."""


def simplicity_rank(name: str) -> int:
    """Position of ``name`` in :data:`SIMPLICITY` (unknown names rank last)."""
    return SIMPLICITY.index(name) if name in SIMPLICITY else len(SIMPLICITY)


def check_models(names: tuple[str, ...]) -> None:
    unknown = [n for n in names if n not in CANDIDATES and n != ENSEMBLE]
    if unknown:
        raise ValueError(f"unknown model '{unknown[0]}'; choose from {', '.join([*CANDIDATES, ENSEMBLE])}")


def candidates_for(length: int, names: tuple[str, ...], intermittent: bool = False) -> tuple[str, ...]:
    """The statsforecast models in ``names`` a series of ``length`` hours can fit (Naive always can).

    ``Ensemble`` is not returned here: the engine adds it when at least two candidates remain.
    """
    check_models(names)
    usable = tuple(n for n in names if n != ENSEMBLE and CANDIDATES[n].min_history <= length
                   and (intermittent or not CANDIDATES[n].intermittent_only))
    return usable or ("Naive",)
