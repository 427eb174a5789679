"""Forecast-based budget alerts: projected spend vs budget, P(overspend), run-out date, burn to date.

For each budget (team or team/project, period ``[start, end)``) at the time ``as_of`` (the hour after the
last hour of usage unless given):

* actual to date = priced usage (:mod:`operate.costing`) of the budget's scope in ``[start, as_of)``;
* the rest of the period is priced on the engine's joint sample paths (:func:`forecasting.engine.sample_paths`,
  centred on the forecast's mean so the projection states the same expected demand as the forecast table;
  they replay whole cross-validation error trajectories for all series at once; when the history is short
  against the rest of the period they are widened by the engine's random walk, and its note is the report's
  first note), summed over the team's GPU types at each GPU model's rate; a project budget takes the
  project's share of its team's cost over the 28 days before ``as_of`` (the forecast is per team and GPU
  type, not per project);
* projected spend = actual + remaining, per path: its mean and p10/p50/p90; P(overspend) = the share of
  paths above the budget;
* run-out date = the first hour in which the cumulative spend (actuals, then the mean forecast) passes the
  budget; ``run_out_p90`` uses the 90th percentile of cumulative spend over the paths (an earlier date
  that one path in ten reaches);
* burn rate = USD per day over the last 7 days of actuals inside the period;
* data costs (when data lines are given, ``data``): the scope's storage and transfer lines are added to the spend,
  each month's cost spread evenly over its hours (:func:`operate.data_costs.hourly_cost`): hours before
  ``as_of`` are actuals, later hours are added to every path (months after the last data month carry its hourly
  cost forward: data lines are not forecast). The report's cost basis then says "+ data costs".

An alert fires when the actual spend already exceeds the budget or P(overspend) >= the threshold.
Units: USD, USD per day, probabilities 0-1, times naive UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from forecasting.engine import ForecastConfig, LongForecast, default_n_jobs, forecast, sample_paths
from operate.budgets import Budget
from operate.costing import COST, Rates, priced
from usage import schema as S

SCHEMA = "gpuplan.alerts/v1"
PROJECT_SHARE_DAYS = 28
BURN_DAYS = 7
DEFAULT_PATHS = 200
DEFAULT_THRESHOLD = 0.5
MAX_HORIZON_HOURS = 24 * 400


@dataclass(frozen=True)
class Alert:
    """The budget check of one budget (see the module docstring for each field's meaning)."""

    team: str
    project: str | None
    period_start: str
    period_end: str
    budget_usd: float
    actual_to_date_usd: float
    burn_pct: float | None
    elapsed_pct: float
    burn_rate_usd_per_day: float
    projected_usd: float
    projected_p10_usd: float
    projected_p50_usd: float
    projected_p90_usd: float
    p_overspend: float
    run_out_date: str | None
    run_out_p90: str | None
    status: str
    fired: bool
    message: str


@dataclass(frozen=True)
class AlertReport:
    """All alerts plus the settings that produced them."""

    alerts: tuple[Alert, ...]
    as_of: pd.Timestamp
    threshold: float
    n_paths: int
    cost_basis: str
    notes: tuple[str, ...] = ()

    @property
    def fired(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.fired)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(a) for a in self.alerts], columns=list(Alert.__dataclass_fields__))

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "as_of": _iso(self.as_of), "threshold": self.threshold, "n_paths": self.n_paths,
                "cost_basis": self.cost_basis, "fired": len(self.fired), "notes": list(self.notes),
                "alerts": [asdict(a) for a in self.alerts]}


def _iso(ts: pd.Timestamp | None) -> str | None:
    return None if ts is None else pd.Timestamp(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_as_of(usage: pd.DataFrame) -> pd.Timestamp:
    return pd.Timestamp(usage[S.TIMESTAMP].max()) + pd.Timedelta(hours=1)


def horizon_hours(budgets: tuple[Budget, ...], as_of: pd.Timestamp) -> int:
    """Hours from ``as_of`` to the end of the latest budget period (0 if every period has ended)."""
    end = max(b.end for b in budgets)
    return max(int((end - as_of) / pd.Timedelta(hours=1)), 0)


def forecast_for_budgets(usage: pd.DataFrame, budgets: tuple[Budget, ...], as_of: pd.Timestamp,
                         history_hours: int | None = 1344,
                         progress: Callable[[str], None] | None = None) -> LongForecast | None:
    """Forecast the usage before ``as_of`` up to the end of the last budget period (None if none is open)."""
    h = horizon_hours(budgets, as_of)
    if h == 0:
        return None
    if h > MAX_HORIZON_HOURS:
        raise ValueError(f"budget periods end {h:,} hours after {as_of:%Y-%m-%d}; hourly forecasts reach at most "
                         f"{MAX_HORIZON_HOURS:,} (fix: budget periods of at most a year ahead)")
    history = usage[usage[S.TIMESTAMP] < as_of]
    if history.empty:
        raise ValueError(f"no usage before {as_of:%Y-%m-%dT%H:%M}Z to forecast from (fix: a later --as-of)")
    config = ForecastConfig(horizon_hours=h + int((as_of - (history[S.TIMESTAMP].max() + pd.Timedelta(hours=1)))
                                                  / pd.Timedelta(hours=1)),
                            history_hours=history_hours, n_jobs=default_n_jobs())
    return forecast(history, config, progress=progress).long


def compute_alerts(usage: pd.DataFrame, budgets: tuple[Budget, ...], rates: Rates, *,
                   long: LongForecast | None, as_of: pd.Timestamp | None = None,
                   threshold: float = DEFAULT_THRESHOLD, n_paths: int = DEFAULT_PATHS, seed: int = 0,
                   cost_basis: str | None = None, data: pd.DataFrame | None = None) -> AlertReport:
    """Check every budget (see the module docstring).

    Args:
        usage: validated canonical usage (``cost_usd`` used where present).
        budgets: from :func:`operate.budgets.load_budgets`.
        rates: USD per GPU-hour per GPU model for usage and forecast.
        long: the forecast of the usage before ``as_of`` (:func:`forecast_for_budgets`); None when every
            budget period has ended.
        as_of: first hour not yet observed (default: the hour after the last usage hour).
        threshold: P(overspend) at which an alert fires.
        n_paths: sample paths drawn from the forecast.
        cost_basis: how the usage is priced (default ``rates.basis``).
        data: data lines (canonical data-usage frame) whose costs count against the budgets; None = GPU costs only.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold {threshold} is outside (0, 1] (fix: e.g. --threshold 0.5)")
    as_of = default_as_of(usage) if as_of is None else as_of
    seen = priced(usage[usage[S.TIMESTAMP] < as_of], rates)
    notes: list[str] = []
    paths: dict[str, np.ndarray] = {}
    fc_hours = pd.DatetimeIndex([])
    if long is not None:
        if long.short_history is not None:
            notes.append(long.short_history.note)
        paths = sample_paths(long, n_paths, seed)
        first_uid = next(iter(paths)) if paths else None
        if first_uid is not None:
            ds = long.forecast.loc[long.forecast[S.UID] == first_uid, S.DS]
            fc_hours = pd.DatetimeIndex(pd.to_datetime(ds.to_numpy()))
    alerts = []
    for b in budgets:
        alerts.append(_check(b, seen, paths, fc_hours, rates, as_of, threshold, n_paths, notes, data))
    basis = cost_basis or rates.basis
    if data is not None:
        basis = f"{basis}, + data costs (storage and transfer lines)"
        notes.append("data costs: each month's storage and transfer lines spread evenly over its hours; the months "
                     "after the last month with data lines carry its hourly cost forward")
    return AlertReport(tuple(alerts), as_of, threshold, n_paths, basis, tuple(dict.fromkeys(notes)))


def _scope(frame: pd.DataFrame, b: Budget) -> pd.DataFrame:
    rows = frame[frame[S.TEAM] == b.team]
    if b.project is not None:
        rows = rows[rows[S.PROJECT] == b.project] if S.PROJECT in rows.columns else rows.iloc[0:0]
    return rows


def _project_share(seen: pd.DataFrame, b: Budget, as_of: pd.Timestamp) -> float:
    if b.project is None:
        return 1.0
    recent = seen[(seen[S.TEAM] == b.team) & (seen[S.TIMESTAMP] >= as_of - pd.Timedelta(days=PROJECT_SHARE_DAYS))]
    total = float(recent[COST].sum())
    if total <= 0 or S.PROJECT not in recent.columns:
        return 0.0
    return float(recent.loc[recent[S.PROJECT] == b.project, COST].sum()) / total


def _check(b: Budget, seen: pd.DataFrame, paths: dict[str, np.ndarray], fc_hours: pd.DatetimeIndex, rates: Rates,
           as_of: pd.Timestamp, threshold: float, n_paths: int, notes: list[str],
           data: pd.DataFrame | None = None) -> Alert:
    in_period = _scope(seen, b)
    in_period = in_period[(in_period[S.TIMESTAMP] >= b.start) & (in_period[S.TIMESTAMP] < b.end)]
    hourly_actual = in_period.groupby(S.TIMESTAMP)[COST].sum().sort_index()
    fut_start = max(as_of, b.start)
    future = pd.date_range(fut_start, b.end, freq="h", inclusive="left") if fut_start < b.end else pd.DatetimeIndex([])
    remaining = np.zeros((n_paths, len(future)))
    if data is not None:
        from operate.data_costs import hourly_cost

        past = pd.date_range(b.start, min(as_of, b.end), freq="h", inclusive="left")
        data_past = pd.Series(hourly_cost(data, b.team, b.project, past), index=past)
        hourly_actual = hourly_actual.add(data_past[data_past != 0], fill_value=0.0).sort_index()
        remaining += hourly_cost(data, b.team, b.project, future)[None, :]
    actual = float(hourly_actual.sum())
    if len(future):
        pos = fc_hours.get_indexer(future)
        if (pos < 0).any():
            raise ValueError(f"the forecast does not cover {b.label} (fix: forecast up to {b.end:%Y-%m-%d})")
        share = _project_share(seen, b, as_of)
        if b.project is not None:
            notes.append(f"project budgets use the project's share of its team's cost over the last "
                         f"{PROJECT_SHARE_DAYS} days (forecasts are per team and GPU type)")
        prefix = f"{S.escape_key(b.team)}{S.UID_SEP}"
        for uid, p in paths.items():
            if uid.startswith(prefix):
                remaining += p[:, pos] * rates.of(S.split_key(uid)[1]) * share
        if not any(uid.startswith(prefix) for uid in paths):
            notes.append(f"{b.team} has no usage to forecast: its remaining spend is taken as 0")
    projected = actual + remaining.sum(axis=1)
    p10, p50, p90 = (float(x) for x in np.quantile(projected, [0.1, 0.5, 0.9]))
    p_over = float((projected > b.budget_usd + 1e-9).mean())
    if actual > b.budget_usd:
        p_over = 1.0
    # Cumulative spend per hour: actuals, then the mean (and the p90 over paths) of the forecast.
    hours_elapsed = max(min(as_of, b.end) - b.start, pd.Timedelta(0)) / pd.Timedelta(hours=1)
    past = hourly_actual.cumsum()
    run_out = _first_above(past, b.budget_usd)
    run_out_p90 = run_out
    if run_out is None and len(future):
        mean_cum = actual + np.cumsum(remaining.mean(axis=0))
        p90_cum = actual + np.quantile(np.cumsum(remaining, axis=1), 0.9, axis=0)
        run_out = _first_above(pd.Series(mean_cum, index=future), b.budget_usd)
        run_out_p90 = _first_above(pd.Series(p90_cum, index=future), b.budget_usd)
    last = hourly_actual[hourly_actual.index >= min(as_of, b.end) - pd.Timedelta(days=BURN_DAYS)]
    days = min(BURN_DAYS, hours_elapsed / 24.0)
    burn = float(last.sum()) / days if days > 0 else 0.0
    fired = actual > b.budget_usd or p_over >= threshold
    if actual > b.budget_usd:
        status = "over_budget"
        msg = (f"{b.scope} has spent {actual:,.0f} USD of {b.budget_usd:,.0f} USD budget for "
               f"{b.start:%Y-%m-%d}..{b.end:%Y-%m-%d}; ran out {run_out:%Y-%m-%d %H:%M} UTC")
    elif fired:
        status = "projected_overspend"
        msg = (f"{b.scope} is projected to spend {projected.mean():,.0f} USD (p10-p90 {p10:,.0f}-{p90:,.0f}) vs "
               f"budget {b.budget_usd:,.0f} USD, P(overspend) {p_over:.0%}; runs out "
               + (f"{run_out:%Y-%m-%d %H:%M} UTC" if run_out is not None else "near the period end"))
    else:
        status = "at_risk" if p_over > 0 else "ok"
        msg = (f"{b.scope}: projected {projected.mean():,.0f} USD of {b.budget_usd:,.0f} USD, "
               f"P(overspend) {p_over:.0%}")
    period_hours = b.hours
    return Alert(team=b.team, project=b.project, period_start=_iso(b.start), period_end=_iso(b.end),
                 budget_usd=round(b.budget_usd, 2), actual_to_date_usd=round(actual, 2),
                 burn_pct=round(100.0 * actual / b.budget_usd, 2) if b.budget_usd > 0 else None,
                 elapsed_pct=round(100.0 * hours_elapsed / period_hours, 2), burn_rate_usd_per_day=round(burn, 2),
                 projected_usd=round(float(projected.mean()), 2), projected_p10_usd=round(p10, 2),
                 projected_p50_usd=round(p50, 2), projected_p90_usd=round(p90, 2), p_overspend=round(p_over, 4),
                 run_out_date=_iso(run_out), run_out_p90=_iso(run_out_p90), status=status, fired=bool(fired),
                 message=msg)


def _first_above(cumulative: pd.Series, budget: float) -> pd.Timestamp | None:
    above = cumulative.to_numpy() > budget + 1e-9
    if not above.any():
        return None
    return pd.Timestamp(cumulative.index[int(np.argmax(above))])
