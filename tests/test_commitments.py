"""Billing exports of other clouds and of commitments in use (issue 13 items 5-6, issue 16 item 4).

Every expected number is counted by hand from the small samples in data_samples/billing/ (see their README).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from app.cli import app
from operate.commitments import (
    UtilizationRule,
    existing_rows,
    inventory,
    plan_under_used,
    read_ledger,
    under_used,
)
from operate.policy import load_policy
from optimizer import catalog as C
from optimizer.existing import load_existing
from optimizer.plan import Commitment
from tests.test_operate_notify import Hook
from usage import schema as S
from usage.ingest import load_usage
from usage.schema import UsageError

ROOT = Path(__file__).resolve().parents[1]
BILLING = ROOT / "data_samples" / "billing"
GCP = BILLING / "gcp_billing_export_gpu.csv"
AZURE = BILLING / "azure_focus_gpu_commitments.csv"
CUR = BILLING / "cur_gpu_commitments.csv"
runner = CliRunner()


@pytest.fixture(scope="module")
def cat() -> C.Catalog:
    return C.load_catalog()


def _load(path, cat, fmt="auto"):
    return load_usage(path, fmt, instance_gpus=cat.instance_gpus(), known_gpu_types=cat.gpu_models())


def _hours(usage: pd.DataFrame) -> dict[tuple[str, str], float]:
    return {k: round(v, 6) for k, v in usage.groupby([S.TEAM, S.GPU_TYPE])[S.GPUS].sum().items()}


# ---------------------------------------------------------------------------------------------- GCP billing export

def test_gcp_export_gpu_skus_become_gpu_hours_per_team(cat):
    usage, report = _load(GCP, cat)
    assert report.format == "gcp"
    # hand count: nlp A100 8 + 4; vision L4 (spot) 2, H100 (CUD credit) 8; untagged A100 1. vCPU/RAM rows, the
    # Commitment v1 fee row and the storage row are not GPU-hours; P100 is not in the catalog.
    assert _hours(usage) == {("nlp", "NVIDIA A100"): 12.0, ("unallocated", "NVIDIA A100"): 1.0,
                             ("vision", "NVIDIA H100"): 8.0, ("vision", "NVIDIA L4"): 2.0}
    assert report.gpu_hours == pytest.approx(23.0)
    options = usage[usage[S.GPUS] > 0].groupby(S.GPU_TYPE)[S.PURCHASE_OPTION].first().to_dict()
    assert options == {"NVIDIA A100": "on_demand", "NVIDIA H100": "reserved", "NVIDIA L4": "spot"}
    assert report.unknown_instance_types == (("NVIDIA Tesla P100", 1),)
    assert any(line.startswith("warning:") and "NVIDIA Tesla P100 (1 rows)" in line for line in report.lines())
    # cost = cost + credits: the H100 row 88.0 - 39.6
    h100 = usage[(usage[S.GPU_TYPE] == "NVIDIA H100") & (usage[S.GPUS] > 0)]
    assert float(h100[S.COST_USD].sum()) == pytest.approx(48.4)
    assert S.INSTANCE_TYPE not in usage.columns


def test_gcp_parquet_with_nested_columns_reads_the_same(tmp_path, cat):
    """BigQuery's own Parquet keeps sku/usage/service as STRUCTs and labels as a list of key/value structs."""
    out = tmp_path / "gcp.parquet"
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT {{'description': "service.description"}} AS service,
            {{'description': "sku.description"}} AS sku, CAST(usage_start_time AS TIMESTAMPTZ) AS usage_start_time,
            CAST(usage_end_time AS TIMESTAMPTZ) AS usage_end_time,
            {{'amount': CAST("usage.amount" AS DOUBLE), 'unit': "usage.unit"}} AS usage,
            CAST(from_json(labels, '[{{"key": "VARCHAR", "value": "VARCHAR"}}]')
                 AS STRUCT(key VARCHAR, value VARCHAR)[]) AS labels, CAST(cost AS DOUBLE) AS cost, cost_type
        FROM read_csv('{GCP}', all_varchar=true)) TO '{out}' (FORMAT parquet)""")
    con.close()
    usage, report = _load(out, cat)
    assert report.format == "gcp"
    assert _hours(usage) == {("nlp", "NVIDIA A100"): 12.0, ("unallocated", "NVIDIA A100"): 1.0,
                             ("vision", "NVIDIA H100"): 8.0, ("vision", "NVIDIA L4"): 2.0}


def test_gcp_export_without_gpu_skus_names_the_column(tmp_path, cat):
    path = tmp_path / "cpu_only.csv"
    text = GCP.read_text().splitlines()
    path.write_text("\n".join([text[0], text[2], text[3]]) + "\n")
    with pytest.raises(UsageError, match=r"no GPU SKU rows.*sku.description"):
        _load(path, cat)


# ------------------------------------------------------------------------------------------- Azure FOCUS export

def test_azure_focus_nc_nd_rows_ingest_with_gpus_per_size(cat):
    usage, report = _load(AZURE, cat)
    assert report.format == "focus"
    # hand count (daily rows): llm ND96isr H100 v5 18 h + 24 h x 8 GPUs = 336, ND96isr H200 v5 4 h x 8 = 32;
    # vision ND96isr H100 v5 on-demand 10 h x 8 = 80; NC24ads A100 v4 spot 2.4 x '10 Hours' = 24 h x 1 GPU, plus
    # 10 h under the savings plan. The D4s v5 row is not a GPU; NC8ads A10 v4 is in neither table nor catalog.
    assert _hours(usage) == {("llm", "NVIDIA H100"): 336.0, ("llm", "NVIDIA H200"): 32.0,
                             ("vision", "NVIDIA A100"): 34.0, ("vision", "NVIDIA H100"): 80.0}
    assert report.unknown_instance_types == (("Standard_NC8ads_A10_v4", 1),)


def test_a_billing_export_whose_gpu_types_the_catalog_lacks_names_them(tmp_path, cat):
    """p5e.48xlarge is sold as Capacity Blocks only and has no catalog price: its rows are named, not dropped."""
    lines = ["line_item_line_item_type,line_item_usage_start_date,line_item_usage_type,line_item_usage_amount",
             "Usage,2025-11-01T00:00:00Z,BoxUsage:p4d.24xlarge,1",
             "Usage,2025-11-01T00:00:00Z,USE2-BoxUsage:p5e.48xlarge,1",
             "Usage,2025-11-01T01:00:00Z,USE2-BoxUsage:p5e.48xlarge,1",
             "Usage,2025-11-01T01:00:00Z,BoxUsage:m7i.large,1"]
    path = tmp_path / "cur.csv"
    path.write_text("\n".join(lines) + "\n")
    usage, report = _load(path, cat)
    assert report.unknown_instance_types == (("p5e.48xlarge", 2),)   # m7i is no GPU type: not listed
    assert float(usage[S.GPUS].sum()) == 8.0
    only = tmp_path / "only_p5e.csv"
    only.write_text("\n".join([lines[0], lines[2], lines[3]]) + "\n")
    with pytest.raises(UsageError, match=r"catalog lacks: p5e\.48xlarge \(2 rows\)"):
        _load(only, cat)


def test_cli_ingest_prints_the_missing_type_warning(tmp_path):
    path = tmp_path / "cur.csv"
    path.write_text("line_item_line_item_type,line_item_usage_start_date,line_item_usage_type,line_item_usage_amount\n"
                    "Usage,2025-11-01T00:00:00Z,BoxUsage:p4d.24xlarge,1\n"
                    "Usage,2025-11-01T00:00:00Z,BoxUsage:p5e.48xlarge,3\n")
    proc = subprocess.run([sys.executable, "-c", "from app.cli import main; main()", "ingest", str(path), "--out",
                           str(tmp_path / "u.csv")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "warning: 1 GPU usage rows name types the catalog lacks and were not counted: p5e.48xlarge (1 rows)" \
        in " ".join(proc.stderr.split())


# ------------------------------------------------------------------------------------------ catalog completeness

def test_every_gpu_instance_type_of_the_specs_is_priced_or_listed_with_a_reason(cat):
    specs = pd.read_csv(C.DATA_DIR / "prices" / "aws_gpu_instance_specs.csv")
    specs = set(specs.loc[specs["gpu_count"] > 0, "instance_type"])
    missing = C.missing_instance_types(cat.table)
    priced = set(cat.table.loc[cat.table[C.PROVIDER] == "aws", C.INSTANCE_TYPE])
    assert specs == priced | set(missing["instance_type"])
    assert not priced & set(missing["instance_type"])
    assert {"p5en.48xlarge", "p6-b200.48xlarge"} <= priced
    reasons = missing.set_index("instance_type")["reason"]
    for itype in ("p5e.48xlarge", "trn2.48xlarge", "p6e-gb200.36xlarge"):
        assert "Capacity Blocks" in reasons[itype]
    result = runner.invoke(app, ["catalog", "show", "--missing"])
    assert result.exit_code == 0
    assert "p5e.48xlarge" in result.output and f"{len(missing)} GPU instance types" in result.output


# ---------------------------------------------------------------------------------------- commitment inventory

def test_focus_unused_commitment_rows_give_utilisation_by_hand_count(cat):
    ledger = read_ledger(AZURE)
    inv = inventory(ledger, cat.instance_gpus()).set_index("type")
    res = inv.loc["Reservation"]
    # reservation: used 18 + 24 hours, unused 6 hours (360 USD) -> 42 / 48
    assert (res["used_quantity"], res["unused_quantity"]) == (42.0, 6.0)
    assert res["utilization"] == pytest.approx(0.875)
    assert res["unused_usd"] == pytest.approx(360.0)
    assert res["instance_type"] == "Standard_ND96isr_H100_v5" and res["gpu_model"] == "NVIDIA H100"
    sp = inv.loc["Savings Plan"]
    # savings plan (spend-based): 500 USD used, 100 USD unused
    assert sp["utilization"] == pytest.approx(500 / 600, abs=1e-4) and sp["unit"] == "USD"
    assert sp["scope"] == "any GPU"


def test_cur_ri_and_sp_inventory_and_the_under_used_ri_names_the_team_that_could_move(cat):
    ledger = read_ledger(CUR)
    inv = inventory(ledger, cat.instance_gpus()).set_index("type")
    ri = inv.loc["Reserved Instance"]
    # 2 x p4d for 720 h = 1440 h; DiscountedUsage 20 days x 48 h + 10 days x 24 h = 1200 h
    assert (ri["used_quantity"], ri["unused_quantity"]) == (1200.0, 240.0)
    assert ri["utilization"] == pytest.approx(1200 / 1440, abs=1e-4)
    assert ri["term_end"] == "2026-06-15" and ri["option"] == "reserved_1y_no_upfront"
    sp = inv.loc["Compute Savings Plan"]
    assert (sp["used_quantity"], sp["unused_quantity"]) == (27 * 240.0 + 3 * 120.0, 360.0)
    usage, _ = _load(CUR, cat)
    found = under_used(ledger, UtilizationRule(0.8, 14), usage, cat.instance_gpus())
    # last 14 days (Nov 17 - Dec 1): used 4 x 48 + 10 x 24 = 432 h; the month's 240 unused hours pro rata 14/30 = 112
    assert list(found["type"]) == ["Reserved Instance"]
    f = found.iloc[0]
    assert f["utilization"] == pytest.approx(432 / 544, abs=1e-4)
    assert f["unused_usd"] == pytest.approx(240 * 14.49 * 14 / 30, abs=0.01)
    assert f["unused_gpu_hours"] == pytest.approx(112 * 8)
    # vision ran p4d.24xlarge on-demand 12 h a day on Nov 25-30 (6 x 12 x 8 GPUs); nlp's g5 is another family
    assert f["movable_teams"] == "vision (576.0 GPU-h)"
    assert "could move onto it: vision" in f["message"]


def test_existing_out_is_read_by_plan_existing(tmp_path, cat):
    owned, notes = existing_rows(read_ledger(CUR))
    # the Compute SP's SavingsPlanRecurringFee rows commit 240 USD a day (24 h): 10 USD/h, 1yr No Upfront
    assert owned.to_dict("records") == [
        {"instance_type": "p4d.24xlarge", "option": "reserved_1y_no_upfront", "count": 2, "start": "2025-06-15",
         "expiry": "2026-06-15T00:00Z", "commitment_usd_per_hour": "", "instance_family": ""},
        {"instance_type": "", "option": "compute_sp_1y_no_upfront", "count": "", "start": "2025-06-01",
         "expiry": "2026-06-01T00:00Z", "commitment_usd_per_hour": 10.0, "instance_family": ""}]
    assert notes == ()
    result = runner.invoke(app, ["commitments", "--billing", str(CUR), "--existing-out", str(tmp_path / "owned.csv"),
                                 "--out", str(tmp_path / "inv.csv")])
    assert result.exit_code == 0, result.output
    loaded = load_existing(tmp_path / "owned.csv", cat, "us-east-1")
    assert [(c.instance_type, c.count, c.existing) for c in loaded] == [("p4d.24xlarge", 2, True),
                                                                        ("", 1, True)]
    sp = loaded[1]
    assert (sp.purchase_option, sp.commitment_usd_per_hour, sp.start, sp.expiry) == (
        "compute_sp_1y_no_upfront", 10.0, pd.Timestamp("2025-06-01"), pd.Timestamp("2026-06-01"))
    # the inventory names the savings plan's option too
    assert "compute_sp_1y_no_upfront" in set(pd.read_csv(tmp_path / "inv.csv")["option"])
    assert pd.read_csv(tmp_path / "inv.csv")["commitment_id"].nunique() == 2
    # FOCUS rows do not say term and payment: nothing to write is an error, not an empty file
    bad = runner.invoke(app, ["commitments", "--billing", str(AZURE), "--existing-out", str(tmp_path / "o2.csv")])
    assert bad.exit_code == 2 and "error:" in bad.output and not (tmp_path / "o2.csv").exists()


def test_a_file_without_commitment_columns_is_one_error_line(tmp_path):
    result = runner.invoke(app, ["commitments", "--billing", str(GCP)])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and "CommitmentDiscountId" in result.output
    assert len(result.output.strip().splitlines()) == 1


# -------------------------------------------------------------------------------- under-used commitments: a plan

def test_plan_commitment_under_used_names_the_teams_whose_demand_overflowed():
    start = pd.Timestamp("2025-11-01")
    c = Commitment(instance_type="p4d.24xlarge", purchase_option="reserved_1y_no_upfront", count=2, start=start,
                   hourly_usd_per_instance=14.0, upfront_usd_per_instance=0.0, gpu_model="NVIDIA A100",
                   gpus_per_instance=8.0, term_hours=8760)
    hours = pd.date_range(start, periods=336, freq="h")
    rows = [{S.TIMESTAMP: h, S.TEAM: "a", S.GPU_TYPE: "NVIDIA A100", S.GPUS: 8.0} for h in hours]
    rows += [{S.TIMESTAMP: h, S.TEAM: "b", S.GPU_TYPE: "NVIDIA A100", S.GPUS: 12.0 if i >= 168 else 0.0}
             for i, h in enumerate(hours)]
    found, notes = plan_under_used(SimpleNamespace(commitments=(c,)), pd.DataFrame(rows), UtilizationRule(0.8, 14))
    f = found.iloc[0]
    # 16 GPUs x 336 h = 5376; used 168 x 8 + 168 x 16 = 4032 -> 0.75; unused 1344 GPU-h = 168 instance-h x 14 USD
    assert f["utilization"] == pytest.approx(0.75)
    assert f["unused_quantity"] == pytest.approx(1344.0)
    assert f["unused_usd"] == pytest.approx(168 * 14.0)
    # overflow 4 GPUs in each of the last 168 h, split 8:12 between a and b
    assert f["movable_teams"] == "b (403.2 GPU-h), a (268.8 GPU-h)"
    assert notes == ()
    assert plan_under_used(SimpleNamespace(commitments=(c,)), pd.DataFrame(rows), UtilizationRule(0.7, 14))[0].empty


# ------------------------------------------------------------------------------------------- check, notify

def test_check_billing_with_commitment_utilization_policy_exits_1(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("commitment_utilization:\n  below: 0.8\n  lookback_days: 14\n")
    out = tmp_path / "violations.csv"
    result = runner.invoke(app, ["check", "--policy", str(policy), "--billing", str(CUR), "--out", str(out)])
    assert result.exit_code == 1, result.output
    v = pd.read_csv(out)
    assert list(v["check"]) == ["commitment_utilization"]
    assert v["usd"].iloc[0] == pytest.approx(1622.88)
    assert v["gpu_hours"].iloc[0] == pytest.approx(896.0)
    assert "vision" in v["message"].iloc[0]
    plain = tmp_path / "plain.yaml"
    plain.write_text("required_tags: [team]\n")
    missing = runner.invoke(app, ["check", "--policy", str(plain), "--billing", str(CUR)])
    assert missing.exit_code == 2 and "commitment_utilization" in missing.output


def test_policy_commitment_utilization_values_are_checked(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("commitment_utilization:\n  below: 1.5\n")
    with pytest.raises(UsageError, match=r"line 2.*below 1.5 must be a number between 0 and 1"):
        load_policy(policy)
    policy.write_text("commitment_utilization:\n  lookback_days: 7\n")
    rule = load_policy(policy).commitment_utilization
    assert (rule.below, rule.lookback_days) == (0.8, 7)


def test_webhook_gets_one_message_per_under_used_commitment_across_two_runs(tmp_path):
    hook = Hook()
    try:
        state = tmp_path / "state.json"
        for _ in range(2):
            result = runner.invoke(app, ["commitments", "--billing", str(CUR), "--notify", hook.url,
                                         "--notify-format", "json", "--notify-state", str(state)])
            assert result.exit_code == 0, result.output
        assert len(hook.bodies) == 1
        body = hook.bodies[0]
        assert json.dumps(body).count("ri-p4d-0001") >= 1 and "vision" in json.dumps(body)
    finally:
        hook.close()


def test_watch_checks_commitments_and_sends_each_under_used_one_once(tmp_path):
    (tmp_path / "policy.yaml").write_text("commitment_utilization: {below: 0.8, lookback_days: 14}\n")
    config = tmp_path / "watch.yaml"
    config.write_text(yaml.safe_dump({"usage": str(CUR), "billing": str(CUR), "policy": "policy.yaml",
                                      "anomalies": {"lookback_days": 7},
                                      "channels": {"webhooks": [{"url_env": "TEST_HOOK_URL", "format": "json"}]},
                                      "state": "state.json", "runs_dir": "runs"}))
    hook = Hook()
    try:
        for _ in range(2):
            proc = subprocess.run([sys.executable, "-c", "from app.cli import main; main()", "watch", "--config",
                                   str(config)], capture_output=True, text=True, cwd=ROOT, timeout=600,
                                  env={**os.environ, "TEST_HOOK_URL": hook.url})
            assert proc.returncode == 1, proc.stderr
        first = json.loads(sorted((tmp_path / "runs").glob("run-*.json"))[0].read_text())
        com = first["sections"]["commitments"]
        assert com["open"] == 1 and com["violations"][0]["usd"] == pytest.approx(1622.88)
        assert [b["source"] for b in hook.bodies].count("commitments") == 1   # two runs, one message
    finally:
        hook.close()


def test_an_ec2_instance_savings_plan_covers_its_family_only(tmp_path, cat):
    """EC2 Instance SP for family p4d: 50 of 100 USD used; vision's on-demand p4d could move, nlp's g5 could not."""
    head = ("line_item_line_item_type,line_item_usage_start_date,line_item_usage_end_date,line_item_usage_type,"
            "line_item_usage_amount,resource_tags,savings_plan_savings_plan_a_r_n,savings_plan_total_commitment_to_date,"
            "savings_plan_used_commitment,savings_plan_offering_type,savings_plan_instance_type_family,"
            "savings_plan_end_time")
    arn = "arn:aws:savingsplans::1:savingsplan/sp-ec2-p4d"
    rows = [f"SavingsPlanRecurringFee,2025-11-01T00:00:00Z,2025-11-02T00:00:00Z,EC2SP:p4d.1yrNoUpfront,24,,{arn},"
            "100,50,EC2InstanceSavingsPlans,p4d,2026-11-01T00:00:00Z",
            'Usage,2025-11-01T00:00:00Z,2025-11-01T01:00:00Z,BoxUsage:p4d.24xlarge,1,"{""user_team"": ""vision""}"'
            ",,,,,,",
            'Usage,2025-11-01T00:00:00Z,2025-11-01T01:00:00Z,BoxUsage:g5.xlarge,3,"{""user_team"": ""nlp""}",,,,,,']
    path = tmp_path / "cur_ec2sp.csv"
    path.write_text("\n".join([head, *rows]) + "\n")
    ledger = read_ledger(path)
    inv = inventory(ledger, cat.instance_gpus()).iloc[0]
    assert (inv["type"], inv["scope"], inv["utilization"], inv["term_end"]) == (
        "EC2 Instance Savings Plan", "family p4d", 0.5, "2026-11-01")
    usage, _ = _load(path, cat)
    found = under_used(ledger, UtilizationRule(0.8, 14), usage, cat.instance_gpus())
    assert found.iloc[0]["movable_teams"] == "vision (8.0 GPU-h)"
    assert found.iloc[0]["unused_usd"] == pytest.approx(50.0)
