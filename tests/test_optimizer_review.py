"""Regression tests for defects found in the optimizer review: non-finite settings, silent CLI typos, the
break-even projection overflow and owned commitments of GPU models without demand."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli import app
from optimizer.inputs import PlanConfig, PlanningError

ROOT = Path(__file__).resolve().parents[1]
HELIOS = ROOT / "data_samples" / "helios_earth_may2020.csv"
START = pd.Timestamp("2020-05-24T16:00")


@pytest.mark.parametrize("kw, match", [
    ({"budget_usd": math.nan}, "budget must be >= 0 USD and finite"),
    ({"budget_usd": math.inf}, "budget must be >= 0 USD and finite"),
    ({"max_obligation_usd": math.nan}, "maximum commitment obligation must be >= 0 USD and finite"),
    ({"cost_of_capital": math.nan}, "cost of capital must be an annual rate from 0 to 1"),
    ({"cost_of_capital": -0.1}, "cost of capital must be an annual rate from 0 to 1"),
    ({"growth": math.nan}, "growth must be a number above -100%"),
    ({"growth": math.inf}, "growth must be a number above -100%"),
    ({"team_growth": (("nlp", -1.5),)}, "growth for team nlp must be a number above -100%"),
    ({"team_growth": (("nlp", math.nan),)}, "growth for team nlp must be a number above -100%"),
    ({"cvar_weight": math.nan}, "CVaR risk weight must be >= 0 and finite"),
])
def test_non_finite_or_out_of_range_settings_are_planning_errors(kw, match):
    # Before the fix NaN passed every `x < 0` check: a NaN budget was "met" by any plan, NaN growth made NaN
    # demand, and a NaN commitment cap reached PuLP as a NaN right-hand side (traceback).
    with pytest.raises(PlanningError, match=match):
        PlanConfig(start=START, hours=24, **kw)


def _plan(tmp_path: Path, *extra: str):
    out = tmp_path / "plan.json"
    r = CliRunner().invoke(app, ["plan", "--usage", str(HELIOS), "--start", "2020-05-24T16:00Z", "--hours", "24",
                                 "--out", str(out), *extra])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    lines = [ln for ln in r.output.splitlines() if ln.strip() and not ln.startswith("  ")]
    return r.exit_code, lines, out


@pytest.mark.parametrize("extra, expected", [
    (["--max-obligation-usd", "nan"], "maximum commitment obligation must be >= 0 USD and finite"),
    (["--max-commit-usd", "100"], "--max-commit-usd was removed"),
    (["--budget", "nan"], "budget must be >= 0 USD and finite"),
    (["--growth", "inf"], "growth must be a number above -100%"),
    (["--needs-approval", "p3dn.24xlarge", "--approve", "p3dn.24xlage"],
     "--approve 'p3dn.24xlage' is not among --needs-approval"),
    (["--spot-capacity", "p3.2xlage=2"], "--spot-capacity 'p3.2xlage': no such instance type in the catalog"),
])
def test_cli_rejects_bad_values_and_typos_in_one_line(tmp_path, extra, expected):
    code, lines, out = _plan(tmp_path, *extra)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], lines
    assert not out.exists()


def _one_gpu_plan(hourly_usd: float, upfront_usd: float, hours: int = 24):
    import numpy as np

    from optimizer.inputs import Scenarios
    from optimizer.plan import Commitment, Expected, OnDemandRate, Plan

    start = pd.Timestamp("2026-01-01")
    c = Commitment("x.1", "reserved_1y_partial_upfront", 1, start, hourly_usd, upfront_usd, "G", 1.0, 8760)
    plan = Plan(start, start + pd.Timedelta(hours=hours), "r", (c,), (), (OnDemandRate("G", "x.1", 1.0),),
                Expected(0.0, 0.0, 0.0, 0.0, 0.0))
    hrs = pd.date_range(start, periods=hours, freq="h")
    return plan, Scenarios(hours=hrs, gpu_models=("G",), names=("s",), weights=np.array([1.0]),
                           demand={"G": np.ones((1, hours))})


def test_break_even_with_a_tiny_saving_rate_is_none_not_an_overflow():
    from optimizer.solve import break_even_month

    # 1 GPU busy every hour, on-demand 1 USD/h, recurring 0.999999 USD/h: saving 1e-6 USD/h against 1e6 USD
    # upfront pays back after 1e12 hours, far beyond the 8760 h term -> (None, False). Before the fix the
    # projection built pd.Timedelta(hours=1e12) and raised OutOfBoundsTimedelta.
    plan, scenarios = _one_gpu_plan(0.999999, 1e6)
    assert break_even_month(plan, scenarios) == (None, False)
    # Hand-checked projection: saving 0.5 USD/h, upfront 24 USD, 24 h window -> cumulative -12 USD at the end,
    # 24 more hours -> 2026-01-03 00:00, month 2026-01, projected.
    plan, scenarios = _one_gpu_plan(0.5, 24.0)
    assert break_even_month(plan, scenarios) == ("2026-01", True)


def test_owned_commitments_of_a_gpu_model_without_demand_are_still_billed():
    from optimizer.plan import Commitment
    from optimizer.solve import make_plan
    from tests.helpers import START, flat_forecast, make_catalog

    cat = make_catalog([
        {"instance_type": "a.1", "purchase_option": "on_demand", "price": 1.0},
        {"instance_type": "a.1", "purchase_option": "reserved_1y_no_upfront", "price": 0.6},
        {"instance_type": "h.1", "purchase_option": "on_demand", "price": 2.0, "gpu_model": "NVIDIA H100"},
        {"instance_type": "h.1", "purchase_option": "reserved_1y_no_upfront", "price": 1.5,
         "gpu_model": "NVIDIA H100"},
    ])
    owned = Commitment("h.1", "reserved_1y_no_upfront", 3, pd.Timestamp("2025-06-01"), 1.5, 0.0, "NVIDIA H100", 1.0,
                       8760, end=pd.Timestamp("2026-06-01"), existing=True)
    cfg = PlanConfig(start=START, hours=10, allow_spot=False, options=("reserved_1y_no_upfront",), existing=(owned,),
                     instance_types=("a.1",))
    # 2 A100 GPUs flat for 10 h: buy 2 x a.1 reserved (2 x 0.6 x 10 = 12 USD). The 3 owned H100 instances have no
    # demand but are paid every hour: 3 x 1.5 x 10 = 45 USD. Before the fix the plan left them out (12 USD), so a
    # 15 USD budget passed although the window costs 57 USD.
    plan = make_plan(flat_forecast([2.0] * 10), cat, cfg).plan
    assert plan.expected.total_usd == pytest.approx(57.0)
    assert plan.expected.committed_usd == pytest.approx(57.0)
    assert plan.expected.commitment_utilization == pytest.approx(2 / 5)
    assert {o.gpu_model: o.usd_per_gpu_hour for o in plan.on_demand} == {"NVIDIA A100": 1.0, "NVIDIA H100": 2.0}
    assert [c.count for c in plan.commitments if not c.existing] == [2]
    with pytest.raises(PlanningError, match="smallest budget that works is 57 USD"):
        make_plan(flat_forecast([2.0] * 10), cat, dataclasses.replace(cfg, budget_usd=15.0))


def test_a_window_longer_than_the_shortest_term_needs_laddering():
    # A 1-year commitment bought at the start of a 13-month window lapses inside it; without monthly starts the
    # model would charge and count it for the whole window while the bill stops at its expiry.
    import pandas as pd

    from optimizer.inputs import PlanConfig, PlanningError

    start = pd.Timestamp("2026-01-01")
    with pytest.raises(PlanningError, match=r"longer than the shortest commitment term \(8,760 h\).*--ladder"):
        PlanConfig(start=start, hours=8760 + 744)
    assert PlanConfig(start=start, hours=8760 + 744, ladder=True).ladder
    assert PlanConfig(start=start, hours=8760).hours == 8760
    # only 3-year options: a 13-month window is within the term
    assert PlanConfig(start=start, hours=8760 + 744, options=("reserved_3y_all_upfront",)).hours == 9504
