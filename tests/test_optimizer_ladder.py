"""Owned commitments, laddered purchases by month, every purchase option, break-even and the summary.

Expected numbers are worked out by hand in the comments (one 1-GPU type: on-demand 1.00 USD/h,
reserved 0.60 USD/h; January has 744 hours, February 672).
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.existing import load_existing
from optimizer.inputs import PlanConfig
from optimizer.plan import Commitment, Plan
from optimizer.problem import coverage, period_starts
from optimizer.solve import make_plan
from optimizer.summary import commitments_table, summary, upfront_by_month
from tests.helpers import START, flat_forecast, make_catalog
from usage import schema as S

BASIC = [
    {"instance_type": "x.1", "purchase_option": "on_demand", "price": 1.0},
    {"instance_type": "x.1", "purchase_option": "reserved_1y_no_upfront", "price": 0.6},
    {"instance_type": "x.1", "purchase_option": "spot", "price": 0.3},
]
JAN, FEB = 744, 672


def config(hours: int, **kw) -> PlanConfig:
    kw.setdefault("options", ("reserved_1y_no_upfront",))
    kw.setdefault("allow_spot", False)
    return PlanConfig(start=START, hours=hours, **kw)


def owned(count: int, end: str | None = None, start: str = "2025-06-01") -> Commitment:
    return Commitment("x.1", "reserved_1y_no_upfront", count, pd.Timestamp(start), 0.6, 0.0, "NVIDIA A100", 1.0,
                      8760, end=None if end is None else pd.Timestamp(end), existing=True)


def test_owning_n_instances_reduces_the_purchase_by_n_on_flat_demand():
    # 10 GPUs flat; 4 owned for the whole window -> buy 6. Cost: all 10 at 0.60 USD/h x 100 h = 600 USD,
    # of which 240 USD is the owned (sunk) commitments.
    result = make_plan(flat_forecast([10.0] * 100), make_catalog(BASIC), config(100, existing=(owned(4),)))
    bought = [c for c in result.plan.commitments if not c.existing]
    assert [c.count for c in bought] == [6]
    assert [c.count for c in result.plan.commitments if c.existing] == [4]
    assert result.plan.expected.total_usd == pytest.approx(600.0)
    assert result.plan.expected.upfront_usd == 0.0
    assert commitments_table(result.plan)["existing"].tolist() == [True, False]


def test_owned_commitments_serve_only_their_active_hours_and_laddering_replaces_them():
    # 10 owned until 1 February; demand 10 flat in January and February. Laddered: buy 10 from 1 February.
    # Cost: 10 x 0.6 x 744 (owned, January) + 10 x 0.6 x 672 (new, February) = 4,464 + 4,032 = 8,496 USD.
    hours = JAN + FEB
    plan = make_plan(flat_forecast([10.0] * hours), make_catalog(BASIC),
                     config(hours, ladder=True, existing=(owned(10, end="2026-02-01"),))).plan
    bought = [c for c in plan.commitments if not c.existing]
    assert [(c.count, c.start) for c in bought] == [(10, pd.Timestamp("2026-02-01"))]
    assert plan.expected.total_usd == pytest.approx(8496.0)
    assert plan.expected.commitment_utilization == pytest.approx(1.0)


def test_laddering_buys_a_step_up_in_the_month_it_happens():
    # 5 GPUs in January, 10 in February. Laddered: 5 from January + 5 from February:
    # 5 x 0.6 x 1416 + 5 x 0.6 x 672 = 4,248 + 2,016 = 6,264 USD. Without laddering the extra 5 GPUs are busy
    # 672/1416 = 47% of the window, under the 60% break-even, so they stay on-demand: 4,248 + 3,360 = 7,608 USD.
    hours = JAN + FEB
    demand = np.r_[np.full(JAN, 5.0), np.full(FEB, 10.0)]
    laddered = make_plan(flat_forecast(demand), make_catalog(BASIC), config(hours, ladder=True)).plan
    assert [(c.count, c.start) for c in laddered.commitments] == [(5, pd.Timestamp("2026-01-01")),
                                                                 (5, pd.Timestamp("2026-02-01"))]
    assert laddered.expected.total_usd == pytest.approx(6264.0)
    single = make_plan(flat_forecast(demand), make_catalog(BASIC), config(hours)).plan
    assert [(c.count, c.start) for c in single.commitments] == [(5, START)]
    assert single.expected.total_usd == pytest.approx(7608.0)
    doc = json.loads(laddered.to_json())
    assert [c["start"] for c in doc["commitments"]] == ["2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"]
    assert Plan.from_dict(doc).commitments == laddered.commitments


def test_old_plan_files_without_the_new_fields_still_load():
    doc = {"schema": "gpuplan.plan/v1", "window": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
           "region": "us-east-1",
           "commitments": [{"instance_type": "x.1", "purchase_option": "reserved_1y_no_upfront", "count": 2,
                            "start": "2026-01-01T00:00:00Z", "hourly_usd_per_instance": 0.6,
                            "upfront_usd_per_instance": 0.0, "gpu_model": "NVIDIA A100", "gpus_per_instance": 1,
                            "term_hours": 8760}],
           "spot": [], "on_demand": [{"gpu_model": "NVIDIA A100", "instance_type": "x.1", "usd_per_gpu_hour": 1.0}],
           "expected": {"total_usd": 28.8, "committed_usd": 28.8, "spot_usd": 0, "on_demand_usd": 0,
                        "all_on_demand_usd": 48}}
    plan = Plan.from_dict(doc)
    assert plan.commitments[0].end is None and not plan.commitments[0].existing
    assert plan.expected.cvar90_usd is None and plan.expected.break_even_month is None
    assert "Break-even" not in summary(plan)


def test_periods_are_calendar_months_and_a_commitment_serves_only_within_its_term():
    hours = pd.date_range("2026-01-15", periods=24 * 60, freq="h")
    edges = period_starts(hours, ladder=True)
    assert edges.tolist() == [0, 17 * 24, (17 + 28) * 24, 60 * 24]
    assert period_starts(hours, ladder=False).tolist() == [0, 60 * 24]
    cover = coverage(edges, np.array([8760.0, 45 * 24.0, 44 * 24.0]))
    assert cover[0].tolist() == [[True, True, True], [False, True, True], [False, False, True]]
    # a 45-day term bought on 15 January lasts to the end of February: it serves January and February only;
    # a 44-day term ends inside February, so it serves January only (periods are served whole)
    assert cover[1, 0].tolist() == [True, True, False]
    assert cover[2, 0].tolist() == [True, False, False]


def test_every_option_is_considered_and_all_upfront_cash_and_break_even_are_reported():
    # All upfront: 4,380 USD per instance (0.50 USD/h effective over 8,760 h), no recurring fee; no upfront
    # at 0.60 USD/h. A year of 10 GPUs flat buys 10 all-upfront (cheaper effective rate) in January.
    # Cash savings vs on-demand: 10 USD/h from hour 0 against 43,800 USD paid upfront; they turn positive after
    # 4,380 h, in July (January-June have 4,344 hours).
    rows = BASIC + [{"instance_type": "x.1", "purchase_option": "reserved_1y_all_upfront", "price": 0.5,
                     "upfront": 0.5 * 8760}]
    options = ("reserved_1y_no_upfront", "reserved_1y_all_upfront")
    plan = make_plan(flat_forecast([10.0] * 8760), make_catalog(rows), config(8760, ladder=True, options=options)).plan
    assert [(c.count, c.purchase_option, c.start) for c in plan.commitments] == \
        [(10, "reserved_1y_all_upfront", START)]
    assert plan.expected.upfront_usd == pytest.approx(43800.0)
    assert plan.expected.total_usd == pytest.approx(43800.0)
    assert plan.expected.break_even_month == "2026-07"
    text = summary(plan)
    assert "Break-even: cumulative cash savings vs all on-demand turn positive in 2026-07" in text
    assert "Upfront cash at purchase: 43,800 USD" in text


def test_summary_says_what_to_buy_when_with_upfront_by_month_and_the_range():
    rows = BASIC + [{"instance_type": "x.1", "purchase_option": "reserved_1y_partial_upfront", "price": 0.55,
                     "upfront": 0.25 * 8760}]
    demand = np.r_[np.full(JAN, 5.0), np.full(FEB, 10.0)]
    plan = make_plan(flat_forecast(demand, p10=demand * 0.9, p90=demand * 1.1), make_catalog(rows),
                     config(JAN + FEB, ladder=True, options=("reserved_1y_partial_upfront",))).plan
    # 45% discount. January: the 5th GPU is busy all of January in p50/p90 and half of it in p10 (4.5 GPUs), and
    # all of February: 0.85 > 0.55 of its hours -> 5 from January. February (9/10/11 GPUs): GPUs 6-9 always
    # busy, the 10th in p50 and p90 (0.7 > 0.55), the 11th only in p90 (0.3) -> 5 more from February.
    assert upfront_by_month(plan) == {"2026-01": pytest.approx(5 * 2190.0), "2026-02": pytest.approx(5 * 2190.0)}
    text = summary(plan)
    assert "5 x x.1 reserved_1y_partial_upfront from 2026-01-01" in text
    assert "5 x x.1 reserved_1y_partial_upfront from 2026-02-01" in text
    assert "by month: 2026-01 10,950 USD, 2026-02 10,950 USD" in text
    assert "(p10 " in text and "CVaR90" in text


def test_existing_commitments_file_csv_and_yaml(tmp_path):
    from optimizer.catalog import load_catalog

    cat = load_catalog()
    csv = tmp_path / "owned.csv"
    csv.write_text("instance_type,option,count,start,expiry\n"
                   "p4d.24xlarge,reserved_1y_no_upfront,2,2025-06-01,2026-06-01\n")
    (c,) = load_existing(csv, cat, "us-east-1")
    assert (c.count, c.gpu_model, c.gpus, c.existing) == (2, "NVIDIA A100", 16.0, True)
    assert c.end == pd.Timestamp("2026-06-01")
    row = cat.offers("us-east-1", instance_types=("p4d.24xlarge",), options=("reserved_1y_no_upfront",)).iloc[0]
    assert c.effective_hourly_usd == pytest.approx(row["effective_hourly_usd"])
    yml = tmp_path / "owned.yaml"
    yml.write_text("commitments:\n  - {instance_type: p5.48xlarge, option: convertible_1y_all_upfront, count: 1,"
                   " start: 2025-12-01, expiry: 2026-12-01}\n")
    (y,) = load_existing(yml, cat, "us-east-1")
    assert y.upfront_usd_per_instance > 0 and y.gpu_model == "NVIDIA H100"


def test_owned_savings_plans_in_the_existing_file(tmp_path):
    from optimizer.catalog import load_catalog
    from optimizer.savings_plans import savings_plan_commitment

    cat = load_catalog()
    csv = tmp_path / "owned.csv"
    csv.write_text("instance_type,option,count,start,expiry,commitment_usd_per_hour,instance_family\n"
                   "p4d.24xlarge,reserved_1y_no_upfront,2,2025-06-01,2026-06-01,,\n"
                   ",compute_sp_1y_no_upfront,,2025-06-01,2026-06-01,10,\n"
                   ",ec2_instance_sp_3y_all_upfront,,2025-06-01,2028-06-01,4.5,p5\n")
    ri, compute, p5 = load_existing(csv, cat, "us-east-1")
    assert not ri.is_savings_plan and ri.count == 2
    # the same lines as the catalog builds them: the rates its dollars buy per GPU model, the upfront of its payment
    assert compute == savings_plan_commitment(cat, "us-east-1", "compute_sp_1y_no_upfront", 10.0,
                                              pd.Timestamp("2025-06-01"), pd.Timestamp("2026-06-01"))
    assert p5 == savings_plan_commitment(cat, "us-east-1", "ec2_instance_sp_3y_all_upfront", 4.5,
                                         pd.Timestamp("2025-06-01"), pd.Timestamp("2028-06-01"), family="p5")
    assert (compute.existing, compute.commitment_usd_per_hour, compute.expiry) == (True, 10.0,
                                                                                   pd.Timestamp("2026-06-01"))
    assert [r.gpu_model for r in p5.sp_rates] == ["NVIDIA H100"]
    assert p5.upfront_usd_per_instance == pytest.approx(4.5 * 26280)     # all upfront: the whole term paid at once
    # a file of savings plans only needs no instance_type or count column; YAML the same keys
    only = tmp_path / "sp.csv"
    only.write_text("option,commitment_usd_per_hour,start,expiry\ncompute_sp_1y_no_upfront,10,2025-06-01,2026-06-01\n")
    assert load_existing(only, cat, "us-east-1") == (compute,)
    yml = tmp_path / "owned.yaml"
    yml.write_text("commitments:\n  - {option: ec2_instance_sp_3y_all_upfront, commitment_usd_per_hour: 4.5,"
                   " instance_family: p5, start: 2025-06-01, expiry: 2028-06-01}\n")
    assert load_existing(yml, cat, "us-east-1") == (p5,)


@pytest.mark.parametrize("body, match", [
    ("instance_type,option,count,start\n", "owned.csv, row 1, column 'expiry': missing column"),
    ("instance_type,option,count,start,expiry\nzz.1,reserved_1y_no_upfront,1,2025-01-01,2026-01-01\n",
     "owned.csv, row 2, column 'instance_type': instance type 'zz.1' is not in the catalog"),
    ("instance_type,option,count,start,expiry\np4d.24xlarge,reserved_2y,1,2025-01-01,2026-01-01\n",
     "row 2, column 'option': unknown purchase option 'reserved_2y' (fix: use one of"),
    ("instance_type,option,count,start,expiry\np4d.24xlarge,reserved_1y_no_upfront,1.5,2025-01-01,2026-01-01\n",
     "row 2, column 'count': count '1.5' is not a whole number"),
    ("instance_type,option,count,start,expiry\np4d.24xlarge,reserved_1y_no_upfront,1,soon,2026-01-01\n",
     "row 2, column 'start': 'soon' is not a date"),
    ("instance_type,option,count,start,expiry\np4d.24xlarge,reserved_1y_no_upfront,1,2026-01-01,2025-01-01\n",
     "row 2, column 'expiry': expiry 2025-01-01 00:00 is not after start"),
    ("option,commitment_usd_per_hour,start\n", "row 1, column 'expiry': missing column"),
    ("instance_type,option,count,start,expiry\n,compute_sp_1y_no_upfront,,2025-01-01,2026-01-01\n",
     "row 2, column 'commitment_usd_per_hour': missing value"),
    ("option,commitment_usd_per_hour,start,expiry\ncompute_sp_1y_no_upfront,-3,2025-01-01,2026-01-01\n",
     "row 2, column 'commitment_usd_per_hour': commitment_usd_per_hour '-3' is not a positive number"),
    ("instance_type,option,count,start,expiry,commitment_usd_per_hour\n"
     "p5.48xlarge,compute_sp_1y_no_upfront,,2025-01-01,2026-01-01,10\n",
     "row 2, column 'instance_type': a savings plan (compute_sp_1y_no_upfront) covers no single instance type"),
    ("instance_type,option,count,start,expiry,commitment_usd_per_hour\n"
     ",compute_sp_1y_no_upfront,3,2025-01-01,2026-01-01,10\n",
     "row 2, column 'count': a savings plan (compute_sp_1y_no_upfront) is not counted in instances"),
    ("option,commitment_usd_per_hour,start,expiry\nec2_instance_sp_1y_no_upfront,10,2025-01-01,2026-01-01\n",
     "row 2, column 'instance_family': ec2_instance_sp_1y_no_upfront needs the instance family"),
    ("option,commitment_usd_per_hour,start,expiry,instance_family\n"
     "ec2_instance_sp_1y_no_upfront,10,2025-01-01,2026-01-01,zz9\n",
     "row 2, column 'instance_family': the catalog has no ec2_instance_sp_1y_no_upfront rate for family zz9"),
])
def test_bad_existing_commitment_files_are_one_line_errors(tmp_path, body, match):
    from optimizer.catalog import load_catalog

    path = tmp_path / "owned.csv"
    path.write_text(body)
    with pytest.raises(S.UsageError) as err:
        load_existing(path, load_catalog(), "us-east-1")
    assert match in str(err.value) and "\n" not in str(err.value) and "fix:" in str(err.value)


def test_cli_plan_with_existing_commitments_and_laddering(tmp_path):
    from typer.testing import CliRunner

    from app.cli import app
    from tests.test_cli import HELIOS

    owned_file = tmp_path / "owned.csv"
    owned_file.write_text("instance_type,option,count,start,expiry\n"
                          "p3dn.24xlarge,reserved_1y_no_upfront,1,2020-01-01,2021-01-01\n")
    out = tmp_path / "plan.json"
    r = CliRunner().invoke(app, ["plan", "--usage", str(HELIOS), "--start", "2020-05-24T16:00Z", "--hours", "48",
                                 "--out", str(out), "--existing", str(owned_file), "--ladder", "--cvar-weight", "0.5"])
    assert r.exit_code == 0, r.output
    assert "Already owned" in r.output and "1 x p3dn.24xlarge reserved_1y_no_upfront until 2021-01-01" in r.output
    doc = json.loads(out.read_text())
    assert [c["existing"] for c in doc["commitments"]].count(True) == 1
    assert doc["assumptions"]["ladder"] is True and doc["assumptions"]["risk"]["cvar_weight"] == 0.5
    assert doc["expected"]["cvar90_usd"] >= doc["expected"]["total_usd"] - 1e-6
    bad = tmp_path / "bad.csv"
    bad.write_text("instance_type,option,count,start,expiry\np3dn.24xlarge,reserved_1y_no_upfront,0,2020-01-01,2021\n")
    r = CliRunner().invoke(app, ["plan", "--usage", str(HELIOS), "--start", "2020-05-24T16:00Z", "--hours", "48",
                                 "--out", str(out), "--existing", str(bad)])
    assert r.exit_code == 2 and "bad.csv, row 2, column 'count'" in r.output



def test_cli_plan_with_an_owned_savings_plan(tmp_path):
    # Helios (V100) with a Compute SP of 200 USD/h owned until 2021-01-01: the plan uses it first and buys fewer
    # reserved p3dn.24xlarge (8 V100 each) than without it, but never drops more GPUs than the plan's dollars cover
    # at its V100 rate (200 / 2.76 = 72 GPUs): it expires 7 months into the RIs' 1-year term.
    from typer.testing import CliRunner

    from app.cli import app
    from tests.test_cli import HELIOS

    owned_file = tmp_path / "owned.csv"
    owned_file.write_text("option,commitment_usd_per_hour,start,expiry\n"
                          "compute_sp_1y_no_upfront,200,2020-01-01,2021-01-01\n")
    args = ["plan", "--usage", str(HELIOS), "--start", "2020-05-24T16:00Z", "--hours", "48",
            "--options", "compute_sp_1y_no_upfront,reserved_1y_no_upfront"]
    docs, text = {}, {}
    for name, extra in (("with", ["--existing", str(owned_file)]), ("without", [])):
        r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / f"{name}.json"), *extra])
        assert r.exit_code == 0, r.output
        docs[name], text[name] = json.loads((tmp_path / f"{name}.json").read_text()), r.output
    assert "Already owned" in text["with"] and "Already owned" not in text["without"]
    assert "compute_sp_1y_no_upfront savings plan of 200.00 USD/h until 2021-01-01 (any GPU" in text["with"]
    (sp,) = [c for c in docs["with"]["commitments"] if c["existing"]]
    assert (sp["purchase_option"], sp["commitment_usd_per_hour"], sp["end"]) == ("compute_sp_1y_no_upfront", 200.0,
                                                                                  "2021-01-01T00:00:00Z")

    def ri_gpus(doc: dict) -> float:
        return sum(c["count"] * c["gpus_per_instance"] for c in doc["commitments"]
                   if not c["existing"] and c["purchase_option"] == "reserved_1y_no_upfront")

    v100 = next(r["usd_per_gpu_hour"] for r in sp["sp_rates"] if r["gpu_model"] == "NVIDIA Tesla V100")
    assert 0 < ri_gpus(docs["without"]) - ri_gpus(docs["with"]) <= 200 / v100
    assert not any(c["purchase_option"] == "compute_sp_1y_no_upfront" and not c["existing"]
                   for c in docs["with"]["commitments"])

month_demand = st.lists(st.floats(min_value=0, max_value=30, allow_nan=False), min_size=3, max_size=3)


def _monthly(levels: list[float], noise: np.ndarray) -> np.ndarray:
    # three periods: 31 Jan .. 2 Mar from 2026-01-30 (2 + 28 + 2 days); hourly levels plus bounded noise
    sizes = (48, 672, 48)
    return np.concatenate([np.full(n, lv) for n, lv in zip(sizes, levels, strict=True)]) + noise


@settings(max_examples=15, deadline=None)
@given(levels=month_demand, owned_count=st.integers(0, 8), share=st.floats(0, 1), seed=st.integers(0, 99))
def test_laddered_plans_serve_every_scenario(levels, owned_count, share, seed):
    noise = np.random.default_rng(seed).uniform(0, 3, 768)
    d = _monthly(levels, noise)
    ts = pd.Timestamp("2026-01-30")
    fc = flat_forecast(d, p10=d * 0.8, p90=d * 1.2).assign(**{S.TIMESTAMP: pd.date_range(ts, periods=768, freq="h")})
    cfg = PlanConfig(start=ts, hours=768, options=("reserved_1y_no_upfront",), ladder=True, max_spot_share=share,
                     existing=(owned(owned_count, end="2026-02-10"),) if owned_count else ())
    result = make_plan(fc, make_catalog(BASIC), cfg)
    for costs in result.scenario_costs.values():
        served = costs["committed_used_gpus"] + costs["spot_gpus"] + costs["on_demand_gpus"]
        assert served == pytest.approx(costs["demand_gpus"], abs=1e-6)
        assert costs["spot_gpus"] <= share * costs["demand_gpus"] + 1e-6


@settings(max_examples=15, deadline=None)
@given(levels=month_demand, extra=st.floats(min_value=0.01, max_value=20), hour=st.integers(0, 767))
def test_laddered_cost_never_falls_when_demand_rises(levels, extra, hour):
    d = _monthly(levels, np.zeros(768))
    more = d.copy()
    more[hour] += extra
    ts = pd.Timestamp("2026-01-30")
    cfg = PlanConfig(start=ts, hours=768, options=("reserved_1y_no_upfront",), ladder=True, allow_spot=False,
                     duration_bins=None)

    def cost(x: np.ndarray) -> float:
        fc = flat_forecast(x).assign(**{S.TIMESTAMP: pd.date_range(ts, periods=768, freq="h")})
        return make_plan(fc, make_catalog(BASIC), cfg).plan.expected.total_usd

    assert cost(more) >= cost(d) - 1e-6


def test_scale_benchmark_data_plans_laddered_and_binning_bills_like_every_hour():
    # The benchmark's generator at a small size: 12 teams, 3 scenarios, January-February, 4 instance types.
    from benchmarks.plan_scale import START as BENCH_START
    from benchmarks.plan_scale import synthetic_scenarios
    from optimizer.catalog import load_catalog

    cat = load_catalog()
    types = ("p4d.24xlarge", "p5.48xlarge", "g6.xlarge", "g6.12xlarge")
    models = sorted(cat.offers("us-east-1", instance_types=types)["gpu_model"].unique())
    sc = synthetic_scenarios(models, teams=12, n_scenarios=3, hours=JAN + FEB, seed=1)
    assert all(sc.demand[g].shape == (3, JAN + FEB) and (sc.demand[g] >= 0).all() for g in models)
    base = PlanConfig(start=BENCH_START, hours=JAN + FEB, instance_types=types, ladder=True, allow_spot=False)
    binned = make_plan(None, cat, base, scenarios=sc)
    exact = make_plan(None, cat, replace(base, duration_bins=None), scenarios=sc)
    assert binned.build_seconds > 0 and binned.solve_seconds > 0
    for costs in binned.scenario_costs.values():
        served = costs["committed_used_gpus"] + costs["spot_gpus"] + costs["on_demand_gpus"]
        assert served == pytest.approx(costs["demand_gpus"])
    # bin means relax the hourly model (lower bound), and the binned plan bills within 0.5% of the hourly one
    assert binned.lp_objective_usd <= exact.lp_objective_usd * (1 + 2e-4)
    assert binned.plan.expected.total_usd == pytest.approx(exact.plan.expected.total_usd, rel=5e-3)


def test_break_even_after_a_short_window_is_projected_at_the_window_saving_rate():
    # The same year-long all-upfront purchase decided on a 31-day window (January, 744 h): on-demand would cost
    # 1.00 USD/h per GPU, so 10 GPUs save 10 USD/h before the 43,800 USD upfront. After January the cash
    # position is -43,800 + 7,440 = -36,360 USD; at 10 USD/h that takes 3,636 more hours: 4,380 h from
    # 1 January, i.e. 2 July -> "2026-07", flagged as projected.
    rows = BASIC + [{"instance_type": "x.1", "purchase_option": "reserved_1y_all_upfront", "price": 0.5,
                     "upfront": 0.5 * 8760}]
    options = ("reserved_1y_no_upfront", "reserved_1y_all_upfront")
    plan = make_plan(flat_forecast([10.0] * 744), make_catalog(rows), config(744, options=options)).plan
    assert [(c.count, c.purchase_option) for c in plan.commitments] == [(10, "reserved_1y_all_upfront")]
    assert plan.expected.break_even_month == "2026-07"
    assert plan.expected.break_even_projected
    assert "2026-07 (projected" in summary(plan)
    assert Plan.from_dict(plan.to_dict()).expected.break_even_projected
    # at an on-demand price below the committed rate nothing is bought and there is no break-even to report
    cheap = [{**r, "price": 0.4} if r["purchase_option"] == "on_demand" else r for r in rows]
    flat = make_plan(flat_forecast([10.0] * 744), make_catalog(cheap), config(744, options=options)).plan
    assert flat.commitments == () and flat.expected.break_even_month is None
