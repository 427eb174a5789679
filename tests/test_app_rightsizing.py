"""Rightsizing in the planner: the What-if's "Rightsize GPU models per team" and speed priority route teams through
optimizer.rightsizing exactly as ``gpuplan plan --workloads --speed-priority`` does, the Plan page lists the
routing with reasons, the Scenarios page's time-to-result follows the plan's routing, and every settings field
shows on the Scenarios page.

Real synthetic sample (data_samples/workloads.yaml) over a one-week window; nothing in the core is patched.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app import plan_frames as PF
from app import plan_state as PS
from app import state as A
from app import view
from app.app_pages import scenarios as P
from app.cli_rightsizing import route_for_plan
from forecasting.samples import data_dir
from optimizer.catalog import load_catalog
from optimizer.inputs import scenarios_from_paths
from optimizer.rightsizing import load_throughput
from usage import schema as S

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
HOURS = 168
BASE = A.PlannerSettings(sample="synthetic", hours=HOURS)


def rightsized(speed: float, **kw) -> A.PlannerSettings:
    return dataclasses.replace(BASE, rightsize=True, speed_priority=speed, **kw)


def work_weighted_throughput(plan) -> float:
    """Mean relative throughput (x A100) of the routed GPU models, weighted by the work routed there."""
    work = np.array([r.reference_gpu_hours for r in plan.routing])
    return float(np.average([r.relative_throughput for r in plan.routing], weights=work))


@pytest.fixture
def synthetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(A.DEFAULT_SAMPLE_ENV, "synthetic")
    monkeypatch.setenv(A.DEFAULT_HOURS_ENV, str(HOURS))


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


@pytest.mark.parametrize("speed", [0.0, 0.5, 1.0])
def test_app_routing_is_the_cli_routing(speed: float) -> None:
    s = rightsized(speed)
    usage = A.cached_usage("synthetic")
    fc = A.cached_forecast(s.forecast_settings).forecast
    config = s.plan_config(A.window_start(usage))
    _, _, cli_config, cli = route_for_plan(usage, fc, load_catalog(), config, data_dir() / "workloads.yaml", speed,
                                           None, None)
    app = A.cached_routing(s)
    assert app.assignment == cli.assignment
    assert app.plan_config(config) == cli_config
    assert app.table["reason"].tolist() == cli.table["reason"].tolist()
    plan = A.cached_plan(s).plan
    assert [r.gpu_model for r in plan.routing] == cli.table["gpu_model"].tolist()
    assert plan.assumptions["rightsizing"]["speed_priority"] == speed


def test_routing_conserves_work_and_speed_buys_faster_gpus() -> None:
    fres = A.cached_forecast(BASE.forecast_settings)
    config = BASE.plan_config(A.window_start(A.cached_usage("synthetic")))
    thr = load_throughput()
    before = scenarios_from_paths(fres.long, config)
    routing = A.cached_routing(rightsized(1.0))
    after = scenarios_from_paths(fres.long, config, gpu_map=dict(routing.assignment))
    # A100-hours of work per path and hour are the same on the routed GPU models
    work = [sum(sc.demand[g] * thr.of(g) for g in sc.gpu_models) for sc in (before, after)]
    np.testing.assert_allclose(work[1], work[0], rtol=1e-9)
    assert set(after.gpu_models) == {g for _, (g, _) in routing.assignment}
    cheap, fast = A.cached_plan(rightsized(0.0)).plan, A.cached_plan(rightsized(1.0)).plan
    assert work_weighted_throughput(fast) > work_weighted_throughput(cheap)
    assert fast.expected.total_usd > cheap.expected.total_usd  # speed costs money on this sample
    # growth, budget and risk do not re-route: the routing key ignores them
    assert A.routing_key(rightsized(0.5, growth=0.4, cvar_weight=0.5)) == A.routing_key(rightsized(0.5))
    assert A.routing_key(BASE) is None and A.cached_routing(BASE) is None


def test_whatif_rightsizing_and_plan_page_routing_table(synthetic_env: None) -> None:
    at = AppTest.from_file(APP, default_timeout=300)
    ok(at.run())
    ok(at.switch_page("app_pages/whatif.py").run())
    assert at.slider(key=A.SPEED_KEY).disabled
    at.checkbox(key=A.RIGHTSIZE_KEY).check()
    ok(at.run())
    assert not at.slider(key=A.SPEED_KEY).disabled
    cheap = at.session_state[A.WHATIF_KEY]
    assert cheap.rightsize and cheap.speed_priority == 0.0
    assert any(c.value.startswith("Rightsized at speed priority 0 %") for c in at.caption)
    assert any("data_samples/workloads.yaml" in c.value for c in at.caption)
    at.slider(key=A.SPEED_KEY).set_value(100)
    ok(at.run())
    fast = at.session_state[A.WHATIF_KEY]
    assert fast.speed_priority == 1.0
    cheap_plan, fast_plan = A.cached_plan(cheap).plan, A.cached_plan(fast).plan
    assert work_weighted_throughput(fast_plan) > work_weighted_throughput(cheap_plan)
    assert at.session_state[A.PLAN_SUMMARY_KEY]["expected_usd"] == pytest.approx(fast_plan.expected.total_usd)

    ok(at.switch_page("app_pages/plan.py").run())
    assert any(h.value.startswith("GPU model per team") for h in at.subheader)
    (table,) = [f for f in (view.shown(t.value) for t in at.table) if "Reason" in f.columns]
    assert table["Team"].tolist() == [r.team for r in fast_plan.routing]
    assert table["Routed to"].tolist() == [r.gpu_model for r in fast_plan.routing]
    assert all(reason.startswith("fastest feasible: ") for reason in table["Reason"])
    assert "Routing (CSV)" in {b.proto.label for b in at.get("download_button")}
    assert any("GPU models rightsized per team at speed priority 100 %" in c.value for c in at.caption)


def test_time_to_result_follows_the_plans_routing() -> None:
    sweep = P.cached_sweep(P.sweep_key(rightsized(0.0)))
    times = {}
    for speed in (0.0, 0.5, 1.0):
        s = rightsized(speed)
        times[speed] = P.time_to_result(s, A.cached_plan(s))
        assert times[speed] == pytest.approx(P.time_at(sweep.points, speed), rel=1e-9)
    assert times[1.0] < times[0.0]
    # the same settings without rightsizing: today's GPUs, the window stretched by the plan's spot rework
    from app.whatif_model import spot_time_overhead

    plain = P.time_to_result(BASE, A.cached_plan(BASE))
    assert plain == pytest.approx(HOURS * (1 + spot_time_overhead(A.cached_plan(BASE))))


# --- every settings field is shown on the Scenarios page ------------------------------------------------
CHANGED = {
    "sample": "helios", "hours": 336, "growth": 0.2, "max_spot_share": 0.5, "allow_spot": False,
    "team_growth": (("ads-ctr", 0.1),), "options": (), "spot_discount": 0.7, "interruption_bucket": ">20%",
    "speed_priority": 0.5, "max_obligation_usd": 1_000_000.0, "cost_of_capital": 0.05, "budget_usd": 100_000.0,
    "events_name": "events_sample.yaml", "ladder": True, "no_spot_models": ("NVIDIA T4",), "cvar_weight": 0.5,
    "owned_name": "owned.csv",
    "rightsize": False}


def test_every_settings_field_changes_the_shown_settings() -> None:
    base = rightsized(0.0)
    fields = {f.name for f in dataclasses.fields(A.PlannerSettings)}
    assert set(CHANGED) | P.HIDDEN_SETTINGS == fields, "give the new field a changed value here"
    shown = P.settings_rows(dataclasses.asdict(base))
    for name, value in CHANGED.items():
        other = P.settings_rows(dataclasses.asdict(dataclasses.replace(base, **{name: value})))
        assert other != shown, f"changing '{name}' does not show on the Scenarios page"
    assert set(PS.SETTINGS_LINE_OF) <= fields  # no stale mapping


def test_a_new_settings_field_gets_its_own_row(monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclasses.dataclass(frozen=True)
    class Newer(A.PlannerSettings):
        reserved_capacity_gpus: int = 0

    monkeypatch.setattr(A, "PlannerSettings", Newer)
    rows = P.settings_rows({**dataclasses.asdict(BASE), "reserved_capacity_gpus": 12})
    assert rows["Reserved capacity gpus"] == "12"
    assert rows["Plan window"] == "168 h" and "GPU models" in rows
    # old scenarios (fields this version lacks) still show every stored field
    old = P.settings_rows({"hours": 168, "mystery_knob": 3})
    assert old == {"Plan window (h)": "168", "Mystery knob": "3"}


def test_routing_frame_units_and_caption() -> None:
    plan = A.cached_plan(rightsized(0.0)).plan
    frame = PF.routing_frame(plan)
    assert list(frame.columns[:5]) == ["Team", "Workload class", "Class from", "GPU models today", "Routed to"]
    assert frame["Work (A100-hours)"].sum() == pytest.approx(sum(r.reference_gpu_hours for r in plan.routing))
    moved = {r.team for r in plan.routing if r.gpu_model not in r.from_gpu_types}
    caption = PF.routing_caption(plan)
    assert caption.startswith(f"Rightsized at speed priority 0 %: {len(moved)} of ")
    assert S.TEAM not in frame.columns  # display names only
