"""Cached pure calls behind the Budgets & chargeback page (the same functions ``gpuplan alerts | chargeback |
units | check | report`` call, so the page shows the CLI's numbers).

The page works on the shared sidebar's data source (``source``: a sample name or an upload id, resolved by
:func:`app.state.cached_usage`). For the SYNTHETIC sample the operate files shipped in ``data_samples/operate/``
are the defaults; other sources need their own uploads (:func:`defaults_for`). Uploaded bytes are written to a
private temporary folder under their own name, so validation errors name the user's file, and removed once
read. Chargeback runs on the realised usage under a plan file, or on the current planner plan's projected demand
(:func:`planned_demand`).
Results are cached per data source, file content, setting and team set (``teams``: an engineer's teams,
:mod:`app.roles`; each filtered result is derived from the every-team one, so organisation totals never differ).
Data costs (storage and transfer lines): the SYNTHETIC sample's shipped ``data_samples/synthetic_org_data_costs.csv``
is its default (:func:`data_default`); another source has them only when its data lines are uploaded (a canonical
data-usage CSV or a billing export). Budgets, chargeback (realised usage only: data lines are past months), unit
costs and the review include them when given (``data``), as ``gpuplan ... --data`` does.
Units: USD, GPU-hours, probabilities 0-1.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from app import roles as R
from app import state as A
from forecasting.sample_data_costs import DATA_COSTS_FILE
from forecasting.samples import PLAN_FILE, data_dir
from operate.alerts import AlertReport, compute_alerts, default_as_of, forecast_for_budgets
from operate.anomalies import MIN_HISTORY_DAYS, AnomalyConfig, AnomalyReport, detect
from operate.budgets import load_budgets
from operate.chargeback import Chargeback, allocate
from operate.commitments import CommitmentReview, UtilizationRule, review
from operate.costing import Rates, cost_basis, on_demand_rates, priced
from operate.data_costs import read_data_usage
from operate.files import read_plan
from operate.policy import CheckReport, check_plan, check_usage, combine, load_policy
from operate.report import build_review
from operate.units import load_units, unit_costs
from optimizer.catalog import load_catalog
from optimizer.plan import Plan
from usage import io
from usage import schema as S

SAMPLE = "synthetic"
SHIPPED = {"budgets": "budgets.csv", "units": "units.csv", "policy": "policy.yaml", "plan": "plan_2025-11.json"}
"""Shipped operate files (in ``data_samples/operate/``) per input kind."""
POLICIES = ("proportional", "central")


@dataclass(frozen=True)
class InputFile:
    """An input file as content (hashable, so it can key the caches) plus its name for error messages."""

    name: str
    data: bytes


def sample_file(relative: str) -> InputFile:
    """A file shipped in ``data_samples/`` (``relative`` to it), named by its path there."""
    return InputFile(f"data_samples/{relative}", (data_dir() / relative).read_bytes())


def sample_default(source: str, relative: str) -> InputFile | None:
    """The shipped file ``relative`` to ``data_samples/`` when the data source is the synthetic sample it was made
    for, else None (another organisation's needs an upload)."""
    return sample_file(relative) if source == SAMPLE else None


def shipped(kind: str) -> InputFile:
    return sample_file(f"operate/{SHIPPED[kind]}")


def data_default(source: str) -> InputFile | None:
    """The default data lines of a data source: the shipped SYNTHETIC data-cost lines for the synthetic sample, else
    None (another organisation's storage and transfer lines cannot be guessed: they need an upload)."""
    return sample_default(source, DATA_COSTS_FILE)


@st.cache_data(show_spinner=False, max_entries=8)
def data_lines(f: InputFile) -> pd.DataFrame:
    """The data lines of a canonical data-usage CSV or a billing export (one ``ValueError`` line when bad)."""
    with materialised(f) as path:
        return read_data_usage(path)


def _data(f: InputFile | None) -> pd.DataFrame | None:
    return None if f is None else data_lines(f)


def defaults_for(source: str, kind: str) -> InputFile | None:
    """The default operate file of a data source: the shipped one for the synthetic sample, else None (the
    budgets, units and policy of another organisation cannot be guessed: the page asks for an upload)."""
    return shipped(kind) if source == SAMPLE else None


@contextlib.contextmanager
def materialised(f: InputFile) -> Iterator[Path]:
    """``f`` as a file under its own name in a new private temporary folder (mode 0700, not a shared, guessable
    path under /tmp), removed with its content when the block ends: the loaders read it whole inside the block."""
    with tempfile.TemporaryDirectory(prefix="gpuplan-operate-") as tmp:
        path = Path(tmp) / (Path(f.name.replace("\\", "/")).name or "upload")
        path.write_bytes(f.data)
        yield path


def usage(source: str) -> pd.DataFrame:
    """The data source's usage (shared, read-only)."""
    return A.cached_usage(source)


@st.cache_resource(show_spinner=False)
def rates(source: str) -> Rates:
    u = usage(source)
    return on_demand_rates(load_catalog(), set(u[S.GPU_TYPE]))


@st.cache_data(show_spinner=False, max_entries=8)
def costed(source: str) -> pd.DataFrame:
    return priced(usage(source), rates(source))


def basis(source: str) -> str:
    return cost_basis(usage(source), rates(source))


def planned_demand(settings: A.PlannerSettings) -> pd.DataFrame:
    """The current plan's projected usage: the forecast mean per team and GPU type over the plan window (GPUs per
    hour), with the settings' planned events, growth (organisation x team) and rightsizing applied, i.e. the
    expected demand the plan was made for, as a usage frame (``timestamp, team, gpu_type, gpus``)."""
    usage_ = usage(settings.sample)
    config = settings.plan_config(A.window_start(usage_))
    fc = A.planned_forecast(settings.forecast_settings)
    fc = fc[(fc[S.TIMESTAMP] >= config.start) & (fc[S.TIMESTAMP] < config.end)]
    growth = dict(settings.team_growth)
    factor = (1.0 + settings.growth) * fc[S.TEAM].map(lambda t: 1.0 + growth.get(t, 0.0)).to_numpy(dtype=float)
    frame = pd.DataFrame({S.TIMESTAMP: fc[S.TIMESTAMP].to_numpy(), S.TEAM: fc[S.TEAM].astype(str).to_numpy(),
                          S.GPU_TYPE: fc[S.GPU_TYPE].astype(str).to_numpy(),
                          S.GPUS: fc[S.MEAN].to_numpy(dtype=float) * factor})
    routing = A.cached_routing(settings)
    if routing is not None:
        frame = routing.apply(frame, [S.GPUS])
    return frame


def _plan(f: InputFile) -> Plan:
    with materialised(f) as path:
        return read_plan(path)


def all_teams(source: str) -> list[str]:
    return sorted(str(t) for t in usage(source)[S.TEAM].unique())


@st.cache_data(show_spinner=False, max_entries=16)
def alerts(source: str, budgets: InputFile, threshold: float, data: InputFile | None = None,
           teams: frozenset[str] | None = None) -> AlertReport:
    """Budget alerts (with ``data``: GPU + data costs); with ``teams``, only their budgets and notes
    (:func:`app.roles.alerts_for`)."""
    if teams is not None:
        return R.alerts_for(alerts(source, budgets, threshold, data), R.Access("", R.ENGINEER, teams),
                            all_teams(source))
    u = usage(source)
    projects = {t: set(g.dropna().astype(str)) for t, g in u.groupby(S.TEAM)[S.PROJECT]} \
        if S.PROJECT in u.columns else {}
    with materialised(budgets) as path:
        rows = load_budgets(path, set(u[S.TEAM]), projects)
    as_of = default_as_of(u)
    long = forecast_for_budgets(u, rows, as_of)
    return compute_alerts(u, rows, rates(source), long=long, as_of=as_of, threshold=threshold,
                          cost_basis=basis(source), data=_data(data))


@st.cache_data(show_spinner=False, max_entries=16)
def chargeback(source: str, plan: InputFile, policy: str, planned: A.PlannerSettings | None = None,
               data: InputFile | None = None, teams: frozenset[str] | None = None) -> Chargeback:
    """Chargeback of ``plan``: on the source's realised usage, or with ``planned`` (the settings the plan was made
    with) on its projected demand over its window (:func:`planned_demand`); with ``data`` (realised usage only) the
    data lines of the billing period get their own columns. With ``teams``, only their rows
    (:func:`app.roles.chargeback_for`; the bill and the reconciliation stay the organisation's)."""
    if teams is not None:
        return R.chargeback_for(chargeback(source, plan, policy, planned, data), R.Access("", R.ENGINEER, teams),
                                all_teams(source))
    demand = planned_demand(planned) if planned is not None else usage(source)
    return allocate(demand, _plan(plan), policy, data=_data(data) if planned is None else None)


def current_plan_file(settings: A.PlannerSettings) -> InputFile:
    """The current planner plan (What-if settings, else the base scenario) as plan.json content."""
    return InputFile("current planner plan (plan.json)", A.cached_plan(settings).plan.to_json().encode("utf-8"))


@st.cache_data(show_spinner=False, max_entries=16)
def units(source: str, units_file: InputFile, data: InputFile | None = None,
          teams: frozenset[str] | None = None) -> pd.DataFrame:
    """Unit costs (with ``data``: data costs shown apart); with ``teams``, only their rows."""
    if teams is not None:
        return A.team_rows(units(source, units_file, data), teams).reset_index(drop=True)
    with materialised(units_file) as path:
        rows = load_units(path, set(usage(source)[S.TEAM]))
    return unit_costs(costed(source), rows, _data(data))


@st.cache_data(show_spinner=False, max_entries=16)
def checks(source: str, policy: InputFile, plan: InputFile, teams: frozenset[str] | None = None) -> CheckReport:
    """Guardrail findings; with ``teams``, without other teams' findings (:func:`app.roles.checks_for`)."""
    if teams is not None:
        return R.checks_for(checks(source, policy, plan), R.Access("", R.ENGINEER, teams), all_teams(source))
    with materialised(policy) as path:
        pol = load_policy(path, set(usage(source)[S.TEAM]))
    return combine(check_usage(costed(source), pol), check_plan(_plan(plan), pol))


@st.cache_data(show_spinner=False, max_entries=8)
def review_html(source: str, budgets: InputFile, units_file: InputFile, policy: InputFile, plan: InputFile,
                unused_policy: str, threshold: float, planned: A.PlannerSettings | None = None,
                data: InputFile | None = None, teams: frozenset[str] | None = None) -> str:
    """The cost review (with ``data``: a data-costs section); with ``teams``, built from those teams' usage,
    data lines, budgets, chargeback rows, unit costs and findings only (an engineer's report)."""
    priced_usage = costed(source) if teams is None else A.team_rows(costed(source), teams)
    lines = _data(data)
    if lines is not None and teams is not None:
        lines = A.team_rows(lines, teams)
    review = build_review(priced_usage, cost_basis=basis(source),
                          alerts=alerts(source, budgets, threshold, data, teams),
                          chargeback=chargeback(source, plan, unused_policy, planned, data, teams),
                          unit_costs=units(source, units_file, data, teams), checks=checks(source, policy, plan, teams),
                          title=f"GPU cost review ({A.data_source_label(source)})", data=lines)
    return review.html


ANOMALY_LOOKBACK_DAYS = 28
"""Days searched for anomalies (fewer when the data source is shorter: the detector needs 14 days before them)."""


def plan_events_default(source: str) -> InputFile | None:
    """The synthetic sample's own plan as an events file (its runs, wind-down and launches,
    ``data_samples/synthetic_org_plan.yaml``), else None."""
    return sample_default(source, PLAN_FILE)


@st.cache_data(show_spinner=False, max_entries=8)
def anomalies(source: str, sensitivity: float, min_impact_usd: float,
              events: InputFile | None = None) -> AnomalyReport:
    """``gpuplan anomalies`` on the data source: the last :data:`ANOMALY_LOOKBACK_DAYS` days (or as many as its
    history allows), at list rates, with the planned ``events`` file (``--events``) when given; every team's series
    (rows are filtered per role on the page, the detection never nets teams)."""
    u = usage(source)
    span = (u[S.TIMESTAMP].max() - u[S.TIMESTAMP].min()) / pd.Timedelta(days=1)
    lookback = int(min(ANOMALY_LOOKBACK_DAYS, span - MIN_HISTORY_DAYS))
    if lookback < 7:
        raise ValueError(f"anomalies need at least {MIN_HISTORY_DAYS + 7} days of usage; this data source has "
                         f"{span:.0f} (fix: upload a longer usage history)")
    planned = A.cached_events(events.data.decode("utf-8", errors="replace"), events.name) if events else ()
    return detect(u, rates(source).of, None, AnomalyConfig(lookback_days=lookback, sensitivity=sensitivity,
                                                           min_impact_usd=min_impact_usd), events=planned)


COMMITMENTS_EXAMPLE = "billing/cur_gpu_commitments.csv"
"""The example billing export with commitments shipped for the synthetic sample (``data_samples/``; a SYNTHETIC
CUR of its own small organisation, see data_samples/README.md)."""


def commitments_default(source: str) -> InputFile | None:
    """The shipped example CUR with commitments for the synthetic sample, else None (an upload is needed)."""
    return sample_default(source, COMMITMENTS_EXAMPLE)


@st.cache_data(show_spinner=False, max_entries=8)
def commitments(f: InputFile, below: float, lookback_days: int) -> CommitmentReview:
    """``gpuplan commitments`` on a billing export (FOCUS or CUR): inventory, under-used commitments over the last
    ``lookback_days`` (utilisation below ``below``) with the teams that could move onto them, and the owned
    commitments in the format of ``gpuplan plan --existing`` (one ``UsageError`` line when the file is bad)."""
    cat = load_catalog()
    with materialised(f) as path:
        return review(path, UtilizationRule(below, lookback_days), cat.instance_gpus(), cat.gpu_models())


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """A download's CSV: spreadsheet-safe text cells (:func:`usage.io.csv_bytes`)."""
    return io.csv_bytes(frame)
