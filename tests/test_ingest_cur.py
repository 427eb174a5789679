"""AWS CUR 2.0 and legacy CUR exports -> canonical GPU usage (usage.ingest.cur).

GPUs per instance from the shipped catalog: p4d.24xlarge 8 (A100), g5.xlarge 1 (A10G),
g6e.12xlarge 4 (L40S), p5.48xlarge 8 (H100).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from optimizer.catalog import load_catalog
from usage.ingest import load_usage
from usage.ingest.readers import normalize_name
from usage.schema import UNALLOCATED_TEAM, UsageError

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"
HOUR = "2025-03-02 10:00"


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def by_team(usage: pd.DataFrame) -> dict[tuple[str, str], float]:
    return {(r.team, r.gpu_type): r.gpus for r in usage.itertuples()}


def options(usage: pd.DataFrame) -> dict[tuple[str, str], str]:
    return {(r.team, r.gpu_type): r.purchase_option for r in usage.itertuples()}


EXPECTED = {
    ("ml-research", "NVIDIA A10G"): 4.0,    # USE2-BoxUsage:g5.xlarge, 4 h x 1 GPU
    ("ml-research", "NVIDIA A100"): 8.0,    # SpotUsage:p4d.24xlarge, 1 h x 8 GPUs
    ("vision", "NVIDIA A100"): 16.0,        # DiscountedUsage BoxUsage:p4d.24xlarge, 2 h x 8 GPUs
    (UNALLOCATED_TEAM, "NVIDIA L40S"): 4.0,  # SavingsPlanCoveredUsage USW2-BoxUsage:g6e.12xlarge, 1 h x 4
}
EXPECTED_OPTIONS = {("ml-research", "NVIDIA A10G"): "on_demand", ("ml-research", "NVIDIA A100"): "spot",
                    ("vision", "NVIDIA A100"): "reserved", (UNALLOCATED_TEAM, "NVIDIA L40S"): "savings_plan"}


def check_fixture_result(usage: pd.DataFrame, report) -> None:
    assert report.format == "cur"
    assert (usage["timestamp"] == pd.Timestamp(HOUR)).all()
    assert by_team(usage) == EXPECTED
    assert options(usage) == EXPECTED_OPTIONS
    # RIFee, Tax, m5.large, EBSOptimized:g5.xlarge and SavingsPlanNegation are dropped
    assert report.rows_read == 9 and report.gpu_rows_kept == 4
    assert report.gpu_hours == pytest.approx(32.0)
    assert report.untagged_share == pytest.approx(4.0 / 32.0)


def test_cur2_csv_with_json_resource_tags(catalog):
    usage, report = load_usage(FIXTURES / "cur2.csv", instance_gpus=catalog.instance_gpus(),
                               known_gpu_types=catalog.gpu_models())
    check_fixture_result(usage, report)
    assert "CUR 2.0 export" in report.notes
    costs = {(r.team, r.gpu_type): r.cost_usd for r in usage.itertuples()}
    # DiscountedUsage costs its amortised reservation_effective_cost, SP-covered its SP effective cost
    assert costs[("vision", "NVIDIA A100")] == pytest.approx(40.0)
    assert costs[(UNALLOCATED_TEAM, "NVIDIA L40S")] == pytest.approx(7.0)
    assert costs[("ml-research", "NVIDIA A100")] == pytest.approx(9.83)


def test_legacy_cur_csv_with_flat_tag_columns(catalog):
    usage, report = load_usage(FIXTURES / "cur_legacy.csv", instance_gpus=catalog.instance_gpus())
    check_fixture_result(usage, report)
    assert "legacy CUR export" in report.notes


def test_legacy_cur_through_athena_names(tmp_path, catalog):
    frame = pd.read_csv(FIXTURES / "cur_legacy.csv", dtype=str, keep_default_na=False)
    frame.columns = [normalize_name(c) for c in frame.columns]
    assert "resource_tags_user_team" in frame.columns and "line_item_usage_start_date" in frame.columns
    path = tmp_path / "athena.csv"
    frame.to_csv(path, index=False)
    usage, report = load_usage(path, instance_gpus=catalog.instance_gpus())
    check_fixture_result(usage, report)
    assert "legacy CUR via Athena export" in report.notes


def cur2_parquet_table() -> pa.Table:
    """The cur2.csv rows as a CUR 2.0 Parquet export: timestamps typed, resource_tags a MAP."""
    frame = pd.read_csv(FIXTURES / "cur2.csv", keep_default_na=False)
    tags = [list(json.loads(t).items()) for t in frame["resource_tags"]]

    def to_float(col: str) -> pd.Series:
        return pd.to_numeric(frame[col], errors="coerce")

    def naive(values: pd.Series) -> pd.Series:
        return pd.to_datetime(values).dt.tz_localize(None)

    return pa.table({
        "line_item_line_item_type": frame["line_item_line_item_type"],
        "line_item_usage_start_date": pa.array(naive(frame["line_item_usage_start_date"])),
        "line_item_usage_end_date": pa.array(naive(frame["line_item_usage_end_date"])),
        "line_item_usage_type": frame["line_item_usage_type"],
        "line_item_usage_amount": to_float("line_item_usage_amount"),
        "line_item_unblended_cost": to_float("line_item_unblended_cost"),
        "pricing_term": frame["pricing_term"],
        "reservation_effective_cost": to_float("reservation_effective_cost"),
        "savings_plan_savings_plan_effective_cost": to_float("savings_plan_savings_plan_effective_cost"),
        "resource_tags": pa.array(tags, type=pa.map_(pa.string(), pa.string())),
    })


def test_cur2_parquet_with_map_resource_tags(tmp_path, catalog):
    path = tmp_path / "cur2.parquet"
    pq.write_table(cur2_parquet_table(), path)
    usage, report = load_usage(path, instance_gpus=catalog.instance_gpus(),
                               known_gpu_types=catalog.gpu_models())
    check_fixture_result(usage, report)


def test_tag_key_is_normalised_like_cur2_keys(tmp_path, catalog):
    frame = pd.read_csv(FIXTURES / "cur2.csv", dtype=str, keep_default_na=False)
    frame["resource_tags"] = frame["resource_tags"].str.replace("user_team", "user_cost_center")
    path = tmp_path / "cc.csv"
    frame.to_csv(path, index=False)
    usage, _ = load_usage(path, tag_key="CostCenter", instance_gpus=catalog.instance_gpus())
    assert ("vision", "NVIDIA A100") in by_team(usage)


def test_daily_cur_rows_are_spread_over_the_day(tmp_path, catalog):
    path = tmp_path / "daily.csv"
    pd.DataFrame({
        "line_item_line_item_type": ["Usage"],
        "line_item_usage_start_date": ["2025-03-02T00:00:00Z"],
        "line_item_usage_end_date": ["2025-03-03T00:00:00Z"],
        "line_item_usage_type": ["EUC1-BoxUsage:p4d.24xlarge"], "line_item_usage_amount": [12.0],
        "resource_tags": ['{"user_team": "llm"}'],
    }).to_csv(path, index=False)
    usage, report = load_usage(path, instance_gpus=catalog.instance_gpus())
    # 12 instance-hours x 8 GPUs = 96 GPU-hours over 24 hours = 4 GPUs each hour
    assert len(usage) == 24 and (usage["gpus"] == 4.0).all()
    assert report.gpu_hours == pytest.approx(96.0)


def test_bad_amount_in_gpu_row_names_row_and_column(tmp_path, catalog):
    frame = pd.read_csv(FIXTURES / "cur_legacy.csv", dtype=str, keep_default_na=False)
    frame.loc[6, "lineItem/UsageAmount"] = "n/a"   # m5.large: ignored
    frame.loc[2, "lineItem/UsageAmount"] = "two"   # p4d DiscountedUsage: CSV line 4
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(UsageError) as info:
        load_usage(path, instance_gpus=catalog.instance_gpus())
    assert (info.value.source, info.value.row, info.value.column) == (str(path), 4, "lineItem/UsageAmount")


def test_bad_row_in_second_part_names_that_part(tmp_path, catalog):
    frame = pd.read_csv(FIXTURES / "cur2.csv", dtype=str, keep_default_na=False)
    parts = tmp_path / "cur-2025-03"
    parts.mkdir()
    frame.iloc[:5].to_csv(parts / "part-00001.csv.gz", index=False)
    second = frame.iloc[5:].reset_index(drop=True)
    second.loc[1, "resource_tags"] = "{user_team: ml-research"   # m5.large row: not GPU, ignored
    second.loc[3, "line_item_usage_start_date"] = "tomorrow"      # SP-negation row: not usage, ignored
    second.loc[2, "line_item_usage_type"] = "BoxUsage:g5.xlarge"
    second.loc[2, "resource_tags"] = "team=vision"                # now a GPU row: CSV line 4 of part 2
    second.to_csv(parts / "part-00002.csv.gz", index=False)
    with pytest.raises(UsageError) as info:
        load_usage(parts, instance_gpus=catalog.instance_gpus())
    err = info.value
    assert (Path(err.source).name, err.row, err.column) == ("part-00002.csv.gz", 4, "resource_tags")


def test_no_gpu_rows(tmp_path, catalog):
    frame = pd.read_csv(FIXTURES / "cur2.csv", dtype=str, keep_default_na=False).iloc[4:8]
    path = tmp_path / "cpu_only.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(UsageError, match="no GPU instance usage rows found among 4 rows") as info:
        load_usage(path, instance_gpus=catalog.instance_gpus())
    assert info.value.column == "line_item_usage_type"


@pytest.mark.slow
def test_million_row_cur_parquet_matches_numpy(tmp_path, catalog):
    rng = np.random.default_rng(7)
    n = 1_000_000
    types = np.array(["BoxUsage:p4d.24xlarge", "USE2-BoxUsage:g5.xlarge", "SpotUsage:g6e.12xlarge",
                      "BoxUsage:m5.large", "USW2-BoxUsage:p5.48xlarge", "EBSOptimized:p4d.24xlarge"])
    gpus = np.array([8.0, 1.0, 4.0, 0.0, 8.0, 0.0])
    items = np.array(["Usage", "Usage", "DiscountedUsage", "SavingsPlanCoveredUsage", "Tax", "RIFee"])
    teams = np.array(["llm", "vision", "search", ""])
    t_idx, i_idx = rng.integers(0, len(types), n), rng.integers(0, len(items), n)
    team_idx = rng.integers(0, len(teams), n)
    hours = rng.integers(0, 24 * 30, n)
    amount = np.round(rng.random(n), 3)
    start = np.datetime64("2025-01-01T00:00:00") + hours.astype("timedelta64[h]")

    tagged = teams[team_idx] != ""
    offsets = np.concatenate([[0], np.cumsum(tagged)]).astype(np.int32)
    tags = pa.MapArray.from_arrays(pa.array(offsets), pa.array(np.full(int(tagged.sum()), "user_team")),
                                   pa.array(teams[team_idx][tagged]))
    table = pa.table({
        "line_item_line_item_type": pa.array(items[i_idx]),
        "line_item_usage_start_date": pa.array(start.astype("datetime64[ms]")),
        "line_item_usage_end_date": pa.array((start + np.timedelta64(1, "h")).astype("datetime64[ms]")),
        "line_item_usage_type": pa.array(types[t_idx]),
        "line_item_usage_amount": pa.array(amount),
        "line_item_unblended_cost": pa.array(amount * 3.0),
        "resource_tags": tags,
    })
    path = tmp_path / "cur_1m.parquet"
    pq.write_table(table, path, row_group_size=250_000)

    usage, report = load_usage(path, instance_gpus=catalog.instance_gpus())

    keep = np.isin(items[i_idx], ["Usage", "DiscountedUsage", "SavingsPlanCoveredUsage"]) & (gpus[t_idx] > 0)
    gpu_hours = amount * gpus[t_idx]
    assert report.rows_read == n
    assert report.gpu_rows_kept == int(keep.sum())
    assert report.gpu_hours == pytest.approx(gpu_hours[keep].sum(), rel=1e-9)
    assert report.untagged_gpu_hours == pytest.approx(gpu_hours[keep & ~tagged].sum(), rel=1e-9)
    totals = usage.groupby("team")["gpus"].sum()
    for team in ("llm", "vision", "search"):
        assert totals[team] == pytest.approx(gpu_hours[keep & (teams[team_idx] == team)].sum(), rel=1e-9)
    assert set(usage["gpu_type"]) == {"NVIDIA A100", "NVIDIA A10G", "NVIDIA L40S", "NVIDIA H100"}
    assert usage["timestamp"].nunique() == 24 * 30
