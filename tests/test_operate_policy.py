"""Guardrails: idle-run shutdown recommendations with the money at stake, required tags, approvals, maximum
commitment on a plan, and malformed policy files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from operate.costing import Rates, priced
from operate.policy import IdleRule, Policy, check_plan, check_usage, idle_runs, load_policy
from optimizer.plan import Commitment, Expected, OnDemandRate, Plan, SpotAllowance
from usage import schema as S
from usage.schema import UsageError

A10G = "NVIDIA A10G"
RATES = Rates({A10G: 1.0}, "test")
T0 = pd.Timestamp("2025-11-01")


def usage(util: list[float | None], gpus: float = 4.0, team: str = "dev", project: str | None = "nb") -> pd.DataFrame:
    return pd.DataFrame({S.TIMESTAMP: pd.date_range(T0, periods=len(util), freq="h"), S.TEAM: team,
                         S.GPU_TYPE: A10G, S.GPUS: gpus, S.PROJECT: project,
                         S.UTILIZATION: np.array(util, dtype=float)})


def test_idle_runs_and_money_at_stake():
    # idle (<0.1) hours: 1-5 (a 5-hour run), 8-9 (2 hours: not longer than the 2-hour grace), 11 (NaN breaks runs)
    util = [0.5, 0.05, 0.0, 0.09, 0.02, 0.05, 0.5, 0.5, 0.05, 0.05, 0.5, None, 0.05]
    runs = idle_runs(priced(usage(util), RATES), IdleRule(0.1, 2))
    assert len(runs) == 1
    r = runs.iloc[0]
    assert r["start"] == T0 + pd.Timedelta(hours=1) and r["end"] == T0 + pd.Timedelta(hours=6) and r["hours"] == 5
    assert r["run_cost_usd"] == 20.0 and r["saving_usd"] == 12.0  # 4 GPUs x 1 USD; 3 hours after the grace
    report = check_usage(priced(usage(util), RATES), Policy(idle=IdleRule(0.1, 2)))
    (v,) = report.violations.to_dict("records")
    assert v["check"] == "idle_gpu" and v["usd"] == 12.0 and v["gpu_hours"] == 20.0
    assert "auto-shutdown after 2 h saves 12 USD" in v["message"]
    # only the listed teams are checked
    assert check_usage(priced(usage(util), RATES), Policy(idle=IdleRule(0.1, 2, ("other",)))).ok


def test_idle_check_without_utilization_says_so():
    use = usage([0.0] * 5).drop(columns=S.UTILIZATION)
    report = check_usage(priced(use, RATES), Policy(idle=IdleRule(0.1, 2)))
    assert report.ok and any("idle cost unavailable" in n for n in report.notes)


def test_required_tags_and_approvals_on_usage():
    use = pd.concat([usage([0.5] * 3), usage([0.5] * 2, team=S.UNALLOCATED_TEAM),
                     usage([0.5] * 4, team="ml", project=None)], ignore_index=True)
    use[S.INSTANCE_TYPE] = ["p5.48xlarge"] * 3 + ["g5.xlarge"] * 2 + ["p5.48xlarge"] * 4
    policy = Policy(required_tags=("team", "project"), approval_instance_types=("p5.48xlarge",),
                    approved=(("dev", "p5.48xlarge"),))
    v = check_usage(priced(use, RATES), policy).violations
    got = {(r["check"], r["scope"]): (r["gpu_hours"], r["usd"]) for r in v.to_dict("records")}
    assert got == {("required_tag", S.UNALLOCATED_TEAM): (8.0, 8.0), ("required_tag", "ml"): (16.0, 16.0),
                   ("approval", "ml"): (16.0, 16.0)}


def test_plan_checks_approval_and_maximum_commitment():
    c = Commitment("p5.48xlarge", "reserved_1y_all_upfront", 2, T0, 0.0, 87_600.0, "NVIDIA H100", 8.0, 8760)
    plan = Plan(T0, T0 + pd.Timedelta(hours=24), "us-east-1", (c,),
                (SpotAllowance("p4de.24xlarge", 3, "NVIDIA A100", 8.0, 10.0, 0.0),),
                (OnDemandRate("NVIDIA H100", "p5.48xlarge", 6.88),), Expected(0, 0, 0, 0, 0))
    policy = Policy(approval_instance_types=("p5.48xlarge", "p4de.24xlarge"), max_commitment_usd=100_000.0,
                    max_commitment_gpus=(("NVIDIA H100", 8.0),))
    v = check_plan(plan, policy).violations.to_dict("records")
    assert [(r["check"], r["scope"]) for r in v] == [("approval", "p5.48xlarge"), ("approval", "p4de.24xlarge"),
                                                     ("max_commitment", "all commitments"),
                                                     ("max_commitment", "NVIDIA H100")]
    assert v[2]["usd"] == 175_200.0 - 100_000.0  # obligation 2 x 87,600 USD upfront
    ok = Policy(approval_instance_types=("p5.48xlarge",), approved=((None, "p5.48xlarge"),),
                max_commitment_usd=175_200.0, max_commitment_gpus=(("NVIDIA H100", 16.0),))
    assert check_plan(plan, ok).ok


def test_shipped_policy_parses(tmp_path):
    p = load_policy("data_samples/operate/policy.yaml")
    assert p.required_tags == ("team", "project") and p.idle == IdleRule(0.2, 2, ("ml-platform", "data-science"), 30)
    assert (None, "p5.48xlarge") in p.approved and p.max_commitment_gpus == (("NVIDIA H100", 180.0),)


@pytest.mark.parametrize(("text", "match"), [
    ("required_tags: [team]\nidle_gpus:\n  for_hours: 2\n", r"p.yaml, line 2, column 'idle_gpus': unknown section"),
    ("idle_gpu:\n  utilization_below: 1.5\n  for_hours: 2\n",
     r"line 2, column 'idle_gpu.utilization_below': idle_gpu.utilization_below 1.5 must be a number between 0 and 1"),
    ("idle_gpu:\n  utilization_below: 0.1\n", r"column 'idle_gpu': idle_gpu needs for_hours"),
    ("idle_gpu:\n  utilization_below: 0.1\n  for_hours: 2.5\n", r"for_hours 2.5 is not whole hours"),
    ("idle_gpu:\n  utilization_below: 0.1\n  for_hours: 2\n  teams: [nobody]\n", r"unknown team 'nobody'"),
    ("max_commitment:\n  usd: -5\n", r"line 2, column 'max_commitment.usd': max_commitment.usd -5"),
    ("max_commitment:\n  dollars: 5\n", r"unknown key 'dollars' in max_commitment"),
    ("required_tags: team\n", r"'required_tags' must be a list of names"),
    ("approval_required:\n  approved:\n    - {team: dev}\n", r"approval 1 must have instance_type"),
    ("approval_required: [p5]\n", r"'approval_required' must be a mapping"),
    ("required_tags: [team\n", r"p.yaml: not valid YAML at line"),
    ("- a\n- b\n", r"expected a mapping of policy sections"),
])
def test_malformed_policies(tmp_path, text, match):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=match) as exc:
        load_policy(path, {"dev"})
    assert "\n" not in str(exc.value) and "fix:" in str(exc.value)
