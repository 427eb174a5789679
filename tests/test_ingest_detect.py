"""Format detection, file handling and canonical files (usage.ingest)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from optimizer.catalog import load_catalog
from usage.ingest import IngestReport, detect_format, load_usage, missing_columns
from usage.schema import UNALLOCATED_TEAM, UsageError, ValidationReport

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_detect_canonical_focus_cur():
    assert detect_format(["timestamp", "team", "gpu_type", "gpus", "cost_usd"]) == "canonical"
    assert detect_format(["ChargePeriodStart", "ConsumedQuantity", "ProviderName", "Tags"]) == "focus"
    # FOCUS 1.3: ServiceProviderName instead of the deprecated ProviderName, PricingQuantity only
    assert detect_format(["ChargePeriodStart", "PricingQuantity", "ServiceProviderName"]) == "focus"
    assert detect_format(["line_item_usage_start_date", "line_item_line_item_type", "line_item_usage_type",
                          "line_item_usage_amount", "resource_tags"]) == "cur"
    assert detect_format(["lineItem/UsageStartDate", "lineItem/LineItemType", "lineItem/UsageType",
                          "lineItem/UsageAmount", "resourceTags/user:team"]) == "cur"


def test_detect_error_names_file_and_expected_formats():
    with pytest.raises(UsageError) as info:
        detect_format(["date", "cost", "service"], source="bill.csv")
    text = str(info.value)
    assert text.startswith("bill.csv")
    assert "\n" not in text
    for expected in ("timestamp, team, gpu_type, gpus", "ChargePeriodStart", "line_item_usage_start_date",
                     "lineItem/UsageStartDate"):
        assert expected in text


def test_detect_error_points_at_nearest_format():
    with pytest.raises(UsageError, match="closest is focus, which lacks ProviderName|ServiceProviderName"):
        detect_format(["ChargePeriodStart", "ConsumedQuantity", "Tags"], source="f.csv")
    assert missing_columns("focus", ["ChargePeriodStart", "ConsumedQuantity", "Tags"]) == [
        "ProviderName|ServiceProviderName"]


def test_unsupported_extension_and_missing_file(tmp_path):
    bad = tmp_path / "usage.xlsx"
    bad.write_text("x")
    with pytest.raises(UsageError, match=r"usage\.xlsx: unsupported file type '\.xlsx'.*\.csv, \.csv\.gz"):
        load_usage(bad)
    with pytest.raises(UsageError, match="file not found"):
        load_usage(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(UsageError, match="empty.csv: file is empty"):
        load_usage(tmp_path / "empty.csv")


def test_unreadable_parquet_is_one_line_usage_error(tmp_path):
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"not a parquet file at all")
    with pytest.raises(UsageError) as info:
        load_usage(bad)
    assert str(info.value).startswith(str(bad))
    assert "cannot read PARQUET file" in str(info.value)
    assert "\n" not in str(info.value)


def test_explicit_format_with_missing_columns(tmp_path, catalog):
    path = tmp_path / "usage.csv"
    pd.DataFrame({"timestamp": ["2025-01-01T00:00:00Z"], "team": ["a"], "gpu_type": ["NVIDIA A100"],
                  "gpus": [1.0]}).to_csv(path, index=False)
    with pytest.raises(UsageError, match="missing column 'ChargePeriodStart' for FOCUS"):
        load_usage(path, "focus", instance_gpus=catalog.instance_gpus())
    with pytest.raises(ValueError, match="unknown format"):
        load_usage(path, "xlsx")


def test_billing_format_needs_instance_gpus():
    with pytest.raises(ValueError, match="instance_gpus"):
        load_usage(FIXTURES / "cur2.csv")


def test_canonical_csv_gz_round_trip(tmp_path, catalog):
    path = tmp_path / "usage.csv.gz"
    pd.DataFrame({
        "timestamp": ["2025-01-01T00:00:00Z", "2025-01-01T02:00:00Z", "2025-01-01T00:00:00Z"],
        "team": ["nlp", "nlp", UNALLOCATED_TEAM], "gpu_type": ["NVIDIA A100"] * 3, "gpus": [8.0, 4.0, 2.0],
    }).to_csv(path, index=False)
    usage, report = load_usage(path, known_gpu_types=catalog.gpu_models())
    assert report.format == "canonical"
    assert report.rows_read == 3 and report.gpu_rows_kept == 3
    # the missing 01:00 hour of nlp is filled with 0 GPUs
    assert usage[usage["team"] == "nlp"]["gpus"].tolist() == [8.0, 0.0, 4.0]
    assert report.gpu_hours == pytest.approx(14.0)
    assert report.untagged_share == pytest.approx(2.0 / 14.0)
    text = "\n".join(report.lines())
    assert "rows read: 3" in text and "untagged share: 14.3%" in text and "1 missing hours filled" in text


def test_canonical_csv_with_excel_bom(tmp_path):
    path = tmp_path / "excel.csv"
    text = "timestamp,team,gpu_type,gpus\n2025-01-01T00:00:00Z,nlp,NVIDIA A100,8\n"
    path.write_bytes(text.encode("utf-8-sig"))
    usage, report = load_usage(path)
    assert report.format == "canonical" and usage["gpus"].tolist() == [8.0]


def test_canonical_error_names_file_line_and_column(tmp_path):
    path = tmp_path / "usage.csv"
    path.write_text("timestamp,team,gpu_type,gpus\n"
                    "2025-01-01T00:00:00Z,nlp,NVIDIA A100,8\n"
                    "2025-01-01T01:00:00Z,nlp,NVIDIA A100,lots\n")
    with pytest.raises(UsageError) as info:
        load_usage(path)
    err = info.value
    assert (err.source, err.row, err.column) == (str(path), 3, "gpus")
    assert "'lots' is not a number" in str(err)


def test_canonical_parquet(tmp_path, catalog):
    path = tmp_path / "usage.pq"
    pd.DataFrame({"timestamp": pd.to_datetime(["2025-01-01 00:00", "2025-01-01 01:00"]), "team": ["cv", "cv"],
                  "gpu_type": ["NVIDIA L4"] * 2, "gpus": [1.5, 2.5]}).to_parquet(path)
    usage, report = load_usage(path, known_gpu_types=catalog.gpu_models())
    assert report.format == "canonical"
    assert usage["gpus"].sum() == pytest.approx(4.0)


def test_report_without_gpu_hours_has_zero_share():
    validation = ValidationReport(rows_in=0, rows_out=0, series=0, start=None, end=None)
    report = IngestReport(source="x", format="canonical", rows_read=0, gpu_rows_kept=0, gpu_hours=0.0,
                          untagged_gpu_hours=0.0, validation=validation)
    assert report.untagged_share == 0.0
    assert report.lines()[1] == "rows read: 0"
