"""Candidate forecasting models (statsforecast) and which of them can run on a series of a given length.

Units: models see hourly GPUs in use (= GPU-hours per hour). Season lengths are in hours:
24 (daily) and 168 (weekly).
"""

from __future__ import annotations

from dataclasses import dataclass

from statsforecast.models import AutoETS, Naive, SeasonalNaive


@dataclass(frozen=True)
class Candidate:
    """A named statsforecast model and the shortest history (hours) it needs to be fitted."""

    name: str
    min_history: int

    def build(self):
        if self.name == "Naive":
            return Naive()
        if self.name == "SeasonalNaive24":
            return SeasonalNaive(season_length=24, alias=self.name)
        if self.name == "SeasonalNaive168":
            return SeasonalNaive(season_length=168, alias=self.name)
        if self.name == "AutoETS":
            # Hourly demand with a daily cycle; AutoETS picks error/trend/season components by AICc.
            return AutoETS(season_length=24, alias=self.name)
        raise ValueError(f"unknown model '{self.name}'")


CANDIDATES: dict[str, Candidate] = {
    c.name: c for c in (
        Candidate("Naive", 1),
        Candidate("SeasonalNaive24", 24),
        Candidate("SeasonalNaive168", 168),
        # ETS with a 24-hour season needs a few full cycles to estimate its seasonal states.
        Candidate("AutoETS", 24 * 4),
    )
}
DEFAULT_MODELS = ("Naive", "SeasonalNaive24", "SeasonalNaive168", "AutoETS")
BASELINES = ("Naive", "SeasonalNaive24", "SeasonalNaive168")


def candidates_for(length: int, names: tuple[str, ...]) -> tuple[str, ...]:
    """The models in ``names`` that a series of ``length`` hours can fit (Naive always can)."""
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise ValueError(f"unknown model '{unknown[0]}'; choose from {', '.join(CANDIDATES)}")
    usable = tuple(n for n in names if CANDIDATES[n].min_history <= length)
    return usable or ("Naive",)
