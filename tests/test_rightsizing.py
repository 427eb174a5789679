"""Rightsizing: workload classes, the throughput table and routing, on hand-checkable catalogs.

Tiny catalog (USD per instance-hour; per GPU in brackets) and throughput vs A100:
- g5.xlarge      1 x A10G 24 GiB: on-demand 1.0, reserved 0.2, spot 0.1        throughput 0.25
- g6e.xlarge     1 x L40S 48 GiB: on-demand 2.0, reserved 1.2, spot 0.8        throughput 1.25
- p4de.24xlarge  8 x A100 80 GiB: on-demand 32 (4), reserved 20 (2.5), spot 16  throughput 1.0
- p5.48xlarge    8 x H100 80 GiB: on-demand 80 (10), reserved 48 (6), spot 40   throughput 3.0
For flat demand the best plan commits to all of it, so the cost per reference (A100) GPU-hour is the
reserved rate per GPU / throughput: A10G 0.8, L40S 0.96, A100 2.5, H100 2.0.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer import catalog as C
from optimizer import rightsizing as R
from optimizer.inputs import PlanConfig, PlanningError, offers_for
from optimizer.plan import Plan
from optimizer.solve import make_plan
from optimizer.workloads import SOURCE_FILE, SOURCE_FILE_DEFAULT, SOURCE_INFERRED, WorkloadsError, load_workloads
from optimizer.workloads import parse_workloads as parse
from tests.helpers import START, make_catalog
from usage import schema as S

A10G, L40S, A100, H100 = "NVIDIA A10G", "NVIDIA L40S", "NVIDIA A100", "NVIDIA H100"
RESERVED = "reserved_1y_no_upfront"


def tiny_catalog() -> C.Catalog:
    rows = []
    for itype, model, gpus, memory, od, rsv, spot, bucket in (
            ("g5.xlarge", A10G, 1, 24, 1.0, 0.2, 0.1, "<5%"),
            ("g6e.xlarge", L40S, 1, 48, 2.0, 1.2, 0.8, "<5%"),
            ("p4de.24xlarge", A100, 8, 80, 32.0, 20.0, 16.0, "5-10%"),
            ("p5.48xlarge", H100, 8, 80, 80.0, 48.0, 40.0, "5-10%")):
        for option, price in (("on_demand", od), (RESERVED, rsv), ("spot", spot)):
            rows.append({"instance_type": itype, "purchase_option": option, "price": price, "gpus": gpus,
                         "gpu_model": model, "memory": memory, "bucket": bucket})
    return make_catalog(rows)


def tiny_throughput(directory) -> R.Throughput:
    path = directory / "thr.csv"
    path.write_text("gpu_model,relative_throughput,source\nNVIDIA A10G,0.25,test\nNVIDIA L40S,1.25,test\n"
                    "NVIDIA A100,1.0,test\nNVIDIA H100,3.0,test\n")
    return R.load_throughput(path)


@pytest.fixture(scope="module")
def throughput(tmp_path_factory) -> R.Throughput:
    return tiny_throughput(tmp_path_factory.mktemp("thr"))


CLASSES = {
    "needs40": {"min_gpu_memory_gib": 40},
    "small": {"min_gpu_memory_gib": 16},
    "serving": {"min_gpu_memory_gib": 16, "latency_bound": True},
    "train40": {"min_gpu_memory_gib": 40, "spot_tolerant": True},
    "train16": {"min_gpu_memory_gib": 16, "spot_tolerant": True},
    "multinode": {"min_gpu_memory_gib": 40, "gpus_per_job": 8, "fast_interconnect": True},
    "slow-ckpt": {"min_gpu_memory_gib": 40, "spot_tolerant": True, "checkpoint_interval_hours": 4.0},
}


def workloads(teams: dict, default: str | None = None):
    doc = {"classes": CLASSES, "teams": teams}
    if default is not None:
        doc["default"] = default
    return parse(doc, "wl.yaml")


def usage(series: dict[tuple[str, str], list[float] | np.ndarray]) -> pd.DataFrame:
    frames = []
    for (team, gpu), values in series.items():
        values = np.asarray(values, dtype=float)
        frames.append(pd.DataFrame({S.TEAM: team, S.GPU_TYPE: gpu, S.GPUS: values,
                                    S.TIMESTAMP: pd.date_range(START, periods=len(values), freq="h")}))
    return pd.concat(frames, ignore_index=True)


CONFIG = PlanConfig(start=START, hours=24, options=(RESERVED,))
FLAT = [10.0] * 24


def test_a_team_needing_40_gib_never_lands_on_a_24_gib_gpu(throughput):
    demand = usage({("big", A100): FLAT})
    wl = workloads({"big": "needs40"})
    cands = R.evaluate(demand, wl, tiny_catalog(), CONFIG, throughput)
    for w in np.linspace(0, 1, 11):
        routing = R.route(demand, wl, tiny_catalog(), CONFIG, speed_priority=float(w), throughput=throughput,
                          candidates=cands)
        assert routing.table[R.GPU_MODEL].iloc[0] != A10G
    cheapest = R.route(demand, wl, tiny_catalog(), CONFIG, speed_priority=0.0, throughput=throughput)
    row = cheapest.table.iloc[0]
    assert row[R.GPU_MODEL] == L40S
    assert row[R.USD_PER_REF] == pytest.approx(1.2 / 1.25)  # reserved 1.2 USD per L40S-hour / 1.25
    assert "cheapest feasible: L40S" in row[R.REASON]
    assert "A10G has 24 GiB per GPU < 40 GiB" in row[R.REASON]


def test_speed_priority_zero_is_cheapest_and_one_is_fastest(throughput):
    demand = usage({("small", A100): FLAT, ("big", A100): FLAT})
    wl = workloads({"small": "small", "big": "needs40"})
    cheap = R.route(demand, wl, tiny_catalog(), CONFIG, speed_priority=0.0, throughput=throughput)
    fast = R.route(demand, wl, tiny_catalog(), CONFIG, speed_priority=1.0, throughput=throughput)
    by_team = cheap.table.set_index(R.TEAM)
    assert by_team.loc["small", R.GPU_MODEL] == A10G  # 0.2 / 0.25 = 0.80 USD per A100-hour beats L40S 0.96
    assert by_team.loc["small", R.USD_PER_REF] == pytest.approx(0.8)
    assert by_team.loc["big", R.GPU_MODEL] == L40S
    assert set(fast.table[R.GPU_MODEL]) == {H100}  # 3.0x is the highest throughput both fit
    assert "fastest feasible: H100" in fast.table[R.REASON].iloc[0]
    # every feasible candidate costs at least the chosen one at w=0 and is no faster than the one at w=1
    cands = cheap.candidates[cheap.candidates["feasible"]]
    for team, rows in cands.groupby(R.TEAM):
        assert rows[R.USD_PER_REF].min() == pytest.approx(by_team.loc[team, R.USD_PER_REF])
        assert rows[R.THROUGHPUT].max() == fast.table.set_index(R.TEAM).loc[team, R.THROUGHPUT]


def test_speed_priority_blend_switches_where_cost_and_time_ratios_balance(throughput):
    # L40S: 0.96 USD, 0.8 h per A100-hour; H100: 2.0 USD, 1/3 h. cost^(1-w) time^w is equal at
    # w* = ln(2/0.96) / (ln(2/0.96) + ln(0.8 * 3)) = 0.456.
    demand = usage({("big", A100): FLAT})
    wl = workloads({"big": "needs40"})
    w_star = math.log(2 / 0.96) / (math.log(2 / 0.96) + math.log(2.4))
    assert w_star == pytest.approx(0.456, abs=1e-3)
    pick = {w: R.route(demand, wl, tiny_catalog(), CONFIG, speed_priority=w, throughput=throughput)
            .table[R.GPU_MODEL].iloc[0] for w in (0.45, 0.46)}
    assert pick == {0.45: L40S, 0.46: H100}


def test_interconnect_and_approvals_restrict_the_instance_types(throughput):
    demand = usage({("llm", H100): [4.0] * 24})
    wl = workloads({"llm": "multinode"})
    routing = R.route(demand, wl, tiny_catalog(), CONFIG, throughput=throughput)
    row = routing.table.iloc[0]
    assert row[R.GPU_MODEL] == H100  # 6/3 = 2.0 per A100-hour beats A100 2.5; L40S is not NVLink/EFA-class
    assert "L40S has no NVLink/EFA-class instance" in row[R.REASON]
    gated = PlanConfig(start=START, hours=24, options=(RESERVED,), needs_approval=("p5.48xlarge",))
    blocked = R.route(demand, wl, tiny_catalog(), gated, throughput=throughput).table.iloc[0]
    assert blocked[R.GPU_MODEL] == A100
    assert "H100: p5.48xlarge needs approval" in blocked[R.REASON]
    approved = PlanConfig(start=START, hours=24, options=(RESERVED,), needs_approval=("p5.48xlarge",),
                          approved=("p5.48xlarge",))
    assert R.route(demand, wl, tiny_catalog(), approved, throughput=throughput).table[R.GPU_MODEL].iloc[0] == H100


def test_no_fitting_instance_type_is_a_one_line_error(throughput):
    demand = usage({("huge", A100): FLAT})
    wl = parse({"classes": {"giant": {"min_gpu_memory_gib": 200}}, "teams": {"huge": "giant"}}, "wl.yaml")
    with pytest.raises(PlanningError) as exc:
        R.route(demand, wl, tiny_catalog(), CONFIG, throughput=throughput)
    msg = str(exc.value)
    assert "\n" not in msg and "wl.yaml: team 'huge'" in msg and "H100 has 80 GiB per GPU < 200 GiB" in msg
    assert "(fix:" in msg


def test_latency_bound_class_gets_spot_share_zero_for_its_gpu_model(throughput):
    demand = usage({("serve", A10G): [8.0] * 24, ("train", A100): FLAT})
    wl = workloads({"serve": "serving", "train": "train40"})
    routing = R.route(demand, wl, tiny_catalog(), CONFIG, throughput=throughput)
    assert dict(routing.table.set_index(R.TEAM)[R.GPU_MODEL]) == {"serve": A10G, "train": L40S}
    assert dict(routing.spot_share_by_model) == {A10G: 0.0, L40S: 0.3}
    config = routing.plan_config(CONFIG)
    assert config.spot_share_for(A10G) == 0.0 and config.spot_share_for(L40S) == 0.3
    assert set(config.instance_types) == {"g5.xlarge", "g6e.xlarge"}
    serve = routing.table.set_index(R.TEAM).loc["serve"]
    assert not serve[R.SPOT_ALLOWED] and serve[R.SPOT_SHARE] == 0.0 and "latency-bound: no spot" in serve[R.REASON]


def test_spot_cap_of_a_shared_gpu_model_is_the_spot_tolerant_share(throughput):
    # both 16 GiB classes go to A10G; the spot-tolerant team has 0.5 of its 2.5 GPUs -> 20% of its GPU-hours
    demand = usage({("serve", A10G): [2.0] * 24, ("train", A10G): [0.5] * 24})
    wl = workloads({"serve": "serving", "train": "train16"})
    routing = R.route(demand, wl, tiny_catalog(), CONFIG, throughput=throughput)
    assert set(routing.table[R.GPU_MODEL]) == {A10G}
    assert dict(routing.spot_share_by_model)[A10G] == pytest.approx(0.2)


def test_serve_cost_matches_a_hand_computed_load_duration_curve():
    # 12 hours at 10 GPUs, 12 at 0. Commit levels 0, 5 (median), 10; spot share 30% of 120 GPU-hours = 36.
    # c=0: 36 on spot + 84 on-demand = 36 s + 168; c=5: 5*24*1.2 + 36 s + 24*2 = 192 + 36 s; c=10: 288.
    gpus = np.array([10.0] * 12 + [0.0] * 12)
    spot = 0.8 * (1 + C.rework_fraction("<5%", 1.0, 0.25))
    cost, on_spot = R.serve_cost(gpus, commit=1.2, od=2.0, spot=spot, spot_share=0.3)
    assert on_spot == pytest.approx(36.0)
    assert cost == pytest.approx(168 + 36 * spot)
    flat_cost, flat_spot = R.serve_cost(np.full(24, 10.0), commit=1.2, od=2.0, spot=math.inf, spot_share=0.0)
    assert (flat_cost, flat_spot) == (pytest.approx(288.0), 0.0)
    # flat 8 GPUs with spot (0.80 x (1 + rework)) cheaper than the commitment (1.2): commit 70% = 5.6 GPUs and
    # put the top 30% (57.6 GPU-hours) on spot
    cost, on_spot = R.serve_cost(np.full(24, 8.0), commit=1.2, od=2.0, spot=spot, spot_share=0.3)
    assert on_spot == pytest.approx(57.6)
    assert cost == pytest.approx(5.6 * 24 * 1.2 + 57.6 * spot)


@settings(max_examples=25, deadline=None)
@given(w=st.floats(0.0, 1.0), seed=st.integers(0, 10_000))
def test_reference_gpu_hours_are_conserved(throughput, w, seed):
    rng = np.random.default_rng(seed)
    series = {("a", A100): rng.uniform(0, 20, 24), ("a", H100): rng.uniform(0, 5, 24),
              ("b", A10G): rng.uniform(0, 9, 24), ("c", L40S): rng.uniform(0, 3, 24)}
    demand = usage(series)
    wl = workloads({"a": "train40", "b": "serving"}, default="small")
    routing = R.route(demand, wl, tiny_catalog(), CONFIG, speed_priority=w, throughput=throughput)
    ref_in = sum(v.sum() * throughput.of(g) for (_, g), v in series.items())
    routed = routing.apply(demand, [S.GPUS])
    ref_out = float((routed[S.GPUS] * routed[S.GPU_TYPE].map(throughput.of)).sum())
    assert ref_out == pytest.approx(ref_in, rel=1e-9)
    assert routing.table[R.REF_HOURS].sum() == pytest.approx(ref_in, rel=1e-9)
    # whole teams go to one GPU model each
    assert routed.groupby(S.TEAM)[S.GPU_TYPE].nunique().max() == 1


def test_routed_demand_plugs_into_the_purchase_milp(throughput):
    # 10 A100 GPUs flat -> 8 L40S GPUs (10 / 1.25) -> the plan commits 8 g6e.xlarge at 1.2 USD for 24 h.
    demand = usage({("big", A100): FLAT, ("serve", A10G): [8.0] * 24})
    wl = workloads({"big": "needs40", "serve": "serving"})
    routing = R.route(demand, wl, tiny_catalog(), CONFIG, throughput=throughput)
    fc = routing.apply(demand.rename(columns={S.GPUS: S.MEAN}), [S.MEAN])
    for q in (S.P10, S.P50, S.P90):
        fc[q] = fc[S.MEAN]
    result = make_plan(fc, tiny_catalog(), routing.plan_config(CONFIG))
    plan = R.attach_routing(result.plan, routing)
    counts = {(c.instance_type, c.purchase_option): c.count for c in plan.commitments}
    assert counts == {("g6e.xlarge", RESERVED): 8, ("g5.xlarge", RESERVED): 8}
    assert not plan.spot  # neither class may use spot
    assert plan.expected.total_usd == pytest.approx((8 * 1.2 + 8 * 0.2) * 24)
    assert routing.table[R.USD].sum() == pytest.approx(plan.expected.total_usd)
    d = json.loads(plan.to_json())
    assert {r["team"]: r["gpu_model"] for r in d["routing"]} == {"big": L40S, "serve": A10G}
    assert d["assumptions"]["rightsizing"]["spot_share_by_model"] == {A10G: 0.0, L40S: 0.0}
    again = Plan.from_dict(d)
    assert again.routing == plan.routing
    old = {k: v for k, v in d.items() if k != "routing"}  # plans written before rightsizing still load
    assert Plan.from_dict(old).routing == ()


def test_class_defaults_and_sources(throughput):
    demand = usage({("listed", A100): FLAT, ("unlisted", A10G): FLAT})
    inferred = R.route(demand, workloads({"listed": "needs40"}), tiny_catalog(), CONFIG, throughput=throughput)
    t = inferred.table.set_index(R.TEAM)
    assert t.loc["listed", R.CLASS_SOURCE] == SOURCE_FILE
    assert t.loc["unlisted", R.CLASS_SOURCE] == SOURCE_INFERRED
    assert t.loc["unlisted", R.CLASS] == "default (NVIDIA A10G)"  # keeps >= 24 GiB, no spot
    assert not t.loc["unlisted", R.SPOT_ALLOWED]
    with_default = R.route(demand, workloads({"listed": "needs40"}, default="needs40"), tiny_catalog(), CONFIG,
                           throughput=throughput).table.set_index(R.TEAM)
    assert with_default.loc["unlisted", R.CLASS_SOURCE] == SOURCE_FILE_DEFAULT
    assert with_default.loc["unlisted", R.GPU_MODEL] == L40S


@pytest.mark.parametrize("text, expected", [
    ("classes: {a: {gpus_per_job: 0}}\nteams: {}", "wl.yaml, key 'classes.a', field 'gpus_per_job': must be a whole"),
    ("classes: {a: {latency_bound: true, spot_tolerant: true}}", "key 'classes.a', field 'spot_tolerant'"),
    ("classes: {a: {min_memory: 3}}", "key 'classes.a', field 'min_memory': unknown field"),
    ("classes: {a: {}}\nteams: {t: b}", "key 'teams.t': unknown workload class 'b'"),
    ("classes: {a: {}}\nteams: {t: {NVIDIA Z9: a}}", "key 'teams.t': unknown GPU model 'NVIDIA Z9'"),
    ("classes: {a: {spot_tolerant: yes please}}", "field 'spot_tolerant': expected true or false"),
    ("classes: [a", "wl.yaml: not valid YAML"),
])
def test_workloads_file_errors_are_one_line_with_the_fix(tmp_path, text, expected):
    path = tmp_path / "wl.yaml"
    path.write_text(text)
    with pytest.raises(WorkloadsError) as exc:
        load_workloads(path, known_gpu_types={A100, H100})
    msg = str(exc.value)
    assert expected in msg and "\n" not in msg and "(fix:" in msg


def test_shipped_workloads_and_throughput_table_are_consistent():
    cat = C.load_catalog()
    wl = load_workloads(C.DATA_DIR / "workloads.yaml", known_gpu_types=cat.gpu_models())
    assert {"llm-pretrain", "llm-inference"} <= set(wl.teams)
    assert wl.classes["llm-serving"].latency_bound and not wl.classes["llm-serving"].may_use_spot
    thr = R.load_throughput()
    assert thr.of(R.REFERENCE_GPU) == 1.0
    assert set(thr.models) <= cat.gpu_models()
    assert thr.table["source"].str.len().min() > 20
    assert thr.of("NVIDIA H100") > thr.of("NVIDIA L40S") > thr.of(R.REFERENCE_GPU) > thr.of("NVIDIA L4")
    # dense BF16/FP16 tensor TFLOPS ratios as documented in the table
    for _, row in thr.table.iterrows():
        assert row["relative_throughput"] == pytest.approx(row["dense_bf16_fp16_tflops"] / 312, abs=0.006)


def test_throughput_table_errors(tmp_path):
    bad = tmp_path / "thr.csv"
    bad.write_text("gpu_model,relative_throughput,source\nNVIDIA A100,1.0,x\nNVIDIA H100,-3,datasheet\n")
    with pytest.raises(S.UsageError, match=r"thr.csv, row 3, column 'relative_throughput'.*\(fix:"):
        R.load_throughput(bad)
    bad.write_text("gpu_model,relative_throughput,source\nNVIDIA A100,1.0,\n")
    with pytest.raises(S.UsageError, match="column 'source': every figure needs its public source"):
        R.load_throughput(bad)


def test_latency_bound_work_gets_no_spot_in_the_plan(throughput):
    # A10G spot (0.1) is below its reserved rate (0.2): without workload classes the MILP puts 30% of the
    # serving team's GPU-hours on spot; routed as latency-bound it gets none, while the spot-tolerant
    # training team's L40S does (spot 0.8 x (1 + rework) < reserved 1.2).
    demand = usage({("serve", A10G): [8.0] * 24, ("train", A100): FLAT})
    fc = demand.rename(columns={S.GPUS: S.MEAN})
    for q in (S.P10, S.P50, S.P90):
        fc[q] = fc[S.MEAN]
    unrouted = make_plan(fc, tiny_catalog(), CONFIG).plan
    assert A10G in {s.gpu_model for s in unrouted.spot}
    routing = R.route(demand, workloads({"serve": "serving", "train": "train40"}), tiny_catalog(), CONFIG,
                      throughput=throughput)
    routed = routing.apply(fc, [S.MEAN, S.P10, S.P50, S.P90])
    plan = make_plan(routed, tiny_catalog(), routing.plan_config(CONFIG)).plan
    assert {s.gpu_model for s in plan.spot} == {L40S}
    # 8 L40S GPUs, at most 30% of GPU-hours on spot: 6 committed, the other 2 on spot (25%) every hour
    assert {c.instance_type: c.count for c in plan.commitments} == {"g6e.xlarge": 6, "g5.xlarge": 8}
    rework = C.rework_fraction("<5%", CONFIG.checkpoint_interval_hours, CONFIG.restart_overhead_hours)
    assert plan.expected.spot_usd == pytest.approx(2 * 24 * 0.8 * (1 + rework), rel=1e-6)


def test_spot_rework_follows_the_checkpoint_interval_of_the_classes_on_each_model(throughput):
    # 8 L40S GPUs checkpoint hourly (the plan default), 4 every 4 hours: the MILP's L40S spot rework uses
    # their GPU-hour-weighted interval (8 x 1 + 4 x 4) / 12 = 2 h (rework is linear in the interval).
    demand = usage({("a", A100): FLAT, ("b", A100): [5.0] * 24})
    routing = R.route(demand, workloads({"a": "train40", "b": "slow-ckpt"}), tiny_catalog(), CONFIG,
                      throughput=throughput)
    assert set(routing.table[R.GPU_MODEL]) == {L40S}
    assert dict(routing.checkpoint_by_model) == {L40S: pytest.approx(2.0)}
    config = routing.plan_config(CONFIG)
    spot = offers_for(tiny_catalog(), L40S, config).spot
    assert spot["rework_fraction"] == pytest.approx(C.rework_fraction("<5%", 2.0, CONFIG.restart_overhead_hours))
    assert spot["rework_fraction"] > C.rework_fraction("<5%", 1.0, CONFIG.restart_overhead_hours)
