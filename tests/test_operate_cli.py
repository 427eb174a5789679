"""gpuplan alerts | chargeback | units | check | report end to end on the shipped sample organisation and its
operate files, with exit codes (0 ok, 1 alert/violation, 2 user error) and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli import app
from forecasting.samples import load_sample
from operate.chargeback import COLUMNS
from optimizer.billing import bill
from optimizer.plan import Plan

ROOT = Path(__file__).resolve().parents[1]
USAGE = str(ROOT / "data_samples" / "synthetic_org.parquet")
OPS = ROOT / "data_samples" / "operate"
PLAN = str(OPS / "plan_2025-11.json")
runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_alerts_flag_the_overspending_team_and_exit_1(tmp_path):
    out = tmp_path / "alerts.json"
    proc = subprocess.run([sys.executable, "-c", "from app.cli import main; main()", "alerts", "--usage", USAGE,
                           "--budgets", str(OPS / "budgets.csv"), "--out", str(out)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 1, proc.stderr
    assert "ALERT multimodal is projected to spend" in proc.stdout and "runs out 2025-12-" in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["schema"] == "gpuplan.alerts/v1" and doc["fired"] == 1 and doc["as_of"] == "2025-12-01T00:00:00Z"
    (m,) = [a for a in doc["alerts"] if a["fired"]]
    assert m["team"] == "multimodal" and m["run_out_date"].startswith("2025-12-") and m["p_overspend"] >= 0.95
    assert len(doc["alerts"]) == 22


def test_alerts_exit_0_when_nothing_fires_and_aws_budgets_dry_run(tmp_path):
    budgets = tmp_path / "b.yaml"
    budgets.write_text("budgets:\n  - {team: multimodal, period: 2025-Q4, budget_usd: 5000000, owner: m@example.com}\n")
    r = invoke("alerts", "--usage", USAGE, "--budgets", str(budgets), "--out", str(tmp_path / "a.json"),
               "--aws-budgets", "--account-id", "123456789012")
    assert r.exit_code == 0, r.output
    assert "AWS Budgets dry-run: gpuplan-multimodal-20251001-20260101" in r.output
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["fired"] == 0 and doc["aws_budgets"] == [{"name": "gpuplan-multimodal-20251001-20260101",
                                                          "action": "dry-run"}]


def test_chargeback_csv_sums_equal_the_bill(tmp_path):
    out = tmp_path / "chargeback.csv"
    for policy in ("proportional", "central"):
        r = invoke("chargeback", "--usage", USAGE, "--plan", PLAN, "--out", str(out), "--unused-policy", policy,
                   "--idle-out", str(tmp_path / "idle.csv"))
        assert r.exit_code == 0, r.output
        table = pd.read_csv(out)
        assert tuple(table.columns) == COLUMNS
        totals = bill(Plan.read(PLAN), load_sample("synthetic")).totals()
        assert round(table["total_usd"].sum(), 2) == round(totals["total_usd"], 2)
        assert round(table["spot_usd"].sum(), 2) == round(totals["spot_usd"], 2)
        assert round(table["committed_usd"].sum() + table["unused_commitment_usd"].sum(), 2) == round(
            totals["committed_usd"], 2)
        assert ("central" in set(table["team"])) == (policy == "central")
    assert "allocated 1,2" in r.output and pd.read_csv(tmp_path / "idle.csv")["idle_usd"].sum() > 0


def test_units_check_and_report(tmp_path):
    r = invoke("units", "--usage", USAGE, "--units", str(OPS / "units.csv"), "--out", str(tmp_path / "u.csv"))
    assert r.exit_code == 0, r.output
    assert len(pd.read_csv(tmp_path / "u.csv")) == 30 and "training run" in r.output
    r = invoke("check", "--usage", USAGE, "--policy", str(OPS / "policy.yaml"), "--plan", PLAN, "--out",
               str(tmp_path / "v.csv"), "--idle-out", str(tmp_path / "idle.csv"))
    assert r.exit_code == 1, r.output
    v = pd.read_csv(tmp_path / "v.csv")
    assert set(v["check"]) == {"idle_gpu", "max_commitment"} and "ml-platform / NVIDIA A10G" in set(v["scope"])
    assert pd.read_csv(tmp_path / "idle.csv")["saving_usd"].sum() > 0
    plan_only = tmp_path / "lenient.yaml"
    plan_only.write_text("max_commitment:\n  usd: 20000000\n")
    r = invoke("check", "--policy", str(plan_only), "--plan", PLAN)
    assert r.exit_code == 0 and "no guardrail violations" in r.output
    r = invoke("report", "--usage", USAGE, "--budgets", str(OPS / "budgets.csv"), "--units", str(OPS / "units.csv"),
               "--policy", str(OPS / "policy.yaml"), "--plan", PLAN, "--out-dir", str(tmp_path / "rep"))
    assert r.exit_code == 0, r.output
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "multimodal is projected to spend" in html and html.count("<svg") == 5
    assert (tmp_path / "rep" / "budget_vs_forecast.csv").exists()


@pytest.mark.parametrize(("args", "message"), [
    (("chargeback", "--usage", USAGE, "--plan", "missing.json", "--out", "x.csv"),
     "error: missing.json: file not found (fix: check the path, or write one with gpuplan plan)"),
    (("chargeback", "--usage", USAGE, "--plan", PLAN, "--unused-policy", "shared"),
     "error: unknown unused-commitment policy 'shared' (fix: choose proportional or central)"),
    (("check", "--policy", str(OPS / "policy.yaml")), "error: give --usage, --plan or both"),
    (("alerts", "--usage", USAGE, "--budgets", str(OPS / "budgets.csv"), "--as-of", "soon"),
     "error: --as-of 'soon' is not an ISO 8601 hour start"),
    (("alerts", "--usage", USAGE, "--budgets", str(OPS / "budgets.csv"), "--aws-budgets"),
     "error: --aws-budgets needs --account-id"),
])
def test_user_errors_exit_2_with_one_line(args, message):
    r = invoke(*args)
    assert r.exit_code == 2, r.output
    assert message in r.output


def test_bad_files_exit_2_with_one_line(tmp_path):
    budgets = tmp_path / "b.csv"
    budgets.write_text("team,period,budget_usd\nmarketing,2025-Q4,100\n")
    r = invoke("alerts", "--usage", USAGE, "--budgets", str(budgets))
    assert r.exit_code == 2 and f"error: {budgets}, row 2, column 'team': unknown team 'marketing'" in r.output
    policy = tmp_path / "p.yaml"
    policy.write_text("idle_gpu:\n  utilization_below: high\n  for_hours: 2\n")
    r = invoke("check", "--usage", USAGE, "--policy", str(policy))
    assert r.exit_code == 2 and "line 2, column 'idle_gpu.utilization_below'" in r.output
    plan = tmp_path / "plan.json"
    plan.write_text('{"schema": "gpuplan.plan/v1"}')
    r = invoke("chargeback", "--usage", USAGE, "--plan", str(plan))
    assert r.exit_code == 2 and "not a gpuplan.plan/v1 document" in r.output
    assert "Traceback" not in r.output
