"""Cost versus speed: the Pareto frontier, the backlog sweep on a hand-checkable catalog, the chart and the CLI.

Catalog and throughput as in tests/test_rightsizing.py: per reference (A100) GPU-hour of flat demand, L40S
costs 0.96 USD at 1.25x A100 speed and H100 2.0 USD at 3x; for a 40 GiB class the choice flips from L40S
to H100 at speed priority 0.456.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from app.charts import pareto_chart
from app.cli import app
from optimizer import catalog as C
from optimizer import pareto as P
from optimizer.inputs import PlanningError
from optimizer.plan import Plan
from tests.test_rightsizing import A10G, A100, CONFIG, FLAT, H100, tiny_catalog, tiny_throughput, usage, workloads
from usage import schema as S

HELIOS = C.DATA_DIR / "helios_earth_may2020.csv"
runner = CliRunner()


@pytest.fixture(scope="module")
def throughput(tmp_path_factory):
    return tiny_throughput(tmp_path_factory.mktemp("thr"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=30))
def test_frontier_is_non_dominated_complete_and_monotone(pairs):
    points = pd.DataFrame(pairs, columns=[P.COST, P.TIME]).astype(float)
    mask = P.pareto_front(points)
    front = points[mask]
    cost, time = points[P.COST].to_numpy(), points[P.TIME].to_numpy()
    for i in np.flatnonzero(mask):  # nothing beats a frontier point on both, strictly on one
        better = (cost <= cost[i]) & (time <= time[i]) & ((cost < cost[i]) | (time < time[i]))
        assert not better.any()
    for i in np.flatnonzero(~mask):  # every other point is matched or beaten by a frontier point
        assert ((front[P.COST] <= cost[i]) & (front[P.TIME] <= time[i])).any()
    ordered = front.sort_values(P.TIME)
    assert ordered[P.COST].is_monotonic_decreasing  # cost never falls as time falls
    assert ordered[P.TIME].is_unique


def test_sweep_on_hand_checkable_backlog(throughput):
    # 10 A100 GPUs for 24 h = 240 A100-hours on 10 GPUs. L40S: 240 x 0.96 = 230.4 USD in 240 / (10 x 1.25)
    # = 19.2 h; H100: 240 x 2.0 = 480 USD in 240 / (10 x 3) = 8 h. The serving team is not backlog.
    demand = usage({("big", A100): FLAT, ("serve", A10G): [8.0] * 24})
    result = P.sweep(demand, workloads({"big": "needs40", "serve": "serving"}), tiny_catalog(), CONFIG, steps=11,
                     throughput=throughput)
    assert list(result.backlog[S.TEAM]) == ["big"]
    assert result.backlog["reference_gpu_hours"].iloc[0] == pytest.approx(240.0)
    pts = result.points
    assert list(pts[P.SPEED_PRIORITY]) == [0.0, 0.5]  # the switch happens at w = 0.456
    assert list(pts[P.SPEED_PRIORITY_TO]) == [0.4, 1.0]  # each point says which swept priorities it stands for
    assert pts[P.COST].tolist() == pytest.approx([230.4, 480.0])
    assert pts[P.TIME].tolist() == pytest.approx([19.2, 8.0])
    assert pts[P.MIX].tolist() == ["L40S 100%", "H100 100%"]
    assert pts[P.ON_FRONTIER].all()
    assert result.frontier[P.TIME].tolist() == pytest.approx([8.0, 19.2])
    assert result.window_hours == 24


def test_spot_interruptions_stretch_completion_time(throughput):
    # 10 GPUs half of the hours: L40S takes all of it, 30% of its GPU-hours on spot (cheaper than committing
    # to a half-idle level), so the 120 A100-hours on 5 GPUs (mean) take 120 x (1 + 0.3 r) / (5 x 1.25) hours.
    demand = usage({("train", A100): [10.0] * 12 + [0.0] * 12})
    result = P.sweep(demand, workloads({"train": "train40"}), tiny_catalog(), CONFIG, steps=2, throughput=throughput)
    first = result.points.iloc[0]
    assert first[P.MIX] == "L40S 100%"
    rework = C.rework_fraction("<5%", CONFIG.checkpoint_interval_hours, CONFIG.restart_overhead_hours)
    assert first[P.TIME] == pytest.approx(120 * (1 + 0.3 * rework) / (5 * 1.25), rel=1e-9)
    assert first[P.TIME] > 120 / (5 * 1.25)


def test_only_latency_bound_demand_has_no_backlog(throughput):
    demand = usage({("serve", A10G): [8.0] * 24})
    with pytest.raises(PlanningError, match="no batch work"):
        P.sweep(demand, workloads({"serve": "serving"}), tiny_catalog(), CONFIG, throughput=throughput)
    with pytest.raises(PlanningError, match="at least 2 speed priorities"):
        P.sweep(demand, workloads({"serve": "serving"}), tiny_catalog(), CONFIG, steps=1)


def test_pareto_chart_has_points_and_frontier_line(throughput):
    demand = usage({("big", A100): FLAT, ("b2", H100): [2.0] * 24})
    result = P.sweep(demand, workloads({"big": "needs40", "b2": "train40"}), tiny_catalog(), CONFIG, steps=5,
                     throughput=throughput)
    spec = pareto_chart(result.points).to_dict()
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in spec["layer"]]
    assert marks == ["line", "circle"]
    assert spec["layer"][1]["encoding"]["x"]["field"] == P.TIME
    assert spec["layer"][1]["encoding"]["y"]["field"] == P.COST


def test_cli_pareto_on_helios(tmp_path):
    wl = tmp_path / "wl.yaml"
    wl.write_text("classes:\n  train: {min_gpu_memory_gib: 16, spot_tolerant: true}\ndefault: train\n")
    out, chart = tmp_path / "pareto.csv", tmp_path / "pareto.html"
    r = runner.invoke(app, ["pareto", "--usage", str(HELIOS), "--workloads", str(wl), "--hours", "168",
                            "--steps", "11", "--out", str(out), "--chart", str(chart)])
    assert r.exit_code == 0, r.output
    assert "Cost vs speed" in r.output and "frontier" in r.output
    pts = pd.read_csv(out)
    assert {P.SPEED_PRIORITY, P.COST, P.TIME, P.MAKESPAN, P.MIX, P.ON_FRONTIER} <= set(pts.columns)
    front = pts[pts[P.ON_FRONTIER]].sort_values(P.TIME)
    assert front[P.COST].is_monotonic_decreasing
    assert pts[P.COST].idxmin() == pts[P.SPEED_PRIORITY].idxmin()  # speed priority 0 is the cheapest point
    assert pts[P.TIME].idxmin() == pts[P.SPEED_PRIORITY].idxmax()  # speed priority 1 is the fastest point
    assert "vega" in chart.read_text()


def test_cli_plan_with_workloads_routes_and_writes_routing(tmp_path):
    fc_path = tmp_path / "fc.csv"
    r = runner.invoke(app, ["forecast", "--usage", str(HELIOS), "--horizon-hours", "24", "--out", str(fc_path)])
    assert r.exit_code == 0, r.output
    wl = tmp_path / "wl.yaml"
    wl.write_text("classes:\n  serving: {min_gpu_memory_gib: 16, latency_bound: true}\n"
                  "  train: {min_gpu_memory_gib: 24, spot_tolerant: true}\nteams: {vc6YE: serving}\ndefault: train\n")
    plan_path = tmp_path / "plan.json"
    r = runner.invoke(app, ["plan", "--usage", str(HELIOS), "--start", "2020-05-31T16:00Z", "--hours", "24",
                            "--forecast", str(fc_path), "--out", str(plan_path), "--workloads", str(wl),
                            "--speed-priority", "0"])
    assert r.exit_code == 0, r.output
    assert "Rightsizing (speed priority 0)" in r.output
    d = json.loads(plan_path.read_text())
    routes = {x["team"]: x for x in d["routing"]}
    assert len(routes) == 16 and routes["vc6YE"]["workload_class"] == "serving"
    assert all(x["from_gpu_types"] == ["NVIDIA Tesla V100"] for x in routes.values())
    trained = {x["gpu_model"] for t, x in routes.items() if t != "vc6YE"}
    assert "NVIDIA Tesla V100" not in trained  # V100 has 16/32 GiB: the 24 GiB class may not stay on p3
    shares = d["assumptions"]["rightsizing"]["spot_share_by_model"]
    if routes["vc6YE"]["gpu_model"] not in trained:
        assert shares[routes["vc6YE"]["gpu_model"]] == 0.0
    plan = Plan.read(plan_path)
    assert {o.gpu_model for o in plan.on_demand} == {x["gpu_model"] for x in routes.values()}


def test_cli_plan_bad_workloads_file_is_one_line_exit_2(tmp_path):
    wl = tmp_path / "wl.yaml"
    wl.write_text("classes:\n  a: {gpus_per_job: 0}\n")
    r = runner.invoke(app, ["plan", "--usage", str(HELIOS), "--start", "2020-05-31T16:00Z", "--hours", "24",
                            "--out", str(tmp_path / "p.json"), "--workloads", str(wl)])
    assert r.exit_code == 2
    lines = [x for x in r.output.splitlines() if x.startswith("error:")]
    assert lines == ["error: wl.yaml, key 'classes.a', field 'gpus_per_job': must be a whole number >= 1, got 0 "
                     "(fix: write e.g. gpus_per_job: 2)"]
    assert "Traceback" not in r.output
