"""Chargeback: a hand-checked two-team bill, the unused-commitment policies, untagged usage, idle cost, and a
hypothesis property test that the allocation reconciles with optimizer.billing.bill to the cent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.samples import load_sample
from operate.chargeback import COLUMNS, allocate, apportion_cents
from optimizer.billing import BillingError, bill
from optimizer.plan import Commitment, Expected, OnDemandRate, Plan, SpotAllowance
from usage import schema as S

A100 = "NVIDIA A100"
L4 = "NVIDIA L4"
START = pd.Timestamp("2026-01-01")


def make_plan(hours: int, commitments=(), spot=(), od: dict[str, float] | None = None) -> Plan:
    od = od or {A100: 3.0}
    return Plan(window_start=START, window_end=START + pd.Timedelta(hours=hours), region="us-east-1",
                commitments=tuple(commitments), spot=tuple(spot),
                on_demand=tuple(OnDemandRate(g, "x", r) for g, r in od.items()),
                expected=Expected(0.0, 0.0, 0.0, 0.0, 0.0))


def commitment(gpus: int, usd_per_hour: float, gpu_model: str = A100, upfront: float = 0.0) -> Commitment:
    # one instance with `gpus` GPUs; recurring + upfront/term = usd_per_hour
    return Commitment("inst", "reserved_1y_partial_upfront", 1, START, usd_per_hour - upfront / 8760, upfront,
                      gpu_model, float(gpus), 8760)


def usage(rows: list[tuple[int, str, float]], gpu_model: str = A100, util: list[float] | None = None) -> pd.DataFrame:
    df = pd.DataFrame({S.TIMESTAMP: [START + pd.Timedelta(hours=h) for h, _, _ in rows],
                       S.TEAM: [t for _, t, _ in rows], S.GPU_TYPE: gpu_model, S.GPUS: [g for _, _, g in rows]})
    if util is not None:
        df[S.UTILIZATION] = util
    return df


def hand_case():
    # 2 committed GPUs at 1 USD/GPU-h (half of it paid upfront), spot cap 1 GPU at 0.5 USD/GPU-h, on-demand 3 USD/GPU-h.
    plan = make_plan(2, [commitment(2, 2.0, upfront=8760.0)],
                     [SpotAllowance("spot-inst", 1, A100, 1.0, 0.5, 0.0)])
    # hour 0: a 2 + b 2 = 4 GPUs -> 2 committed (2 USD), 1 spot (0.5), 1 on-demand (3); hour 1: a 1 GPU -> 1 of 2 used.
    use = usage([(0, "a", 2.0), (0, "b", 2.0), (1, "a", 1.0)], util=[0.5, 1.0, 0.25])
    return plan, use


def row(table: pd.DataFrame, team: str) -> dict:
    return table.set_index("team").loc[team].to_dict()


def test_hand_checked_allocation_proportional():
    plan, use = hand_case()
    cb = allocate(use, plan, "proportional")
    assert list(cb.table.columns) == list(COLUMNS)
    a, b = row(cb.table, "a"), row(cb.table, "b")
    # a: committed 1 (hour 0) + 1 (hour 1); b: 1. Unused 1 USD (hour 1) split by committed GPU-hours 2:1.
    assert a == {"gpu_hours": 3.0, "committed_usd": 2.0, "spot_usd": 0.25, "on_demand_usd": 1.5,
                 "unused_commitment_usd": 0.67, "total_usd": 4.42}
    assert b == {"gpu_hours": 2.0, "committed_usd": 1.0, "spot_usd": 0.25, "on_demand_usd": 1.5,
                 "unused_commitment_usd": 0.33, "total_usd": 3.08}
    assert cb.table["total_usd"].sum() == pytest.approx(7.5) and bill(plan, use).total_usd == pytest.approx(7.5)
    assert "central" not in set(cb.table["team"])
    com = cb.commitment.set_index(S.GPU_TYPE).loc[A100]
    assert com["utilization"] == pytest.approx(3 / 4) and com["coverage"] == pytest.approx(3 / 5)


def test_hand_checked_allocation_central_and_idle_cost():
    plan, use = hand_case()
    cb = allocate(use, plan, "central")
    t = cb.table.set_index("team")
    assert t.loc["a", "unused_commitment_usd"] == 0 and t.loc["b", "unused_commitment_usd"] == 0
    assert t.loc["central"].to_dict() == {"gpu_hours": 0.0, "committed_usd": 0.0, "spot_usd": 0.0,
                                          "on_demand_usd": 0.0, "unused_commitment_usd": 1.0, "total_usd": 1.0}
    assert list(cb.table["team"])[-1] == "central"
    idle = cb.idle.set_index("team")
    # a: hour 0 costs 2.75 at 50% util -> 1.375 idle; hour 1 costs 1.0 at 25% -> 0.75 idle. b fully utilised.
    assert idle.loc["a", "idle_usd"] == pytest.approx(1.375 + 0.75)
    assert idle.loc["a", "idle_gpu_hours"] == pytest.approx(1.0 + 0.75)
    assert idle.loc["b", "idle_usd"] == pytest.approx(0.0)


def test_untagged_usage_has_its_own_line_and_idle_unavailable_without_utilization():
    plan = make_plan(1)
    use = usage([(0, "a", 1.0), (0, S.UNALLOCATED_TEAM, 2.0), (0, "z", 3.0)])
    cb = allocate(use, plan)
    assert list(cb.table["team"]) == ["z", "a", S.UNALLOCATED_TEAM]
    assert row(cb.table, S.UNALLOCATED_TEAM)["on_demand_usd"] == 6.0
    assert cb.idle.empty and any("idle GPU cost is unavailable" in n for n in cb.notes)


def test_unused_commitment_of_an_unused_gpu_model_goes_to_central():
    plan = make_plan(3, [commitment(4, 4.0, gpu_model=L4)], od={A100: 3.0, L4: 1.0})
    cb = allocate(usage([(0, "a", 1.0)]), plan, "proportional")
    assert row(cb.table, "central")["unused_commitment_usd"] == 12.0
    assert any("nobody used the NVIDIA L4" in n for n in cb.notes)


def test_usage_outside_the_window_is_ignored_and_unknown_model_fails():
    plan = make_plan(2)
    cb = allocate(usage([(0, "a", 1.0), (5, "a", 100.0)]), plan)
    assert row(cb.table, "a")["gpu_hours"] == 1.0 and cb.table["total_usd"].sum() == 3.0
    with pytest.raises(BillingError, match="no on-demand rate for 'NVIDIA L4'"):
        allocate(usage([(0, "a", 1.0)], gpu_model=L4), plan)
    with pytest.raises(ValueError, match="unknown unused-commitment policy"):
        allocate(usage([(0, "a", 1.0)]), plan, "everyone")


@given(st.lists(st.floats(0, 1000, allow_nan=False), min_size=1, max_size=30), st.integers(-3, 3))
def test_apportion_cents_hits_the_target_and_stays_close(values, jitter):
    target = int(round(sum(values) * 100)) + (jitter if sum(values) > 1 else 0)
    cents = apportion_cents(np.array(values), max(target, 0))
    assert cents.sum() == max(target, 0)
    assert (cents >= 0).all()
    assert np.all(np.abs(cents - np.array(values) * 100) <= 1 + abs(jitter) + 1e-6)


money = st.floats(0.01, 80.0, allow_nan=False)


@st.composite
def random_bill(draw):
    hours = draw(st.integers(1, 30))
    teams = draw(st.lists(st.sampled_from(["a", "b", "c", "d", S.UNALLOCATED_TEAM]), min_size=1, max_size=5,
                          unique=True))
    models = draw(st.lists(st.sampled_from([A100, L4]), min_size=1, max_size=2, unique=True))
    commitments, spots = [], []
    for g in models:
        for _ in range(draw(st.integers(0, 2))):
            gpus = draw(st.sampled_from([1, 4, 8]))
            c = Commitment("inst", "reserved_1y_all_upfront", draw(st.integers(1, 3)),
                           START + pd.Timedelta(hours=draw(st.integers(0, hours))), draw(money), draw(money) * 100,
                           g, float(gpus), draw(st.sampled_from([8760, 5, 12])))
            commitments.append(c)
        if draw(st.booleans()):
            spots.append(SpotAllowance("spot", draw(st.integers(1, 4)), g, float(draw(st.sampled_from([1, 8]))),
                                       draw(money), draw(st.floats(0, 0.3))))
    od = {g: draw(money) for g in models}
    rows = []
    for h in range(hours):
        for t in teams:
            for g in models:
                if draw(st.booleans()):
                    rows.append({S.TIMESTAMP: START + pd.Timedelta(hours=h), S.TEAM: t, S.GPU_TYPE: g,
                                 S.GPUS: draw(st.floats(0, 40, allow_nan=False)),
                                 S.UTILIZATION: draw(st.one_of(st.none(), st.floats(0, 1)))})
    use = pd.DataFrame(rows, columns=[S.TIMESTAMP, S.TEAM, S.GPU_TYPE, S.GPUS, S.UTILIZATION])
    use[S.UTILIZATION] = use[S.UTILIZATION].astype(float)
    plan = make_plan(hours, commitments, spots, od)
    return plan, use, draw(st.sampled_from(["proportional", "central"]))


@settings(max_examples=100, deadline=None)
@given(random_bill())
def test_chargeback_reconciles_with_the_bill_to_the_cent(case):
    plan, use, policy = case
    cb = allocate(use, plan, policy)
    totals = bill(plan, use).totals()
    t = cb.table
    cents = {c: int(round(t[c].sum() * 100)) for c in ("committed_usd", "unused_commitment_usd", "spot_usd",
                                                        "on_demand_usd", "total_usd")}
    assert cents["committed_usd"] + cents["unused_commitment_usd"] == round(totals["committed_usd"] * 100)
    assert cents["spot_usd"] == round(totals["spot_usd"] * 100)
    assert cents["on_demand_usd"] == round(totals["on_demand_usd"] * 100)
    assert cents["total_usd"] == sum(cents[c] for c in ("committed_usd", "unused_commitment_usd", "spot_usd",
                                                        "on_demand_usd"))
    assert abs(t["total_usd"].sum() - totals["total_usd"]) <= 0.015 + 1e-9
    # every row's total is its columns, nothing negative, GPU-hours are the usage's
    assert np.allclose(t["total_usd"], t[["committed_usd", "spot_usd", "on_demand_usd",
                                          "unused_commitment_usd"]].sum(axis=1))
    assert (t[["committed_usd", "spot_usd", "on_demand_usd", "unused_commitment_usd"]] >= 0).all().all()
    assert t["gpu_hours"].sum() == pytest.approx(use[S.GPUS].sum(), abs=1e-2)
    if policy == "central":
        assert (t.loc[t["team"] != "central", "unused_commitment_usd"] == 0).all()


def test_sample_organisation_november_chargeback_equals_the_bill():
    plan = Plan.read("data_samples/operate/plan_2025-11.json")
    use = load_sample("synthetic")
    for policy in ("proportional", "central"):
        cb = allocate(use, plan, policy)
        rec = cb.reconciliation()
        assert rec["allocated_total_usd"] == rec["bill_total_usd"] > 1_000_000
        assert rec["allocated_spot_usd"] == rec["bill_spot_usd"]
        assert len(cb.table) == use[S.TEAM].nunique() + (policy == "central")
    assert cb.table.iloc[0]["team"] == "llm-pretrain"  # the largest H100 user
    assert not cb.idle.empty and cb.idle["idle_usd"].sum() > 0


def test_billing_periods_inside_the_window_add_up_to_the_window_bill():
    # A 4-hour window split into hours [0, 2) and [2, 4); 2 GPUs every hour, 1 committed (1 USD/h). Spot (cap
    # 1 GPU, 0.5 USD/GPU-h) would serve 4 GPU-hours but is limited to 25% of the window's 8 GPU-hours, so the
    # serving rule scales it to 0.5 GPU in every hour (spot 4 x 0.5 x 0.5 = 1 USD, on-demand 4 x 0.5 x 3 = 6
    # USD over the window); each half gets half of it, and the halves add up to the window.
    spot = SpotAllowance("spot-inst", 1, A100, 1.0, 0.5, 0.0, max_spot_share=0.25)
    plan = make_plan(4, [commitment(1, 1.0)], [spot])
    use = usage([(h, "a", 2.0) for h in range(4)])
    whole = allocate(use, plan, period=None).table.set_index("team")
    first = allocate(use, plan, period="2026-01-01T00:00/2026-01-01T02:00").table.set_index("team")
    second = allocate(use, plan, period="2026-01-01T02:00/2026-01-01T04:00").table.set_index("team")
    for half in (first, second):
        assert half.loc["a", "spot_usd"] == pytest.approx(0.5) and half.loc["a", "on_demand_usd"] == pytest.approx(3.0)
        assert half.loc["a", "gpu_hours"] == 4.0 and half.loc["a", "committed_usd"] == pytest.approx(2.0)
    for col in ("gpu_hours", "committed_usd", "spot_usd", "on_demand_usd", "total_usd"):
        assert first.loc["a", col] + second.loc["a", col] == pytest.approx(whole.loc["a", col])
    assert whole.loc["a", "total_usd"] == pytest.approx(4 * 1.0 + 1.0 + 6.0)
    # a calendar month clipped to the window is the whole window here
    assert allocate(use, plan, period="2026-01").table.equals(allocate(use, plan).table)
    with pytest.raises(ValueError, match="outside the plan window"):
        allocate(use, plan, period="2026-02")
    with pytest.raises(ValueError, match="not a month or a range"):
        allocate(use, plan, period="last week")
