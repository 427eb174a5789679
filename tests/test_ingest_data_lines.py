"""Storage and data-transfer lines of billing exports -> the data-usage frame (usage.ingest.data_lines),
and ``gpuplan data-costs`` (issue 17, items 1 and 2).

Every export here is written by hand in the test, so each expected amount is a sum a reader can redo:
quantities in GB-month (storage) and GB (transfer), costs in USD.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from optimizer.catalog import load_catalog
from usage.ingest import load_usage
from usage.ingest.data_lines import (
    DATA_COLUMNS,
    by_class,
    classify_aws,
    classify_named,
    data_costs,
    load_data_lines,
    unit_factor,
)
from usage.schema import UNALLOCATED_TEAM, UsageError

ROOT = Path(__file__).resolve().parents[1]
CUR_HEADER = ["identity_line_item_id", "line_item_line_item_type", "line_item_usage_start_date",
              "line_item_usage_end_date", "line_item_product_code", "line_item_usage_type", "line_item_usage_amount",
              "line_item_unblended_cost", "resource_tags"]


def tags(team: str | None, project: str | None = None) -> str:
    t = {}
    if team:
        t["user_team"] = team
    if project:
        t["user_project"] = project
    return json.dumps(t) if t else ""


# (line item type, month, usage type, amount, cost, team, project); March and April 2025
CUR_ROWS = [
    # GPU compute and non-data rows: never data costs
    ("Usage", "2025-03", "BoxUsage:p4d.24xlarge", 10, 327.73, "llm", "pretrain"),
    ("Usage", "2025-03", "USE2-BoxUsage:g5.xlarge", 4, 4.024, None, None),
    ("Tax", "2025-03", "", 0, 25.00, None, None),
    ("Fee", "2025-03", "AWS Support (Business)", 1, 100.00, None, None),
    ("Usage", "2025-03", "Requests-Tier1", 1000, 5.00, "llm", "pretrain"),
    ("Usage", "2025-03", "NatGateway-Hours", 720, 32.40, "llm", "pretrain"),
    ("Credit", "2025-03", "TimedStorage-ByteHrs", 0, -10.00, "llm", "pretrain"),
    # object storage by class
    ("Usage", "2025-03", "TimedStorage-ByteHrs", 1000, 23.00, "llm", "pretrain"),
    ("Usage", "2025-03", "USW2-TimedStorage-ByteHrs", 500, 11.50, "llm", "pretrain"),
    ("Usage", "2025-03", "TimedStorage-SIA-ByteHrs", 2000, 25.00, "llm", "pretrain"),
    ("Usage", "2025-03", "TimedStorage-GIR-ByteHrs", 4000, 16.00, "vision", None),
    ("Usage", "2025-03", "TimedStorage-GDA-ByteHrs", 10000, 9.90, None, None),
    ("Usage", "2025-03", "TimedStorage-INT-FA-ByteHrs", 100, 2.30, "vision", None),
    ("Usage", "2025-03", "TimedStorage-INT-IA-ByteHrs", 100, 1.25, "vision", None),
    # block storage and snapshots
    ("Usage", "2025-03", "EBS:VolumeUsage.gp3", 800, 64.00, "llm", "pretrain"),
    ("Usage", "2025-03", "USW2-EBS:VolumeUsage.gp2", 100, 10.00, "vision", None),
    ("Usage", "2025-03", "EBS:VolumeP-IOPS.gp3", 3000, 15.00, "llm", "pretrain"),
    ("Usage", "2025-03", "EBS:SnapshotUsage", 1200, 60.00, "llm", "pretrain"),
    ("Usage", "2025-03", "EBS:SnapshotUsage", 300, 15.00, None, None),
    # transfer
    ("Usage", "2025-03", "DataTransfer-Out-Bytes", 100, 9.00, "llm", "pretrain"),
    ("Usage", "2025-03", "USE1-USW2-AWS-Out-Bytes", 5000, 100.00, "llm", "pretrain"),
    ("Usage", "2025-03", "DataTransfer-Regional-Bytes", 3000, 30.00, "vision", None),
    ("Usage", "2025-03", "NatGateway-Bytes", 200, 9.00, None, None),
    ("Usage", "2025-03", "DataTransfer-In-Bytes", 700, 0.00, "vision", None),
    # April: llm's Standard storage grows, its egress grows
    ("Usage", "2025-04", "TimedStorage-ByteHrs", 2000, 46.00, "llm", "pretrain"),
    ("Usage", "2025-04", "DataTransfer-Out-Bytes", 300, 27.00, "llm", "pretrain"),
]


def write_cur(path: Path, rows=CUR_ROWS) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CUR_HEADER)
        for i, (kind, month, utype, amount, cost, team, project) in enumerate(rows):
            start = f"{month}-02T10:00:00Z"
            w.writerow([f"li-{i}", kind, start, f"{month}-02T11:00:00Z", "AmazonS3", utype, amount, cost,
                        tags(team, project)])
    return path


EXPECTED_CUR = {  # (month, team, class) -> (quantity, unit, cost)
    ("2025-03", "llm", "s3-standard"): (1500.0, "GB-month", 34.50),
    ("2025-03", "llm", "s3-standard-ia"): (2000.0, "GB-month", 25.00),
    ("2025-03", "vision", "s3-glacier-instant-retrieval"): (4000.0, "GB-month", 16.00),
    ("2025-03", UNALLOCATED_TEAM, "s3-glacier-deep-archive"): (10000.0, "GB-month", 9.90),
    ("2025-03", "vision", "s3-intelligent-tiering"): (200.0, "GB-month", 3.55),
    ("2025-03", "llm", "ebs-gp3"): (800.0, "GB-month", 64.00),
    ("2025-03", "vision", "ebs-gp2"): (100.0, "GB-month", 10.00),
    ("2025-03", "llm", "ebs-gp3-iops"): (3000.0, "IOPS-month", 15.00),
    ("2025-03", "llm", "ebs-snapshot"): (1200.0, "GB-month", 60.00),
    ("2025-03", UNALLOCATED_TEAM, "ebs-snapshot"): (300.0, "GB-month", 15.00),
    ("2025-03", "llm", "internet-egress"): (100.0, "GB", 9.00),
    ("2025-03", "llm", "inter-region"): (5000.0, "GB", 100.00),
    ("2025-03", "vision", "inter-az"): (3000.0, "GB", 30.00),
    ("2025-03", UNALLOCATED_TEAM, "nat-processing"): (200.0, "GB", 9.00),
    ("2025-03", "vision", "internet-ingress"): (700.0, "GB", 0.00),
    ("2025-04", "llm", "s3-standard"): (2000.0, "GB-month", 46.00),
    ("2025-04", "llm", "internet-egress"): (300.0, "GB", 27.00),
}


def as_dict(frame: pd.DataFrame) -> dict:
    grouped = by_class(frame)
    return {(r.month, r.team, r["class"]): (round(r.quantity, 6), r.unit, round(r.cost_usd, 6))
            for _, r in grouped.iterrows()}


def test_cur_export_by_hand_gives_each_team_and_class_exactly(tmp_path):
    frame, report = load_data_lines(write_cur(tmp_path / "cur.csv"))
    assert list(frame.columns) == list(DATA_COLUMNS)
    assert as_dict(frame) == EXPECTED_CUR
    assert set(frame.loc[frame["team"] == "llm", "project"]) == {"pretrain"}
    assert set(frame.loc[frame["team"] == "vision", "project"]) == {UNALLOCATED_TEAM}
    # the categories
    cats = frame.groupby("category")["cost_usd"].sum().round(2).to_dict()
    assert cats == {"object_storage": 134.95, "block_storage": 89.00, "snapshot": 75.00, "transfer": 175.00}
    # 26 rows: 7 are GPU, tax, support, requests, NAT hours or a credit; 19 are data lines
    assert report.rows_read == 26 and report.data_rows == 19
    assert report.cost_usd == pytest.approx(473.95)
    assert report.untagged_cost_usd == pytest.approx(9.90 + 15.00 + 9.00)


def test_gpu_ingest_of_the_same_export_still_gives_its_gpu_hours(tmp_path):
    path = write_cur(tmp_path / "cur.csv")
    cat = load_catalog()
    usage, report = load_usage(path, instance_gpus=cat.instance_gpus(), known_gpu_types=cat.gpu_models())
    # p4d.24xlarge 10 h x 8 GPUs (llm) + g5.xlarge 4 h x 1 GPU (untagged)
    assert report.gpu_hours == pytest.approx(84.0)
    assert usage.groupby("team")["gpus"].sum().to_dict() == pytest.approx({"llm": 80.0, UNALLOCATED_TEAM: 4.0})


def test_data_costs_per_team_and_month_with_trend(tmp_path):
    frame, _ = load_data_lines(write_cur(tmp_path / "cur.csv"))
    costs = data_costs(frame).set_index(["month", "team"])
    llm_mar = costs.loc[("2025-03", "llm")]
    assert llm_mar["storage_usd"] == pytest.approx(34.50 + 25.00 + 64.00 + 15.00 + 60.00)
    assert llm_mar["storage_gb_month"] == pytest.approx(1500 + 2000 + 800 + 1200)  # IOPS are not GB
    assert llm_mar["egress_usd"] == pytest.approx(9.00) and llm_mar["egress_gb"] == pytest.approx(100.0)
    assert llm_mar["transfer_usd"] == pytest.approx(100.00)
    assert llm_mar["total_usd"] == pytest.approx(307.50)
    assert pd.isna(llm_mar["total_change_usd"])
    llm_apr = costs.loc[("2025-04", "llm")]
    assert llm_apr["total_usd"] == pytest.approx(73.00)
    assert llm_apr["total_change_usd"] == pytest.approx(73.00 - 307.50)
    assert llm_apr["total_change_pct"] == pytest.approx((73.00 - 307.50) / 307.50)
    assert costs.loc[("2025-03", "vision"), "transfer_usd"] == pytest.approx(30.00)
    # vision has no data line in April: a 0 row, down by its whole March total
    assert costs.loc[("2025-04", "vision"), "total_usd"] == 0.0
    assert costs.loc[("2025-04", "vision"), "total_change_pct"] == pytest.approx(-1.0)
    assert len(costs) == 6  # 2 months x 3 teams
    assert costs["total_usd"].sum() == pytest.approx(473.95)


FOCUS_HEADER = ["ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ProviderName", "ServiceName",
                "ServiceCategory", "SkuMeter", "x_SkuMeterName", "ConsumedQuantity", "ConsumedUnit", "EffectiveCost",
                "BilledCost", "Tags"]
# (category, provider, service, SkuMeter, x_SkuMeterName, quantity, unit, effective cost, tags)
FOCUS_ROWS = [
    ("Usage", "AWS", "Amazon Elastic Compute Cloud", "USE1-BoxUsage:p4d.24xlarge", "", 2, "Hours", 65.54,
     {"team": "llm"}),
    ("Usage", "AWS", "Amazon Simple Storage Service", "USE1-TimedStorage-ByteHrs", "", 1024, "GB-Mo", 23.55,
     {"team": "llm"}),
    ("Usage", "AWS", "Amazon Simple Storage Service", "TimedStorage-ZIA-ByteHrs", "", 100, "GB-Mo", 1.00, {}),
    ("Usage", "AWS", "Amazon Elastic Compute Cloud", "EBS:SnapshotArchiveStorage", "", 400, "GB-Mo", 2.00,
     {"team": "vision"}),
    ("Usage", "AWS", "AWS Data Transfer", "USE1-EUC1-AWS-Out-Bytes", "", 50, "GB", 1.00, {"team": "llm"}),
    ("Tax", "AWS", "Tax", "", "", 0, "", 7.00, {}),
    ("Usage", "Microsoft", "Storage", "Hot LRS Data Stored", "Hot LRS Data Stored", 5, "10 GB/Month", 0.92,
     {"team": "vision"}),
    ("Usage", "Microsoft", "Storage", "Archive LRS Data Stored", "Archive LRS Data Stored", 1000, "1 GB/Month",
     0.99, {"team": "vision"}),
    ("Usage", "Microsoft", "Bandwidth", "Standard Data Transfer Out", "Standard Data Transfer Out", 20, "1 GB",
     1.74, {"team": "llm"}),
    ("Usage", "Microsoft", "Storage", "Write Operations", "Hot LRS Write Operations", 10, "10K", 0.50,
     {"team": "vision"}),
    ("Usage", "Google Cloud", "Cloud Storage", "Nearline Storage US Multi-region", "", 730, "GiB-Hours", 0.01,
     {"team": "llm"}),
    ("Usage", "Google Cloud", "Networking", "Network Inter Region Data Transfer Out from Americas to EMEA", "",
     10, "GiB", 0.20, {"team": "llm"}),
]


def write_focus(path: Path) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(FOCUS_HEADER)
        for cat, provider, service, meter, name, qty, unit, cost, t in FOCUS_ROWS:
            w.writerow(["2025-03-01T00:00:00Z", "2025-03-01T01:00:00Z", cat, provider, service, "Storage", meter,
                        name, qty, unit, cost, cost, json.dumps(t)])
    return path


def test_focus_export_by_hand_aws_azure_and_gcp_meters(tmp_path):
    frame, report = load_data_lines(write_focus(tmp_path / "focus.csv"))
    assert as_dict(frame) == {
        ("2025-03", "llm", "s3-standard"): (1024.0, "GB-month", 23.55),
        ("2025-03", UNALLOCATED_TEAM, "s3-onezone-ia"): (100.0, "GB-month", 1.00),
        ("2025-03", "vision", "ebs-snapshot-archive"): (400.0, "GB-month", 2.00),
        ("2025-03", "llm", "inter-region"): (50.0 + 10.0, "GB", 1.20),
        ("2025-03", "vision", "azure-blob-hot"): (50.0, "GB-month", 0.92),  # 5 x "10 GB/Month"
        ("2025-03", "vision", "azure-blob-archive"): (1000.0, "GB-month", 0.99),
        ("2025-03", "llm", "internet-egress"): (20.0, "GB", 1.74),
        ("2025-03", "llm", "gcs-nearline"): (1.0, "GB-month", 0.01),  # 730 GiB-hours = 1 GB-month
    }
    assert report.rows_read == 12 and report.data_rows == 9
    cat = load_catalog()
    usage, gpu_report = load_usage(tmp_path / "focus.csv", instance_gpus=cat.instance_gpus(),
                                   known_gpu_types=cat.gpu_models())
    assert gpu_report.gpu_hours == pytest.approx(16.0)  # p4d.24xlarge 2 h x 8 GPUs; no data line counted


@pytest.mark.parametrize(("usage_type", "expected"), [
    ("TimedStorage-ByteHrs", ("object_storage", "s3-standard")),
    ("EUC1-TimedStorage-GlacierByteHrs", ("object_storage", "s3-glacier-flexible-retrieval")),
    ("EBS:VolumeUsage.piops", ("block_storage", "ebs-io1")),
    ("EBS:VolumeUsage", ("block_storage", "ebs-standard")),
    ("APN1-DataTransfer-xAZ-Out-Bytes", ("transfer", "inter-az")),
    ("USW2-USE1-AWS-In-Bytes", ("transfer", "inter-region-in")),
    ("BoxUsage:p5.48xlarge", None),
    ("EBSOptimized:g5.xlarge", None),
    ("Requests-Tier2", None),
    ("EarlyDelete-SIA", None),
])
def test_aws_usage_types_classify(usage_type, expected):
    assert classify_aws(usage_type) == expected


def test_meter_names_and_units():
    assert classify_named("Cool ZRS Data Stored") == ("object_storage", "azure-blob-cool")
    assert classify_named("Coldline Storage Europe") == ("object_storage", "gcs-coldline")
    assert classify_named("Hot LRS Write Operations") is None
    assert unit_factor("10 GB/Month", "object_storage", aws=False) == (10.0, "GB-month")
    assert unit_factor("1 TB/Month", "object_storage", aws=False) == (1024.0, "GB-month")
    assert unit_factor("GiB-Hours", "snapshot", aws=False) == (1 / 730, "GB-month")
    assert unit_factor("GB", "object_storage", aws=False) is None  # a storage row must be per month or hour
    assert unit_factor("1 GB", "transfer", aws=False) == (1.0, "GB")


def test_bad_quantity_in_a_data_row_names_its_row(tmp_path):
    rows = [*CUR_ROWS[:8], ("Usage", "2025-03", "EBS:VolumeUsage.gp3", "lots", 1.0, "llm", None)]
    with pytest.raises(UsageError) as info:
        load_data_lines(write_cur(tmp_path / "cur.csv", rows))
    assert info.value.row == 10 and info.value.column == "line_item_usage_amount"
    assert "'lots' is not a number" in str(info.value)


def test_bad_quantity_in_a_non_data_row_is_ignored(tmp_path):
    rows = [*CUR_ROWS[7:9], ("Usage", "2025-03", "Requests-Tier1", "n/a", 1.0, "llm", None)]
    frame, report = load_data_lines(write_cur(tmp_path / "cur.csv", rows))
    assert frame["cost_usd"].sum() == pytest.approx(34.50) and report.data_rows == 2


def test_export_without_data_lines_is_one_error(tmp_path):
    with pytest.raises(UsageError, match="no storage or data-transfer usage rows found among 3 rows"):
        load_data_lines(write_cur(tmp_path / "cur.csv", CUR_ROWS[:3]))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from app.cli import main; main()", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)


def test_cli_data_costs_writes_the_per_team_month_table(tmp_path):
    billing = write_cur(tmp_path / "cur.csv")
    out = tmp_path / "data_costs.csv"
    by_class_out = tmp_path / "by_class.csv"
    done = run_cli("data-costs", "--billing", str(billing), "--out", str(out), "--by-class-out", str(by_class_out))
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out).set_index(["month", "team"])
    assert list(table.columns) == ["storage_usd", "storage_gb_month", "egress_usd", "egress_gb", "transfer_usd",
                                   "total_usd", "total_change_usd", "total_change_pct"]
    assert table.loc[("2025-03", "llm"), "total_usd"] == pytest.approx(307.50)
    assert table["total_usd"].sum() == pytest.approx(473.95)
    assert table.loc[("2025-03", "llm"), "storage_usd"] == 198.5  # written without float noise
    classes = pd.read_csv(by_class_out)
    assert len(classes) == len(EXPECTED_CUR)
    assert "data costs 473.95 USD" in done.stdout


def test_cli_data_costs_json_and_errors(tmp_path):
    billing = write_cur(tmp_path / "cur.csv")
    done = run_cli("data-costs", "--billing", str(billing), "--output-format", "json")
    assert done.returncode == 0, done.stderr
    first = json.loads(done.stdout.splitlines()[0])
    assert "storage USD" in first["columns"]
    refused = run_cli("data-costs", "--billing", str(billing), "--out", str(billing))
    assert refused.returncode != 0 and refused.stderr.startswith("error:") and "Traceback" not in refused.stderr
    assert pd.read_csv(billing).shape[0] == len(CUR_ROWS)  # the input was not overwritten
    missing = run_cli("data-costs", "--billing", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and missing.stderr.startswith("error:") and "nope.csv" in missing.stderr


def test_legacy_cur_with_flat_tag_columns_gives_the_same_amounts(tmp_path):
    path = tmp_path / "legacy.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["lineItem/LineItemType", "lineItem/UsageStartDate", "lineItem/UsageEndDate", "lineItem/UsageType",
                    "lineItem/UsageAmount", "lineItem/UnblendedCost", "resourceTags/user:team",
                    "resourceTags/user:project"])
        for kind, month, utype, amount, cost, team, project in CUR_ROWS:
            w.writerow([kind, f"{month}-02T10:00:00Z", f"{month}-02T11:00:00Z", utype, amount, cost, team or "",
                        project or ""])
    frame, report = load_data_lines(path)
    assert report.format == "cur"
    assert as_dict(frame) == EXPECTED_CUR
    assert set(frame.loc[frame["team"] == "llm", "project"]) == {"pretrain"}


def test_cur2_parquet_with_map_resource_tags(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [CUR_ROWS[0], CUR_ROWS[7], CUR_ROWS[14], CUR_ROWS[12]]
    table = pa.table({
        "line_item_line_item_type": [r[0] for r in rows],
        "line_item_usage_start_date": pa.array([pd.Timestamp(f"{r[1]}-02T10:00:00Z") for r in rows]),
        "line_item_usage_type": [r[2] for r in rows],
        "line_item_usage_amount": [float(r[3]) for r in rows],
        "line_item_unblended_cost": [float(r[4]) for r in rows],
        "resource_tags": pa.array([[("user_team", r[5])] if r[5] else [] for r in rows],
                                  type=pa.map_(pa.string(), pa.string())),
    })
    path = tmp_path / "cur2.parquet"
    pq.write_table(table, path)
    frame, _ = load_data_lines(path)
    assert as_dict(frame) == {("2025-03", "llm", "s3-standard"): (1000.0, "GB-month", 23.00),
                              ("2025-03", "llm", "ebs-gp3"): (800.0, "GB-month", 64.00),
                              ("2025-03", "vision", "s3-intelligent-tiering"): (100.0, "GB-month", 2.30)}


GCP_HEADER = ["service.description", "sku.description", "usage_start_time", "usage_end_time", "project.id", "labels",
              "cost", "currency", "usage.amount", "usage.unit", "usage.amount_in_pricing_units", "usage.pricing_unit",
              "credits", "cost_type"]


def gcp_labels(team: str | None) -> str:
    return json.dumps([{"key": "team", "value": team}]) if team else "[]"


def test_gcp_billing_export_by_hand(tmp_path):
    gib_month_byte_seconds = 2**30 * 730 * 3600  # 1 GB-month in byte-seconds
    rows = [  # service, sku, project, team, cost, amount, unit, pricing amount, pricing unit, credits, cost type
        ("Compute Engine", "Nvidia Tesla A100 GPU running in Americas", "nlp-train", "nlp", 23.47, 28800, "seconds",
         8, "hour", "[]", "regular"),
        ("Cloud Storage", "Standard Storage US Multi-region", "nlp-train", "nlp", 26.00, 1000 * gib_month_byte_seconds,
         "byte-seconds", 1000, "gibibyte month", "[]", "regular"),
        ("Cloud Storage", "Nearline Storage Iowa", "nlp-train", None, 10.00, 1000 * gib_month_byte_seconds,
         "byte-seconds", "", "", "[]", "regular"),
        ("Cloud Storage", "Regional Standard Class A Operations", "nlp-train", "nlp", 0.50, 100000, "requests",
         10, "count", "[]", "regular"),
        ("Compute Engine", "Network Inter Region Data Transfer Out from Americas to EMEA", "vision-prod", "vision",
         2.00, 100 * 2**30, "bytes", 100, "gibibyte", '[{"name": "FreeTrial", "amount": -0.5}]', "regular"),
        ("Compute Engine", "Storage PD Capacity", "vision-prod", "vision", 4.00, 0, "byte-seconds", 100,
         "gibibyte month", "[]", "regular"),
        ("Cloud Storage", "Standard Storage US Multi-region", "nlp-train", "nlp", -1.00, 0, "byte-seconds", 0,
         "gibibyte month", "[]", "rounding_error"),
    ]
    path = tmp_path / "gcp.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(GCP_HEADER)
        for service, sku, proj, team, cost, amount, unit, pamount, punit, credits, ctype in rows:
            w.writerow([service, sku, "2025-11-03 00:00:00 UTC", "2025-11-03 01:00:00 UTC", proj, gcp_labels(team),
                        cost, "USD", amount, unit, pamount, punit, credits, ctype])
    frame, report = load_data_lines(path)
    assert report.format == "gcp"
    assert as_dict(frame) == {
        ("2025-11", "nlp", "gcs-standard"): (1000.0, "GB-month", 26.00),
        ("2025-11", UNALLOCATED_TEAM, "gcs-nearline"): (1000.0, "GB-month", 10.00),  # from byte-seconds
        ("2025-11", "vision", "inter-region"): (100.0, "GB", 1.50),  # cost + credits
        ("2025-11", "vision", "gcp-pd"): (100.0, "GB-month", 4.00),
    }
    assert set(frame["project"]) == {"nlp-train", "vision-prod"}  # project.id when no project label
    assert report.rows_read == 7 and report.data_rows == 4
    cat = load_catalog()
    usage, gpu_report = load_usage(path, instance_gpus=cat.instance_gpus(), known_gpu_types=cat.gpu_models())
    assert gpu_report.gpu_hours == pytest.approx(8.0)  # the A100 SKU row only


def test_malformed_tags_in_a_data_row_name_the_row(tmp_path):
    path = write_cur(tmp_path / "cur.csv", CUR_ROWS[7:9])
    text = path.read_text().splitlines()
    text[2] = text[2].replace('"{""user_team"": ""llm"", ""user_project"": ""pretrain""}"', '"{team: llm"')
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(UsageError) as info:
        load_data_lines(path)
    assert info.value.row == 3 and info.value.column == "resource_tags"


def test_a_formula_team_name_is_written_as_text(tmp_path):
    billing = write_cur(tmp_path / "cur.csv", [("Usage", "2025-03", "TimedStorage-ByteHrs", 10, 0.23,
                                                 "=HYPERLINK(\"http://x\")", None)])
    out = tmp_path / "data_costs.csv"
    done = run_cli("data-costs", "--billing", str(billing), "--out", str(out))
    assert done.returncode == 0, done.stderr
    written = pd.read_csv(out)["team"].tolist()
    assert written == ["'=HYPERLINK(\"http://x\")"]


def test_tag_key_picks_the_tag_that_names_the_team(tmp_path):
    frame, _ = load_data_lines(write_cur(tmp_path / "cur.csv"), tag_key="project", project_key="team")
    # llm's lines carry project 'pretrain'; vision's carry none
    assert set(frame["team"]) == {"pretrain", UNALLOCATED_TEAM}
    assert frame.loc[frame["team"] == "pretrain", "cost_usd"].sum() == pytest.approx(307.50 + 73.00)


def test_a_unit_that_cannot_be_converted_keeps_the_cost_and_says_so(tmp_path):
    path = tmp_path / "focus.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(FOCUS_HEADER)
        w.writerow(["2025-03-01T00:00:00Z", "2025-03-01T01:00:00Z", "Usage", "Microsoft", "Storage", "Storage",
                    "Cool LRS Data Stored", "Cool LRS Data Stored", 3, "1 Object", 0.30, 0.30, "{}"])
    frame, report = load_data_lines(path)
    assert frame["cost_usd"].tolist() == [0.30] and frame["quantity"].isna().all()
    assert any("1 Object (1 meter)" in n for n in report.notes)
