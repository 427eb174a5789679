"""Cached pure calls behind the Budgets & chargeback page (the same functions ``gpuplan alerts | chargeback |
units | check | report`` call, so the page shows the CLI's numbers).

The page works on the shipped SYNTHETIC sample organisation and its operate files in ``data_samples/operate/``;
each file can be replaced by an upload. Uploaded bytes are written to a private temporary folder under their
own name, so validation errors name the user's file. Results are cached per file content and setting.
Units: USD, GPU-hours, probabilities 0-1.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from forecasting import schema as S
from forecasting.samples import data_dir, load_sample
from operate.alerts import AlertReport, compute_alerts, default_as_of, forecast_for_budgets
from operate.budgets import load_budgets
from operate.chargeback import Chargeback, allocate
from operate.costing import Rates, cost_basis, on_demand_rates, priced
from operate.files import read_plan
from operate.policy import CheckReport, check_plan, check_usage, combine, load_policy
from operate.report import build_review
from operate.units import load_units, unit_costs
from optimizer.catalog import load_catalog
from optimizer.plan import Plan

SAMPLE = "synthetic"
SHIPPED = {"budgets": "budgets.csv", "units": "units.csv", "policy": "policy.yaml", "plan": "plan_2025-11.json"}
"""Shipped operate files (in ``data_samples/operate/``) per input kind."""
POLICIES = ("proportional", "central")


@dataclass(frozen=True)
class InputFile:
    """An input file as content (hashable, so it can key the caches) plus its name for error messages."""

    name: str
    data: bytes


def shipped(kind: str) -> InputFile:
    path = data_dir() / "operate" / SHIPPED[kind]
    return InputFile(f"data_samples/operate/{path.name}", path.read_bytes())


def _materialise(f: InputFile) -> Path:
    folder = Path(tempfile.gettempdir()) / "gpuplan-operate" / hashlib.sha256(f.data).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / Path(f.name).name
    if not path.exists():
        path.write_bytes(f.data)
    return path


@st.cache_resource(show_spinner=False)
def usage() -> pd.DataFrame:
    """The sample organisation (shared, read-only)."""
    return load_sample(SAMPLE)


@st.cache_resource(show_spinner=False)
def rates() -> Rates:
    u = usage()
    return on_demand_rates(load_catalog(), set(u[S.GPU_TYPE]))


@st.cache_data(show_spinner=False)
def costed() -> pd.DataFrame:
    return priced(usage(), rates())


def basis() -> str:
    return cost_basis(usage(), rates())


def _plan(f: InputFile) -> Plan:
    return read_plan(_materialise(f))


@st.cache_data(show_spinner=False, max_entries=16)
def alerts(budgets: InputFile, threshold: float) -> AlertReport:
    u = usage()
    projects = {t: set(g.dropna().astype(str)) for t, g in u.groupby(S.TEAM)[S.PROJECT]} \
        if S.PROJECT in u.columns else {}
    rows = load_budgets(_materialise(budgets), set(u[S.TEAM]), projects)
    as_of = default_as_of(u)
    long = forecast_for_budgets(u, rows, as_of)
    return compute_alerts(u, rows, rates(), long=long, as_of=as_of, threshold=threshold, cost_basis=basis())


@st.cache_data(show_spinner=False, max_entries=16)
def chargeback(plan: InputFile, policy: str) -> Chargeback:
    return allocate(usage(), _plan(plan), policy)


@st.cache_data(show_spinner=False, max_entries=16)
def units(units_file: InputFile) -> pd.DataFrame:
    return unit_costs(costed(), load_units(_materialise(units_file), set(usage()[S.TEAM])))


@st.cache_data(show_spinner=False, max_entries=16)
def checks(policy: InputFile, plan: InputFile) -> CheckReport:
    pol = load_policy(_materialise(policy), set(usage()[S.TEAM]))
    return combine(check_usage(costed(), pol), check_plan(_plan(plan), pol))


@st.cache_data(show_spinner=False, max_entries=8)
def review_html(budgets: InputFile, units_file: InputFile, policy: InputFile, plan: InputFile, unused_policy: str,
                threshold: float) -> str:
    review = build_review(costed(), cost_basis=basis(), alerts=alerts(budgets, threshold),
                          chargeback=chargeback(plan, unused_policy), unit_costs=units(units_file),
                          checks=checks(policy, plan), title="GPU cost review (SYNTHETIC sample organisation)")
    return review.html


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")
