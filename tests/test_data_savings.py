"""Savings that can be acted on in data costs (operate.data_savings), their price file, its Price List refresh
(botocore Stubber, never the internet) and ``gpuplan data-savings`` (issue 17, item 3).

Every export is written by hand here, so each expected saving is arithmetic a reader can redo: GB is the billed
GB of 2^30 bytes and "1 TB" is 1,024 GB; storage prices are USD per GB-month, retrieval and transfer USD per GB.
The published prices are written in the tests with their source (``data_samples/prices/AWS_DATA_PRICES_SOURCE.md``)
and the shipped price file must agree with them.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import botocore.session
import pandas as pd
import pytest
from botocore.stub import Stubber

from operate.data_prices_refresh import refresh_data_prices, write_prices
from operate.data_savings import (
    COLOCATE_TRANSFER,
    LIFECYCLE,
    SNAPSHOT_RETENTION,
    UNATTACHED_VOLUME,
    SavingsPolicy,
    find_savings,
    load_policy,
    load_prices,
    load_volumes,
    savings_frame,
)
from optimizer.catalog_refresh import RefreshError
from usage.ingest.data_lines import DETAIL_COLUMNS, load_data_lines, load_detail_lines
from usage.schema import UsageError

ROOT = Path(__file__).resolve().parents[1]
HEADER = ["identity_line_item_id", "line_item_line_item_type", "line_item_usage_start_date",
          "line_item_usage_end_date", "line_item_usage_type", "line_item_usage_amount", "line_item_unblended_cost",
          "line_item_resource_id", "resource_tags"]
TB_GB = 1024.0  # 1 TB as AWS bills it: 1,024 GB of 2^30 bytes

# Published us-east-1 list prices (USD per GB-month / per GB), usage.ai "Complete S3 Storage Class Pricing Table
# (US East, May 2026)", cross-checked in AWS_DATA_PRICES_SOURCE.md
PUBLISHED_STANDARD = 0.023
PUBLISHED_STANDARD_IA = 0.0125
PUBLISHED_GLACIER_IR = 0.004
PUBLISHED_RETRIEVAL_IA = 0.01
PUBLISHED_RETRIEVAL_GIR = 0.03
PUBLISHED_SNAPSHOT = 0.05  # factualminds.com, us-east-1 as of June 2026
PUBLISHED_GP3 = 0.08  # same page
PUBLISHED_INTER_REGION = 0.02  # redresscompliance.com rate table, us-east-1 to us-west-2
PUBLISHED_INTER_AZ = 0.01  # usage.ai data transfer table, 2026-06-02, per direction


def tags(team: str | None, project: str | None = None) -> str:
    t = {}
    if team:
        t["user_team"] = team
    if project:
        t["user_project"] = project
    return json.dumps(t) if t else ""


def write_cur(path: Path, rows: list[tuple]) -> Path:
    """rows: (month, usage type, amount, cost, resource id, team, project)."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for i, (month, usage, amount, cost, resource, team, project) in enumerate(rows):
            w.writerow([f"id{i}", "Usage", f"{month}-01T00:00:00Z", f"{month}-02T00:00:00Z", usage, amount, cost,
                        resource, tags(team, project)])
    return path


def one_tb_unread(months: tuple[str, ...] = ("2025-03", "2025-04", "2025-05")) -> list[tuple]:
    """1 TB in Standard for team llm, project ckpt, written (PUT) but never read; a second project read in May."""
    rows = []
    for m in months:
        rows += [(m, "TimedStorage-ByteHrs", TB_GB, TB_GB * 0.023, "llm-ckpt-bucket", "llm", "ckpt"),
                 (m, "Requests-Tier1", 20000, 0.10, "llm-ckpt-bucket", "llm", "ckpt"),
                 (m, "TimedStorage-ByteHrs", 500, 11.5, "llm-data-bucket", "llm", "data")]
    rows.append((months[-1], "Requests-Tier2", 1_000_000, 0.40, "llm-data-bucket", "llm", "data"))
    return rows


@pytest.fixture(scope="module")
def prices():
    return load_prices()


def load(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame, _ = load_data_lines(path)
    return frame, load_detail_lines(path)


def lifecycle(savings, project="ckpt"):
    return [s for s in savings if s.kind == LIFECYCLE and s.project == project]


# --- the shipped price file ------------------------------------------------------------------------------------


def test_shipped_prices_are_the_published_ones_with_a_dated_source(prices):
    for item, published in (("s3-standard", PUBLISHED_STANDARD), ("s3-standard-ia", PUBLISHED_STANDARD_IA),
                            ("s3-glacier-instant-retrieval", PUBLISHED_GLACIER_IR),
                            ("retrieval-s3-standard-ia", PUBLISHED_RETRIEVAL_IA),
                            ("retrieval-s3-glacier-instant-retrieval", PUBLISHED_RETRIEVAL_GIR),
                            ("ebs-snapshot", PUBLISHED_SNAPSHOT), ("ebs-gp3", PUBLISHED_GP3),
                            ("transfer-inter-region", PUBLISHED_INTER_REGION),
                            ("transfer-inter-az", PUBLISHED_INTER_AZ)):
        assert prices.price(item, "us-east-1") == published, item
    assert (prices.table["source"].str.len() > 10).all()
    assert (prices.table["source_date"].str.match(r"(20[0-9]{2}|undated)")).all()


# --- (a) lifecycle ----------------------------------------------------------------------------------------------


def test_one_tb_in_standard_unread_for_90_days_gives_the_published_saving(tmp_path, prices):
    frame, details = load(write_cur(tmp_path / "cur.csv", one_tb_unread()))
    policy = SavingsPolicy(lifecycle_targets=("s3-standard-ia",))
    found = lifecycle(find_savings(frame, prices, policy, details=details))
    assert len(found) == 1
    saving = found[0]
    from_snapshot = TB_GB * (prices.price("s3-standard", "us-east-1") - prices.price("s3-standard-ia", "us-east-1"))
    published = TB_GB * (PUBLISHED_STANDARD - PUBLISHED_STANDARD_IA)  # 1,024 x 0.0105 = 10.752 USD a month
    assert saving.usd_per_month == pytest.approx(from_snapshot) == pytest.approx(published) == pytest.approx(10.752)
    assert saving.current_usd_per_month == pytest.approx(23.552)
    assert saving.team == "llm" and saving.quantity == TB_GB
    assert "s3-standard-ia" in saving.description and "no GET request" in saving.assumptions
    assert "minimum storage duration 30 days" in saving.assumptions
    # the read project (a GET in May) is not moved
    assert lifecycle(find_savings(frame, prices, policy, details=details), "data") == []


def test_default_targets_choose_glacier_instant_retrieval_for_unread_storage(tmp_path, prices):
    frame, details = load(write_cur(tmp_path / "cur.csv", one_tb_unread()))
    saving = lifecycle(find_savings(frame, prices, SavingsPolicy(), details=details))[0]
    assert saving.usd_per_month == pytest.approx(TB_GB * (PUBLISHED_STANDARD - PUBLISHED_GLACIER_IR))  # 19.456
    assert "s3-glacier-instant-retrieval" in saving.description
    assert "s3-standard-ia 10.75" in saving.assumptions  # the alternative is stated


def test_unread_window_longer_than_the_export_proposes_nothing(tmp_path, prices):
    frame, details = load(write_cur(tmp_path / "cur.csv", one_tb_unread(("2025-04", "2025-05"))))
    assert lifecycle(find_savings(frame, prices, SavingsPolicy(unread_days=90), details=details)) == []
    two_months = lifecycle(find_savings(frame, prices, SavingsPolicy(unread_days=60), details=details))
    assert len(two_months) == 1


def test_without_request_lines_only_a_given_read_fraction_moves_storage(tmp_path, prices):
    frame, _ = load(write_cur(tmp_path / "cur.csv", one_tb_unread()))
    assert lifecycle(find_savings(frame, prices, SavingsPolicy(), details=None)) == []
    # an export filtered to storage lines has no request lines: no read is not "unread"
    storage_only = [r for r in one_tb_unread() if not r[1].startswith("Requests-")]
    frame2, details2 = load(write_cur(tmp_path / "storage_only.csv", storage_only))
    assert details2.empty
    assert lifecycle(find_savings(frame2, prices, SavingsPolicy(), details=details2)) == []
    given = lifecycle(find_savings(frame, prices, SavingsPolicy(read_fraction=0.0), details=None))
    assert given[0].usd_per_month == pytest.approx(19.456)


def test_retrieval_fees_of_the_read_share_are_netted(tmp_path, prices):
    frame, details = load(write_cur(tmp_path / "cur.csv", one_tb_unread()))
    ia_only = SavingsPolicy(read_fraction=0.2, lifecycle_targets=("s3-standard-ia",))
    ia = lifecycle(find_savings(frame, prices, ia_only, details=details))[0]
    # 1,024 GB x (0.023 - 0.0125) - 0.2 x 1,024 GB x 0.01 USD/GB retrieved = 10.752 - 2.048
    assert ia.usd_per_month == pytest.approx(TB_GB * (PUBLISHED_STANDARD - PUBLISHED_STANDARD_IA)
                                             - 0.2 * TB_GB * PUBLISHED_RETRIEVAL_IA) == pytest.approx(8.704)
    assert "retrieval 204.8 GB a month x 0.01 USD/GB" in ia.assumptions
    best = lifecycle(find_savings(frame, prices, SavingsPolicy(read_fraction=0.2), details=details))[0]
    assert best.usd_per_month == pytest.approx(19.456 - 0.2 * TB_GB * PUBLISHED_RETRIEVAL_GIR)  # 13.312
    # all of it read every month: Standard-IA still saves 10.752 - 10.24; Glacier IR costs more than it saves
    every = lifecycle(find_savings(frame, prices, SavingsPolicy(read_fraction=1.0), details=details))[0]
    assert every.usd_per_month == pytest.approx(0.512) and "s3-standard-ia" in every.description
    gir_only = SavingsPolicy(read_fraction=1.0, lifecycle_targets=("s3-glacier-instant-retrieval",))
    assert lifecycle(find_savings(frame, prices, gir_only, details=details)) == []


def test_small_objects_are_billed_at_128_kb_and_transitions_are_one_off(tmp_path, prices):
    frame, details = load(write_cur(tmp_path / "cur.csv", one_tb_unread()))
    tiny = SavingsPolicy(avg_object_mb=0.0625, lifecycle_targets=("s3-standard-ia",))  # 64 KB objects
    # 16,777,216 objects billed as 128 KB = 2,048 GB x 0.0125 = 25.60 > 23.552 now: no saving
    assert lifecycle(find_savings(frame, prices, tiny, details=details)) == []
    big = SavingsPolicy(avg_object_mb=8.0, lifecycle_targets=("s3-standard-ia",))
    saving = lifecycle(find_savings(frame, prices, big, details=details))[0]
    assert saving.usd_per_month == pytest.approx(10.752)
    assert saving.one_off_usd == pytest.approx(131072 * 0.00001)  # 1,024 x 1,024 / 8 objects x $0.01 / 1,000
    gir = lifecycle(find_savings(frame, prices, SavingsPolicy(avg_object_mb=8.0,
                                                              lifecycle_targets=("s3-glacier-instant-retrieval",)),
                                 details=details))[0]
    assert math.isnan(gir.one_off_usd) and "transition request fee not in the price file" in gir.assumptions


def test_intelligent_tiering_pays_its_monitoring_fee(tmp_path, prices):
    frame, details = load(write_cur(tmp_path / "cur.csv", one_tb_unread()))
    policy = SavingsPolicy(avg_object_mb=8.0, lifecycle_targets=("s3-intelligent-tiering",))
    saving = lifecycle(find_savings(frame, prices, policy, details=details))[0]
    # unread 90 days: archive instant tier 0.004; 131,072 objects x 0.0025 USD / 1,000
    assert saving.usd_per_month == pytest.approx(23.552 - (TB_GB * 0.004 + 131072 * 0.0000025))
    no_count = lifecycle(find_savings(frame, prices, SavingsPolicy(lifecycle_targets=("s3-intelligent-tiering",)),
                                      details=details))
    assert no_count == []  # without an object count the monitoring fee is unknown: not proposed


# --- (b) snapshots, (c) volumes, (d) transfer ------------------------------------------------------------------


def snapshot_rows() -> list[tuple]:
    return [("2025-01", "EBS:SnapshotUsage", 200, 10.0, "snap-old", "llm", "ckpt"),
            ("2025-03", "EBS:SnapshotUsage", 200, 10.0, "snap-old", "llm", "ckpt"),
            ("2025-05", "EBS:SnapshotUsage", 200, 10.0, "snap-old", "llm", "ckpt"),
            ("2025-05", "EBS:SnapshotUsage", 100, 5.0, "snap-new", "llm", "ckpt")]


def test_snapshots_older_than_the_retention_from_their_ids(tmp_path, prices):
    frame, details = load(write_cur(tmp_path / "cur.csv", snapshot_rows()))
    found = [s for s in find_savings(frame, prices, SavingsPolicy(snapshot_retention_days=90), details=details)
             if s.kind == SNAPSHOT_RETENTION]
    assert len(found) == 1
    # snap-old first billed 2025-01 <= 2025-02 (May minus 3 months): its 200 GB-month x 0.05 USD
    assert found[0].usd_per_month == pytest.approx(200 * PUBLISHED_SNAPSHOT) == pytest.approx(10.0)
    assert found[0].quantity == 200 and "1 snapshot ids" in found[0].assumptions
    longer = find_savings(frame, prices, SavingsPolicy(snapshot_retention_days=150), details=details)
    assert [s for s in longer if s.kind == SNAPSHOT_RETENTION] == []  # cutoff 2024-12: none that old


def test_snapshots_without_ids_use_the_policy_share(tmp_path, prices):
    rows = [(m, u, q, c, "", t, p) for m, u, q, c, _, t, p in snapshot_rows()]
    frame, details = load(write_cur(tmp_path / "cur.csv", rows))
    assert (details["resource_id"] == "").all()
    assert [s for s in find_savings(frame, prices, SavingsPolicy(), details=details)
            if s.kind == SNAPSHOT_RETENTION] == []
    shared = [s for s in find_savings(frame, prices, SavingsPolicy(snapshot_old_share=0.5), details=details)
              if s.kind == SNAPSHOT_RETENTION]
    assert shared[0].usd_per_month == pytest.approx(300 * 0.5 * PUBLISHED_SNAPSHOT) == pytest.approx(7.5)


def test_transfer_that_co_location_removes(tmp_path, prices):
    rows = [("2025-05", "USE1-USW2-AWS-Out-Bytes", 5000, 100.0, "", "llm", "ckpt"),
            ("2025-05", "USW2-USE1-AWS-In-Bytes", 5000, 0.0, "", "llm", "ckpt"),
            ("2025-05", "DataTransfer-Regional-Bytes", 3000, 30.0, "", "llm", "ckpt"),
            ("2025-05", "DataTransfer-Out-Bytes", 100, 9.0, "", "llm", "ckpt")]
    frame, details = load(write_cur(tmp_path / "cur.csv", rows))
    found = [s for s in find_savings(frame, prices, SavingsPolicy(), details=details) if s.kind == COLOCATE_TRANSFER]
    # 5,000 GB inter-region x 0.02 + 3,000 GB inter-AZ x 0.01 (internet egress and inbound lines are not removed)
    assert found[0].usd_per_month == pytest.approx(5000 * PUBLISHED_INTER_REGION + 3000 * PUBLISHED_INTER_AZ) == 130
    assert found[0].quantity == 8000 and found[0].unit == "GB"
    assert find_savings(frame, prices, SavingsPolicy(colocate_transfer=False), details=details) == []


def test_unattached_volumes_from_the_inventory(tmp_path, prices):
    rows = [("2025-05", "EBS:VolumeUsage.piops", 100, 12.5, "vol-3", "vision", None)]
    frame, details = load(write_cur(tmp_path / "cur.csv", rows))
    inv = tmp_path / "volumes.csv"
    inv.write_text("volume_id,team,size_gb,type,attached\nvol-1,llm,500,gp3,false\nvol-2,llm,500,gp3,no\n"
                   "vol-9,llm,4000,gp3,true\nvol-3,vision,100,io1,false\nvol-4,vision,10,magnetic,false\n")
    found = {s.team: s for s in find_savings(frame, prices, SavingsPolicy(), details=details,
                                             volumes=load_volumes(inv)) if s.kind == UNATTACHED_VOLUME}
    assert found["llm"].usd_per_month == pytest.approx(1000 * PUBLISHED_GP3) == 80
    assert "vol-1, vol-2" in found["llm"].description and "vol-9" not in found["llm"].description
    # io1 is not in the price file: the export's own rate, 12.5 USD / 100 GB-month
    assert found["vision"].usd_per_month == pytest.approx(100 * 0.125)
    assert "not priced (no price for their type): vol-4" in found["vision"].assumptions


def test_savings_are_sorted_largest_first_and_framed(tmp_path, prices):
    rows = one_tb_unread() + snapshot_rows() + [("2025-05", "USE1-USW2-AWS-Out-Bytes", 5000, 100.0, "", "vision",
                                                 None)]
    frame, details = load(write_cur(tmp_path / "cur.csv", rows))
    found = find_savings(frame, prices, SavingsPolicy(), details=details)
    assert [s.kind for s in found] == [COLOCATE_TRANSFER, LIFECYCLE, SNAPSHOT_RETENTION]
    assert [round(s.usd_per_month, 3) for s in found] == [100.0, 19.456, 10.0]
    table = savings_frame(found)
    assert list(table["usd_per_month"]) == [100.0, 19.46, 10.0]
    assert list(table.columns[:5]) == ["team", "kind", "description", "usd_per_month", "assumptions"]
    assert find_savings(frame, prices, SavingsPolicy(min_usd_per_month=50), details=details)[0].usd_per_month == 100


def test_detail_lines_keep_requests_and_resource_ids(tmp_path):
    frame, details = load(write_cur(tmp_path / "cur.csv", one_tb_unread() + snapshot_rows()))
    assert list(details.columns) == list(DETAIL_COLUMNS)
    assert set(details["usage_type"]) == {"Requests-Tier1", "Requests-Tier2", "EBS:SnapshotUsage"}
    assert details.loc[details["usage_type"] == "Requests-Tier2", "quantity"].sum() == 1_000_000
    assert set(details.loc[details["usage_type"] == "EBS:SnapshotUsage", "resource_id"]) == {"snap-old", "snap-new"}
    assert "Requests-Tier1" not in set(frame["class"])  # the data-usage frame itself is unchanged


# --- files and errors ------------------------------------------------------------------------------------------


def test_bad_price_file_is_one_line_naming_row_and_column(tmp_path):
    bad = tmp_path / "prices.csv"
    bad.write_text("region,item,usage_type,unit,usd_per_unit,source,source_date\n"
                   "us-east-1,s3-standard,TimedStorage-ByteHrs,GB-month,0.023,x,2026\n"
                   "us-east-1,s3-standard-ia,TimedStorage-SIA-ByteHrs,GB-month,cheap,x,2026\n")
    with pytest.raises(UsageError) as info:
        load_prices(bad)
    assert str(info.value) == (f"{bad}, row 3, column 'usd_per_unit': price 'cheap' is not a number >= 0 "
                               "(fix: write USD per unit as a plain number such as 0.0125)")
    bad.write_text("region,item,unit,usd_per_unit\n")
    with pytest.raises(UsageError, match="missing column 'usage_type'"):
        load_prices(bad)


def test_policy_file_keys_and_values_are_checked(tmp_path):
    p = tmp_path / "policy.yaml"
    p.write_text("unread_days: 30\nlifecycle_targets: s3-standard-ia\navg_object_mb: 4\n")
    policy = load_policy(p, unread_days=None)
    assert policy.unread_days == 30 and policy.lifecycle_targets == ("s3-standard-ia",)
    assert load_policy(p, unread_days=120).unread_days == 120
    p.write_text("unread_dayz: 30\n")
    with pytest.raises(UsageError, match="key 'unread_dayz': unknown key"):
        load_policy(p)
    p.write_text("read_fraction: 2\n")
    with pytest.raises(UsageError, match="read_fraction must be between 0 and 1"):
        load_policy(p)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from app.cli import main; main()", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_cli_writes_the_savings_and_refuses_a_bad_price_file(tmp_path):
    cur = write_cur(tmp_path / "cur.csv", one_tb_unread() + snapshot_rows())
    policy = tmp_path / "policy.yaml"
    policy.write_text("lifecycle_targets: [s3-standard-ia]\n")
    out = tmp_path / "savings.csv"
    done = run_cli("data-savings", "--billing", str(cur), "--policy", str(policy), "--out", str(out),
                   "--output-format", "json")
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out)
    assert list(table["kind"]) == [LIFECYCLE, SNAPSHOT_RETENTION]
    assert list(table["usd_per_month"]) == [10.75, 10.0]
    shown = json.loads(done.stdout.splitlines()[0])
    assert [r["kind"] for r in shown["rows"]] == [LIFECYCLE, SNAPSHOT_RETENTION]
    assert float(shown["rows"][0]["USD/month"]) == 10.75
    bad = tmp_path / "prices.csv"
    bad.write_text("region,item,usage_type,unit,usd_per_unit,source,source_date\n"
                   "us-east-1,s3-standard,TimedStorage-ByteHrs,GB-month,-1,x,2026\n")
    out2 = tmp_path / "savings2.csv"
    failed = run_cli("data-savings", "--billing", str(cur), "--prices", str(bad), "--out", str(out2))
    assert failed.returncode == 2
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "row 2, column 'usd_per_unit'" in lines[0]
    assert "Traceback" not in failed.stderr and not out2.exists()
    policy.write_text("region: eu-west-1\n")
    no_region = run_cli("data-savings", "--billing", str(cur), "--policy", str(policy), "--out", str(out2))
    assert no_region.returncode == 2 and not out2.exists()
    assert no_region.stderr.strip().splitlines() == [
        f"error: {ROOT / 'data_samples' / 'prices' / 'aws_data_prices.csv'}: no prices for region 'eu-west-1' (fix: "
        "refresh them with gpuplan data-prices-refresh --region eu-west-1, or set region in the policy)"]


# --- the Price List refresh (botocore Stubber, never the internet) ---------------------------------------------


def product(usage: str, usd: str, begin: str = "0", family: str = "Storage") -> str:
    return json.dumps({"product": {"productFamily": family, "attributes": {"usagetype": usage}},
                       "terms": {"OnDemand": {"T": {"priceDimensions": {
                           "D1": {"beginRange": "51200", "pricePerUnit": {"USD": "0.0220000000"}},
                           "D0": {"beginRange": begin, "pricePerUnit": {"USD": usd}}}}}}})


def expect(stub: Stubber, service: str, terms: list[tuple[str, str]], pages: list[dict]) -> None:
    token = None
    for page in pages:
        params = {"ServiceCode": service, "Filters": [{"Type": "TERM_MATCH", "Field": f, "Value": v}
                                                      for f, v in terms],
                  "FormatVersion": "aws_v1", "MaxResults": 100}
        if token:
            params["NextToken"] = token
        stub.add_response("get_products", page, params)
        token = page.get("NextToken")


def pricing_client():
    return botocore.session.Session().create_client("pricing", region_name="us-east-1",
                                                    aws_access_key_id="AKIAFAKEKEYID000TEST",
                                                    aws_secret_access_key="fake/secret/never/printed")


def test_refresh_reads_every_page_and_writes_a_price_file_the_savings_read(tmp_path):
    client = pricing_client()
    with Stubber(client) as stub:
        expect(stub, "AmazonS3", [("regionCode", "eu-west-1")], [
            {"PriceList": [product("EU-TimedStorage-ByteHrs", "0.0230000000")], "NextToken": "page2"},
            {"PriceList": [product("EU-TimedStorage-SIA-ByteHrs", "0.0125000000"),
                           product("EU-Retrieval-SIA", "0.0100000000", family="API Request"),
                           product("EU-Requests-Tier2", "0.0000004000", family="API Request")]}])
        expect(stub, "AmazonEC2", [("regionCode", "eu-west-1"), ("productFamily", "Storage")],
               [{"PriceList": [product("EU-EBS:VolumeUsage.gp3", "0.0880000000")]}])
        expect(stub, "AmazonEC2", [("regionCode", "eu-west-1"), ("productFamily", "Storage Snapshot")],
               [{"PriceList": [product("EU-EBS:SnapshotUsage", "0.0500000000", family="Storage Snapshot")]}])
        expect(stub, "AWSDataTransfer", [("fromRegionCode", "eu-west-1")], [
            {"PriceList": [product("EU-USE1-AWS-Out-Bytes", "0.0200000000", family="Data Transfer"),
                           product("EU-APS3-AWS-Out-Bytes", "0.0800000000", family="Data Transfer")],
             "NextToken": "dt2"},
            {"PriceList": [product("EU-DataTransfer-Regional-Bytes", "0.0100000000", family="Data Transfer")]}])
        result = refresh_data_prices("eu-west-1", pricing_client=client,
                                     today=datetime(2026, 12, 4, tzinfo=UTC))
        stub.assert_no_pending_responses()
    got = dict(zip(result.table["item"], result.table["usd_per_unit"], strict=True))
    assert got == {"s3-standard": 0.023, "s3-standard-ia": 0.0125, "retrieval-s3-standard-ia": 0.01,
                   "ebs-gp3": 0.088, "ebs-snapshot": 0.05, "transfer-inter-region": 0.02, "transfer-inter-az": 0.01}
    assert result.products == 9
    assert any("lowest of 2 destination prices" in n for n in result.notes)
    out = write_prices(result, tmp_path / "eu_prices.csv")
    loaded = load_prices(out)
    assert loaded.regions() == ["eu-west-1"] and set(loaded.table["source_date"]) == {"2026-12-04"}
    assert loaded.price("s3-standard-ia", "eu-west-1") == 0.0125


def test_refresh_of_a_region_without_prices_is_one_error():
    client = pricing_client()
    with Stubber(client) as stub:
        for service, terms in (("AmazonS3", [("regionCode", "xx-nowhere-1")]),
                               ("AmazonEC2", [("regionCode", "xx-nowhere-1"), ("productFamily", "Storage")]),
                               ("AmazonEC2", [("regionCode", "xx-nowhere-1"), ("productFamily", "Storage Snapshot")]),
                               ("AWSDataTransfer", [("fromRegionCode", "xx-nowhere-1")])):
            expect(stub, service, terms, [{"PriceList": []}])
        with pytest.raises(RefreshError, match="no S3, EBS or transfer price for region 'xx-nowhere-1'"):
            refresh_data_prices("xx-nowhere-1", pricing_client=client)


def test_detail_lines_of_a_focus_export_and_none_for_google_cloud(tmp_path):
    focus = tmp_path / "focus.csv"
    with focus.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ProviderName", "ServiceName",
                    "SkuMeter", "ConsumedQuantity", "ConsumedUnit", "EffectiveCost", "BilledCost", "ResourceId",
                    "Tags"])
        for meter, qty, unit, cost, resource in (("USE1-TimedStorage-ByteHrs", 1024, "GB-Mo", 23.55, "ckpt-bucket"),
                                                 ("USE1-Requests-Tier2", 5000, "Requests", 0.002, "ckpt-bucket"),
                                                 ("EBS:SnapshotUsage", 10, "GB-Mo", 0.5, "snap-1"),
                                                 ("Write Operations", 10, "10K", 0.5, "azure-account")):
            w.writerow(["2025-03-01T00:00:00Z", "2025-03-01T01:00:00Z", "Usage", "AWS", "S3", meter, qty, unit,
                        cost, cost, resource, json.dumps({"team": "llm", "project": "ckpt"})])
    details = load_detail_lines(focus)
    assert list(zip(details["usage_type"], details["resource_id"], details["quantity"], strict=True)) == [
        ("EBS:SnapshotUsage", "snap-1", 10.0), ("Requests-Tier2", "ckpt-bucket", 5000.0)]
    assert set(details["team"]) == {"llm"} and set(details["project"]) == {"ckpt"}
    gcp = ROOT / "data_samples" / "billing" / "gcp_billing_export_gpu.csv"
    assert load_detail_lines(gcp).empty


OFFER_HEAD = ('"FormatVersion","v1.0"\n"Disclaimer","This pricing list is for informational purposes only."\n'
              '"Publication Date","2026-11-20T17:47:47Z"\n"Version","20261120174747"\n"OfferCode","{offer}"\n'
              '"SKU","OfferTermCode","RateCode","TermType","PriceDescription","EffectiveDate","StartingRange",'
              '"EndingRange","Unit","PricePerUnit","Currency","Product Family","serviceCode","Location","usageType"\n')


def offer_row(sku: str, term: str, start: str, usd: str, family: str, service: str, usage: str) -> str:
    return (f'"{sku}","JRTCKXETXF","{sku}.R","{term}","desc","2026-11-01","{start}","Inf","GB-Mo","{usd}","USD",'
            f'"{family}","{service}","US East (N. Virginia)","{usage}"\n')


def test_prices_derived_from_offer_files_feed_the_savings(tmp_path):
    s3 = tmp_path / "s3_index.csv"
    s3.write_text(OFFER_HEAD.format(offer="AmazonS3")
                  + offer_row("A", "OnDemand", "0", "0.0230000000", "Storage", "AmazonS3", "TimedStorage-ByteHrs")
                  + offer_row("A", "OnDemand", "51200", "0.0220000000", "Storage", "AmazonS3", "TimedStorage-ByteHrs")
                  + offer_row("B", "OnDemand", "0", "0.0125000000", "Storage", "AmazonS3", "TimedStorage-SIA-ByteHrs")
                  + offer_row("C", "OnDemand", "0", "0.0100000000", "API Request", "AmazonS3", "Retrieval-SIA")
                  + offer_row("D", "OnDemand", "0", "0.0000100000", "API Request", "AmazonS3", "Requests-Tier4"))
    ec2 = tmp_path / "ec2_index.csv"
    ec2.write_text(OFFER_HEAD.format(offer="AmazonEC2")
                   + offer_row("E", "OnDemand", "0", "0.0800000000", "Storage", "AmazonEC2", "EBS:VolumeUsage.gp3")
                   + offer_row("F", "Reserved", "0", "0.0100000000", "Storage", "AmazonEC2", "EBS:SnapshotUsage")
                   + offer_row("G", "OnDemand", "0", "0.0500000000", "Storage Snapshot", "AmazonEC2",
                               "EBS:SnapshotUsage"))
    prices_out = tmp_path / "derived.csv"
    done = run_cli("data-prices-refresh", "--offer-file", str(s3), "--offer-file", str(ec2), "--out", str(prices_out))
    assert done.returncode == 0, done.stderr
    derived = load_prices(prices_out)
    assert dict(zip(derived.table["item"], derived.table["usd_per_unit"], strict=True)) == {
        "s3-standard": 0.023, "s3-standard-ia": 0.0125, "retrieval-s3-standard-ia": 0.01,
        "transition-s3-standard-ia": 0.00001, "ebs-gp3": 0.08, "ebs-snapshot": 0.05}
    assert set(derived.table["source_date"]) == {"2026-11-20"}
    cur = write_cur(tmp_path / "cur.csv", one_tb_unread())
    policy = tmp_path / "policy.yaml"
    policy.write_text("lifecycle_targets: [s3-standard-ia]\navg_object_mb: 8\n")
    out = tmp_path / "savings.csv"
    done = run_cli("data-savings", "--billing", str(cur), "--prices", str(prices_out), "--policy", str(policy),
                   "--out", str(out))
    assert done.returncode == 0, done.stderr
    row = pd.read_csv(out).iloc[0]
    assert (row["usd_per_month"], row["one_off_usd"]) == (10.75, 1.31)  # 1,024 x 0.0105; 131,072 x $0.01 / 1,000
    not_offer = tmp_path / "not_offer.csv"
    not_offer.write_text("a,b\n1,2\n")
    failed = run_cli("data-prices-refresh", "--offer-file", str(not_offer), "--out", str(tmp_path / "x.csv"))
    assert failed.returncode == 2 and failed.stderr.strip().splitlines() == [
        f'error: {not_offer}: no offer header (a line starting with "SKU") in the first 10 lines (fix: give an AWS '
        "offer file in CSV form (index.csv) as downloaded)"]
