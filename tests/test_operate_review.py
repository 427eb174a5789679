"""Review fixes in operate/: malformed plan.json and policy files end as one-line errors (exit 2), and a unit
whose first period has no GPU cost has no (infinite) trend."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli import app
from operate.costing import Rates, priced
from operate.files import read_plan
from operate.policy import load_policy
from operate.units import load_units, trends, unit_costs
from usage import schema as S
from usage.schema import UsageError

ROOT = Path(__file__).resolve().parents[1]
OPS = ROOT / "data_samples" / "operate"
runner = CliRunner()


def _usage(tmp_path: Path) -> Path:
    """Team a: 4 A100 GPUs every hour of November 2025 (2,880 GPU-hours)."""
    hours = pd.date_range("2025-11-01", "2025-12-01", freq="h", inclusive="left")
    path = tmp_path / "usage.csv"
    pd.DataFrame({S.TIMESTAMP: hours.strftime("%Y-%m-%dT%H:%M:%SZ"), S.TEAM: "a", S.GPU_TYPE: "NVIDIA A100",
                  S.GPUS: 4.0}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("text", ["[1, 2]", '"plan"', "3", '{"schema": "gpuplan.plan/v1", "window": [1]}'])
def test_plan_json_that_is_not_an_object_is_a_one_line_error(tmp_path, text):
    path = tmp_path / "plan.json"
    path.write_text(text)
    with pytest.raises(UsageError, match=r"plan\.json: not a gpuplan\.plan/v1 document .*fix: pass a plan\.json"):
        read_plan(path)


def test_chargeback_with_a_list_plan_exits_2_without_traceback(tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text("[]")
    r = runner.invoke(app, ["chargeback", "--usage", str(_usage(tmp_path)), "--plan", str(plan), "--out",
                            str(tmp_path / "cb.csv")])
    assert r.exit_code == 2, r.output
    assert isinstance(r.exception, SystemExit)
    assert "error: " in r.output and "not a gpuplan.plan/v1 document" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "cb.csv").exists()


@pytest.mark.parametrize(("text", "column"), [
    ("approval_required:\n  approved: 5\n", "approval_required.approved"),
    ("idle_gpu: {utilization_below: .nan, for_hours: 4}\n", "idle_gpu.utilization_below"),
    ("idle_gpu: {utilization_below: 0.1, for_hours: .nan}\n", "idle_gpu.for_hours"),
    ("idle_gpu: {utilization_below: 0.1, for_hours: .inf}\n", "idle_gpu.for_hours"),
    ("idle_gpu: {utilization_below: 0.1, for_hours: 4, lookback_days: .inf}\n", "idle_gpu.lookback_days"),
    ("max_commitment: {usd: .nan}\n", "max_commitment.usd"),
])
def test_policy_non_list_approvals_and_non_finite_numbers_are_one_line_errors(tmp_path, text, column):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        load_policy(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}, line ") and f"column '{column}'" in msg and "(fix: " in msg


def test_check_with_nan_policy_threshold_exits_2(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("idle_gpu: {utilization_below: 0.1, for_hours: .nan}\n")
    r = runner.invoke(app, ["check", "--usage", str(_usage(tmp_path)), "--policy", str(policy)])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    assert "idle_gpu.for_hours" in r.output


def test_unit_trend_is_undefined_when_the_first_period_has_no_cost(tmp_path):
    usage = pd.read_csv(_usage(tmp_path))
    usage[S.TIMESTAMP] = pd.to_datetime(usage[S.TIMESTAMP]).dt.tz_localize(None)
    units = tmp_path / "units.csv"
    units.write_text("team,period,unit,count\na,2025-10,run,2\na,2025-11,run,4\n")
    costs = unit_costs(priced(usage, Rates({"NVIDIA A100": 2.5}, "test rates")), load_units(units, {"a"}))
    # October: no usage, 0 USD per run; November: 2,880 GPU-hours x 2.5 USD / 4 runs = 1,800 USD per run.
    assert costs["usd_per_unit"].tolist() == [0.0, 1800.0]
    t = trends(costs)
    assert t.loc[0, "last_usd_per_unit"] == 1800.0 and pd.isna(t.loc[0, "change_pct"])


def test_units_command_prints_no_infinite_change(tmp_path):
    units = tmp_path / "units.csv"
    units.write_text("team,period,unit,count\na,2025-10,run,2\na,2025-11,run,4\n")
    r = runner.invoke(app, ["units", "--usage", str(_usage(tmp_path)), "--units", str(units), "--out",
                            str(tmp_path / "u.csv")])
    assert r.exit_code == 0, r.output
    assert "inf%" not in r.output and "nan%" not in r.output


def test_aws_budgets_filter_on_the_tag_key_given_to_alerts(tmp_path, monkeypatch):
    """--tag-key names the team tag of the billing data, so the AWS Budgets must filter on that tag, not 'team'."""
    import boto3
    from botocore.stub import Stubber

    budgets = tmp_path / "budgets.csv"
    budgets.write_text("team,period,budget_usd\na,2025-11,5000\n")  # entirely past: no forecast needed
    client = boto3.client("budgets", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    name = "gpuplan-a-20251101-20251201"
    with Stubber(client) as stub:
        stub.add_client_error("describe_budget", "NotFoundException", expected_params={
            "AccountId": "123456789012", "BudgetName": name})
        stub.add_response("create_budget", {}, {"AccountId": "123456789012", "Budget": {
            "BudgetName": name, "BudgetLimit": {"Amount": "5000.00", "Unit": "USD"}, "TimeUnit": "MONTHLY",
            "TimePeriod": {"Start": pd.Timestamp("2025-11-01").to_pydatetime(),
                           "End": pd.Timestamp("2025-12-01").to_pydatetime()},
            "BudgetType": "COST", "FilterExpression": {"And": [
                {"Dimensions": {"Key": "SERVICE", "Values": ["Amazon Elastic Compute Cloud - Compute"]}},
                {"Tags": {"Key": "user_team", "Values": ["a"], "MatchOptions": ["EQUALS"]}}]}}})
        monkeypatch.setattr(boto3, "client", lambda *a, **k: client)
        r = runner.invoke(app, ["alerts", "--usage", str(_usage(tmp_path)), "--budgets", str(budgets), "--out",
                                str(tmp_path / "a.json"), "--tag-key", "user_team", "--aws-budgets", "--account-id",
                                "123456789012", "--apply"])
        stub.assert_no_pending_responses()
    # 2,880 GPU-hours on-demand (7,905 USD) are over 5,000 USD: the alert fires (exit 1) after creating the budget.
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.output
    assert f"AWS Budgets create: {name}" in r.output
