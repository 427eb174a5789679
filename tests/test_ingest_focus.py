"""FOCUS billing exports (1.0 to 1.3) -> canonical GPU usage (usage.ingest.focus).

GPUs per instance from the shipped catalog: p4d.24xlarge 8 (A100), p5.48xlarge 8 (H100), g5.xlarge 1
(A10G), g6.xlarge 1 (L4).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from optimizer.catalog import load_catalog
from usage.ingest import load_usage
from usage.schema import UNALLOCATED_TEAM, UsageError

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture(scope="module")
def focus12(catalog):
    return load_usage(FIXTURES / "focus12_aws.csv", instance_gpus=catalog.instance_gpus(),
                      known_gpu_types=catalog.gpu_models())


def cell(usage: pd.DataFrame, team: str, gpu: str, hour: str, col: str = "gpus"):
    at = usage["timestamp"] == pd.Timestamp(hour)
    rows = usage[(usage["team"] == team) & (usage["gpu_type"] == gpu) & at]
    assert len(rows) == 1, (team, gpu, hour)
    return rows[col].iloc[0]


def test_focus12_gpu_hours_are_instance_hours_times_gpus(focus12):
    usage, report = focus12
    assert report.format == "focus"
    # 2 p4d instance-hours x 8 GPUs, found through SkuMeter USE1-BoxUsage:p4d.24xlarge
    assert cell(usage, "ml-research", "NVIDIA A100", "2025-03-01 00:00") == 16.0
    # next hour tagged with the AWS user-defined prefix user:team
    assert cell(usage, "ml-research", "NVIDIA A100", "2025-03-01 01:00") == 8.0
    # 3 g5.xlarge instance-hours x 1 GPU, found through SkuPriceDetails {"InstanceType": "g5.xlarge"}
    assert cell(usage, "inference", "NVIDIA A10G", "2025-03-01 00:00") == 3.0
    # 1 p5.48xlarge hour x 8 GPUs, found through ResourceType, Tags {} -> unallocated
    assert cell(usage, UNALLOCATED_TEAM, "NVIDIA H100", "2025-03-01 00:00") == 8.0
    assert report.gpu_hours == pytest.approx(35.0)
    assert usage["gpus"].sum() == pytest.approx(35.0)


def test_focus12_drops_non_gpu_rows(focus12):
    usage, report = focus12
    # m5 usage, EBSOptimized:p4d meter, data transfer (GB), unused RI hour, RI purchase, tax
    assert report.rows_read == 10
    assert report.gpu_rows_kept == 4
    assert set(usage["instance_type"].dropna()) == {"p4d.24xlarge", "g5.xlarge", "p5.48xlarge"}
    assert "6 rows dropped" in "\n".join(report.lines())


def test_focus12_untagged_share_purchase_option_and_cost(focus12):
    usage, report = focus12
    assert report.untagged_gpu_hours == pytest.approx(8.0)
    assert report.untagged_share == pytest.approx(8.0 / 35.0)
    assert "untagged share: 22.9%" in "\n".join(report.lines())
    assert cell(usage, "inference", "NVIDIA A10G", "2025-03-01 00:00", "purchase_option") == "spot"  # Dynamic
    assert cell(usage, UNALLOCATED_TEAM, "NVIDIA H100", "2025-03-01 00:00", "purchase_option") == "reserved"
    assert cell(usage, "ml-research", "NVIDIA A100", "2025-03-01 00:00", "purchase_option") == "on_demand"
    assert cell(usage, "ml-research", "NVIDIA A100", "2025-03-01 00:00", "cost_usd") == pytest.approx(65.54)
    # the fixture has SkuMeter/SkuPriceDetails (FOCUS 1.1+) but no column that FOCUS 1.2 added
    assert "FOCUS 1.1 export (by its columns: SkuMeter is new in 1.1)" in report.notes


def focus13_table() -> pa.Table:
    """FOCUS 1.3 export: ServiceProviderName (no ProviderName), Tags as a Parquet MAP, one daily row."""
    utc = pa.timestamp("ms", tz="UTC")
    t = pd.Timestamp
    rows = [
        # hourly p5.48xlarge, 1 instance-hour -> 8 GPU-hours in hour 00, team llm
        (t("2025-04-01 00:00"), t("2025-04-01 01:00"), "Usage", 1.0, "Hours", "Standard",
         "USE1-BoxUsage:p5.48xlarge", [("team", "llm")], 55.04),
        # daily g6.xlarge, 24 instance-hours -> 1 GPU in each hour of the day, team inference
        (t("2025-04-01 00:00"), t("2025-04-02 00:00"), "Usage", 24.0, "Hours", "Standard",
         "USE1-BoxUsage:g6.xlarge", [("team", "inference")], 19.3),
        # spot through the meter alone, 2 instance-hours -> 2 GPU-hours at 05:00, untagged
        (t("2025-04-01 05:00"), t("2025-04-01 06:00"), "Usage", 2.0, "Hours", None,
         "USE1-SpotUsage:g6.xlarge", [], 0.6),
        # not a GPU instance
        (t("2025-04-01 00:00"), t("2025-04-01 01:00"), "Usage", 3.0, "Hours", "Standard",
         "USE1-BoxUsage:c5.large", [("team", "llm")], 0.25),
    ]
    cols = list(zip(*rows, strict=True))
    return pa.table({
        "ChargePeriodStart": pa.array(cols[0], type=utc), "ChargePeriodEnd": pa.array(cols[1], type=utc),
        "ChargeCategory": pa.array(cols[2]), "ConsumedQuantity": pa.array(cols[3], type=pa.float64()),
        "ConsumedUnit": pa.array(cols[4]), "PricingCategory": pa.array(cols[5], type=pa.string()),
        "ServiceProviderName": pa.array(["Amazon Web Services"] * len(rows)),
        "HostProviderName": pa.array(["Amazon Web Services"] * len(rows)),
        "SkuMeter": pa.array(cols[6]),
        "SkuPriceDetails": pa.array([json.dumps({"CoreCount": 8})] * len(rows)),
        "Tags": pa.array(cols[7], type=pa.map_(pa.string(), pa.string())),
        "EffectiveCost": pa.array(cols[8], type=pa.float64()),
    })


def test_focus13_parquet_map_tags_and_daily_rows(tmp_path, catalog):
    path = tmp_path / "focus13.parquet"
    pq.write_table(focus13_table(), path)
    usage, report = load_usage(path, instance_gpus=catalog.instance_gpus(),
                               known_gpu_types=catalog.gpu_models())
    assert report.format == "focus"
    assert "FOCUS 1.3 export (by its columns: ServiceProviderName is new in 1.3)" in report.notes
    assert report.rows_read == 4 and report.gpu_rows_kept == 3
    assert cell(usage, "llm", "NVIDIA H100", "2025-04-01 00:00") == 8.0
    inference = usage[usage["team"] == "inference"]
    assert len(inference) == 24 and (inference["gpus"] == 1.0).all()
    assert inference["cost_usd"].sum() == pytest.approx(19.3)
    assert cell(usage, UNALLOCATED_TEAM, "NVIDIA L4", "2025-04-01 05:00") == 2.0
    assert cell(usage, UNALLOCATED_TEAM, "NVIDIA L4", "2025-04-01 05:00", "purchase_option") == "spot"
    assert report.gpu_hours == pytest.approx(34.0)
    assert report.untagged_share == pytest.approx(2.0 / 34.0)
    assert any("spread evenly" in n for n in report.notes)


def test_custom_tag_key(tmp_path, catalog):
    frame = pd.read_csv(FIXTURES / "focus12_aws.csv", dtype=str, keep_default_na=False)
    tags = frame["Tags"].str.replace('"team"', '"cost-center"')
    frame["Tags"] = tags.str.replace('"user:team"', '"cost-center"')
    path = tmp_path / "focus_cc.csv"
    frame.to_csv(path, index=False)
    usage, report = load_usage(path, tag_key="cost-center", instance_gpus=catalog.instance_gpus())
    assert set(usage["team"]) == {"ml-research", "inference", UNALLOCATED_TEAM}
    # with the default key nothing is tagged, and the report says so
    usage, report = load_usage(path, instance_gpus=catalog.instance_gpus())
    assert set(usage["team"]) == {UNALLOCATED_TEAM}
    assert report.untagged_share == pytest.approx(1.0)
    assert any("no GPU row carries tag 'team'" in n for n in report.notes)


def test_no_gpu_rows_error_names_checked_columns(tmp_path, catalog):
    frame = pd.read_csv(FIXTURES / "focus12_aws.csv", dtype=str, keep_default_na=False).iloc[[3, 5, 8]]
    path = tmp_path / "no_gpu.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(UsageError) as info:
        load_usage(path, instance_gpus=catalog.instance_gpus())
    text = str(info.value)
    assert text.startswith(f"{path}, column 'SkuMeter': no GPU instance usage rows found among 3 rows")
    assert "SkuMeter, SkuPriceDetails, ResourceType" in text and "\n" not in text


def test_bad_timestamp_in_gpu_row_names_csv_line(tmp_path, catalog):
    frame = pd.read_csv(FIXTURES / "focus12_aws.csv", dtype=str, keep_default_na=False)
    frame.loc[3, "ChargePeriodStart"] = "not-a-date"      # m5 row: not GPU, ignored
    frame.loc[9, "ChargePeriodStart"] = "03/01/2025 1am"  # p4d row: GPU, CSV line 11
    path = tmp_path / "bad_ts.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(UsageError) as info:
        load_usage(path, instance_gpus=catalog.instance_gpus())
    err = info.value
    assert (err.source, err.row, err.column) == (str(path), 11, "ChargePeriodStart")
    assert "'03/01/2025 1am'" in str(err)


def test_bad_quantity_and_bad_tags_json(tmp_path, catalog):
    frame = pd.read_csv(FIXTURES / "focus12_aws.csv", dtype=str, keep_default_na=False)
    bad_qty = frame.copy()
    bad_qty.loc[1, "ConsumedQuantity"] = "three"
    bad_qty.loc[1, "PricingQuantity"] = ""
    path = tmp_path / "bad_qty.csv"
    bad_qty.to_csv(path, index=False)
    with pytest.raises(UsageError) as info:
        load_usage(path, instance_gpus=catalog.instance_gpus())
    assert (info.value.row, info.value.column) == (3, "ConsumedQuantity")

    bad_tags = frame.copy()
    bad_tags.loc[0, "Tags"] = "team=ml-research"
    path = tmp_path / "bad_tags.csv"
    bad_tags.to_csv(path, index=False)
    with pytest.raises(UsageError, match="is not a JSON object") as info:
        load_usage(path, instance_gpus=catalog.instance_gpus())
    assert (info.value.row, info.value.column) == (2, "Tags")


def test_folder_of_export_parts(tmp_path, catalog):
    frame = pd.read_csv(FIXTURES / "focus12_aws.csv", dtype=str, keep_default_na=False)
    parts = tmp_path / "export"
    (parts / "part-b").mkdir(parents=True)
    frame.iloc[:5].to_csv(parts / "part-0.csv", index=False)
    frame.iloc[5:].to_csv(parts / "part-b" / "part-1.csv.gz", index=False)
    usage, report = load_usage(parts, instance_gpus=catalog.instance_gpus())
    assert report.rows_read == 10 and report.gpu_hours == pytest.approx(35.0)
