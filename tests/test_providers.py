"""GCP and Azure beside AWS: catalog rows with each provider's commitment shape, and plans per provider/region.

Hand-checkable numbers: Azure reservations are totals per term (ND96isr_H100_v5 eastus 1 year 551,221 USD =
62.924772 USD/h over 8,760 h); the cheapest on-demand GPU-hour of a GPU model in a region is the catalog's row
(GCP us-central1 A100: a2-megagpu-16g 55.739504 / 16 = 3.483719; Azure eastus H100: NC40ads_H100_v5 6.98 / 1;
AWS us-east-1 H100: p5.48xlarge 55.04 / 8 = 6.88).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from optimizer.catalog import DEFAULT_REGION, build_azure_rows, load_catalog, provider_of_instance_type
from optimizer.inputs import PlanningError, place_usage
from usage.ingest import load_usage

ROOT = Path(__file__).resolve().parents[1]


def gpuplan(*args: str) -> subprocess.CompletedProcess:
    """The real console entry point in a subprocess."""
    return subprocess.run([sys.executable, "-c", "from app.cli import main; main()", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def _row(table: pd.DataFrame, provider: str, region: str, itype: str, option: str) -> pd.Series:
    rows = table[(table["provider"] == provider) & (table["region"] == region) & (table["instance_type"] == itype)
                 & (table["purchase_option"] == option)]
    assert len(rows) == 1, (provider, region, itype, option)
    return rows.iloc[0]


def _usage(teams: dict[str, tuple[str, str, float]], days: int = 28, extra: dict | None = None) -> pd.DataFrame:
    """Flat hourly usage: team -> (gpu_type, instance_type, gpus)."""
    hours = pd.date_range("2026-01-01", periods=24 * days, freq="h")
    frames = []
    for team, (gpu, itype, gpus) in teams.items():
        part = pd.DataFrame({"timestamp": hours, "team": team, "gpu_type": gpu, "gpus": gpus, "instance_type": itype})
        for col, values in (extra or {}).items():
            part[col] = values[team]
        frames.append(part)
    return pd.concat(frames, ignore_index=True)


# --- provider of an instance type ----------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "provider"), [
    ("p5.48xlarge", "aws"), ("g6e.xlarge", "aws"), ("trn1.32xlarge", "aws"), ("p6-b200.48xlarge", "aws"),
    ("a2-highgpu-8g", "gcp"), ("a3-megagpu-8g", "gcp"), ("g2-standard-8", "gcp"), ("g4-standard-48", "gcp"),
    ("Standard_ND96isr_H100_v5", "azure"), ("Standard_NC24ads_A100_v4", "azure"),
    ("my-gpu-box", None), ("", None), (None, None)])
def test_provider_of_instance_type(name, provider):
    assert provider_of_instance_type(name) == provider


def test_every_catalog_type_is_named_by_its_own_provider(catalog):
    types = catalog.table.drop_duplicates("instance_type")
    named = types["instance_type"].map(provider_of_instance_type)
    wrong = types[named != types["provider"]]
    assert wrong.empty, wrong[["provider", "instance_type"]].head().to_string()


# --- catalog rows ---------------------------------------------------------------------------------------------
def test_every_row_names_provider_snapshot_date_and_source(catalog):
    table = catalog.table
    assert set(table["provider"]) == {"aws", "gcp", "azure"}
    for col in ("snapshot_date", "source"):
        assert table[col].notna().all() and (table[col].astype(str).str.len() > 0).all(), col
    by_provider = table.groupby("provider")["source"].unique()
    assert any("skypilot-catalog" in s for s in by_provider["azure"])
    assert any("Retail Prices API" in s for s in by_provider["azure"])


def test_azure_reservation_is_one_total_paid_upfront_or_monthly(catalog):
    table = catalog.table
    od = _row(table, "azure", "eastus", "Standard_ND96isr_H100_v5", "on_demand")
    assert od["effective_hourly_usd"] == 98.32 and od["gpu_count"] == 8  # the source says 12 GPUs; it has 8
    monthly = _row(table, "azure", "eastus", "Standard_ND96isr_H100_v5", "reserved_1y_no_upfront")
    upfront = _row(table, "azure", "eastus", "Standard_ND96isr_H100_v5", "reserved_1y_all_upfront")
    assert monthly["effective_hourly_usd"] == pytest.approx(551221.0 / 8760) == upfront["effective_hourly_usd"]
    assert monthly["upfront_usd"] == 0 and monthly["recurring_hourly_usd"] == pytest.approx(62.924772, abs=1e-6)
    assert upfront["upfront_usd"] == pytest.approx(551221.0) and upfront["recurring_hourly_usd"] == 0
    three = _row(table, "azure", "eastus", "Standard_ND96isr_H100_v5", "reserved_3y_no_upfront")
    assert three["effective_hourly_usd"] == pytest.approx(1134310.0 / 26280) and three["term_hours"] == 26280
    # no partial upfront for Azure, and no convertible; no spot row where the source only repeats pay-as-you-go
    azure = table[table["provider"] == "azure"]
    assert not azure["purchase_option"].str.contains("partial|convertible").any()
    assert azure[(azure["gpu_model"] == "NVIDIA H100") & (azure["purchase_option"] == "spot")].empty
    spot = _row(table, "azure", "eastus", "Standard_NC24ads_A100_v4", "spot")
    assert spot["effective_hourly_usd"] == 0.444433


def test_gcp_cuds_are_monthly_no_upfront_and_spot_is_priced(catalog):
    gcp = catalog.table[catalog.table["provider"] == "gcp"]
    commitments = gcp[gcp["term_hours"] > 0]
    assert set(commitments["purchase_option"]) == {"reserved_1y_no_upfront", "reserved_3y_no_upfront"}
    assert (commitments["upfront_usd"] == 0).all()
    # GCP sells no resource CUD for A100 80GB (a2-ultragpu) in the source; H100 and L4 have both terms
    cud_types = set(commitments["instance_type"])
    assert not any(t.startswith("a2-ultragpu") for t in cud_types)
    assert {"a3-highgpu-8g", "g2-standard-8"} <= cud_types
    spot = _row(catalog.table, "gcp", "us-central1", "a3-highgpu-8g", "spot")
    od = _row(catalog.table, "gcp", "us-central1", "a3-highgpu-8g", "on_demand")
    assert 0 < spot["effective_hourly_usd"] < od["effective_hourly_usd"]


def test_build_azure_rows_by_hand():
    vms = pd.DataFrame({"InstanceType": ["Standard_NC24ads_A100_v4", "Standard_NC24ads_A100_v4", "Standard_D4s_v5"],
                        "Price": [4.0, 5.0, 0.2], "SpotPrice": [1.0, 5.0, 0.05], "Region": ["r1", "r2", "r1"]})
    res = pd.DataFrame({"snapshot_date": ["2026-01-01"] * 3, "arm_sku_name": ["Standard_NC24ads_A100_v4"] * 3,
                        "region": ["r1"] * 3, "reservation_term": ["1 Year", "3 Years", "5 Years"],
                        "total_usd_per_term": [17520.0, 39420.0, 1.0]})
    rows = build_azure_rows(vms, res, snapshot_date="2025-01-01")
    got = {(r.region, r.purchase_option): (r.effective_hourly_usd, r.upfront_usd) for r in rows.itertuples()}
    assert got == {("r1", "on_demand"): (4.0, 0.0), ("r1", "spot"): (1.0, 0.0), ("r2", "on_demand"): (5.0, 0.0),
                   ("r1", "reserved_1y_no_upfront"): (2.0, 0.0), ("r1", "reserved_1y_all_upfront"): (2.0, 17520.0),
                   ("r1", "reserved_3y_no_upfront"): (1.5, 0.0), ("r1", "reserved_3y_all_upfront"): (1.5, 39420.0)}
    assert set(rows["gpu_model"]) == {"NVIDIA A100"} and set(rows["gpu_memory_gib"]) == {80.0}
    assert set(rows.loc[rows["term_hours"] > 0, "snapshot_date"]) == {"2026-01-01"}


# --- placement of usage ---------------------------------------------------------------------------------------
MIXED = {"llm": ("NVIDIA H100", "p5.48xlarge", 16.0), "vision": ("NVIDIA A100", "a2-highgpu-8g", 8.0),
         "speech": ("NVIDIA H100", "Standard_ND96isr_H100_v5", 8.0)}


def test_mixed_usage_splits_by_provider_into_default_regions(catalog):
    places = place_usage(_usage(MIXED, days=2), catalog)
    assert [(p.provider, p.region) for p in places] == [("aws", "us-east-1"), ("gcp", "us-central1"),
                                                        ("azure", "eastus")]
    assert [sorted(p.usage["team"].unique()) for p in places] == [["llm"], ["vision"], ["speech"]]
    assert sum(len(p.usage) for p in places) == 3 * 48


def test_region_asked_for_applies_to_its_provider_only(catalog):
    places = place_usage(_usage(MIXED, days=1), catalog, region="europe-west4")
    got = {p.provider: (p.region, p.reason) for p in places}
    assert got["gcp"] == ("europe-west4", "the region asked for")
    assert got["aws"] == ("us-east-1", "aws's default region (--region europe-west4 is gcp's)")
    # GCP usage with an AWS region asked for is still never priced at AWS prices
    only_gcp = _usage({"vision": MIXED["vision"]}, days=1)
    [place] = place_usage(only_gcp, catalog, region="us-east-1")
    assert (place.provider, place.region) == ("gcp", DEFAULT_REGION["gcp"])


def test_usage_without_instance_types_keeps_the_old_default(catalog):
    usage = _usage({"a": ("NVIDIA H100", None, 1.0)}, days=1).drop(columns="instance_type")
    [place] = place_usage(usage, catalog)
    assert (place.provider, place.region) == ("aws", "us-east-1")
    [place] = place_usage(usage, catalog, region="eastus")
    assert (place.provider, place.region) == ("azure", "eastus")


def test_gap_hours_inherit_their_series_provider_and_unnamed_rows_beside_two_clouds_are_refused(catalog):
    usage = _usage({"vision": MIXED["vision"], "llm": MIXED["llm"]}, days=1)
    usage.loc[usage.index[::5], "instance_type"] = None  # filled gaps carry no instance type
    places = place_usage(usage, catalog)
    assert {p.provider: len(p.usage) for p in places} == {"aws": 24, "gcp": 24}
    usage.loc[usage["team"] == "llm", "instance_type"] = None
    usage.loc[usage["team"] == "llm", "team"] = "unknown"
    with pytest.raises(PlanningError, match=r"24 usage rows name no instance_type or provider, beside usage on "):
        place_usage(pd.concat([usage, _usage({"x": MIXED["speech"]}, days=1)], ignore_index=True), catalog)


def test_provider_and_region_columns_of_a_canonical_file(tmp_path, catalog):
    usage = _usage({"a": ("NVIDIA H100", None, 8.0), "b": ("NVIDIA A100", None, 4.0)}, days=1,
                   extra={"provider": {"a": "Azure", "b": "gcp"}, "region": {"a": "westus3", "b": "us-east1"}})
    path = tmp_path / "usage.csv"
    usage.drop(columns="instance_type").to_csv(path, index=False)
    loaded, _ = load_usage(path, known_gpu_types=catalog.gpu_models())
    places = place_usage(loaded, catalog, region="us-central1")
    assert [(p.provider, p.region, p.reason) for p in places] == [
        ("gcp", "us-east1", "the usage's region column"), ("azure", "westus3", "the usage's region column")]
    usage["region"] = "us-east-1"  # an AWS region on Azure/GCP rows is a mistake, not a silent re-pricing
    usage.drop(columns="instance_type").to_csv(path, index=False)
    loaded, _ = load_usage(path, known_gpu_types=catalog.gpu_models())
    with pytest.raises(PlanningError, match="usage region 'us-east-1' belongs to aws, but its rows run on gcp"):
        place_usage(loaded, catalog)


# --- gpuplan plan end to end ----------------------------------------------------------------------------------
def test_plan_of_gcp_usage_uses_gcp_prices(tmp_path, catalog):
    path = tmp_path / "usage.csv"
    _usage({"vision": MIXED["vision"]}).to_csv(path, index=False)
    out = tmp_path / "plan.json"
    proc = gpuplan("plan", "--usage", str(path), "--out", str(out), "--start", "2026-01-29T00:00Z", "--hours", "24",
                   "--window-only")
    assert proc.returncode == 0, proc.stderr
    assert "note: gcp usage (teams vision) is planned at gcp prices in us-central1" in proc.stderr
    plan = json.loads(out.read_text())
    assert plan["region"] == "us-central1"
    assert plan["assumptions"]["placement"]["provider"] == "gcp"
    [od] = plan["on_demand"]
    assert od == {"gpu_model": "NVIDIA A100", "instance_type": "a2-megagpu-16g", "usd_per_gpu_hour": 3.483719}
    gcp_types = set(catalog.table.loc[catalog.table["provider"] == "gcp", "instance_type"])
    bought = {c["instance_type"] for c in plan["commitments"]} | {s["instance_type"] for s in plan["spot"]}
    assert bought and bought <= gcp_types


def test_plan_of_mixed_usage_writes_one_plan_per_provider(tmp_path):
    path = tmp_path / "usage.csv"
    _usage(MIXED).to_csv(path, index=False)
    out = tmp_path / "plan.json"
    proc = gpuplan("plan", "--usage", str(path), "--out", str(out), "--start", "2026-01-29T00:00Z", "--hours", "24",
                   "--window-only", "--options", "reserved_1y_no_upfront")
    assert proc.returncode == 0, proc.stderr
    assert not out.exists()
    expected = {"aws-us-east-1": ("llm", "NVIDIA H100", 6.88), "gcp-us-central1": ("vision", "NVIDIA A100", 3.483719),
                "azure-eastus": ("speech", "NVIDIA H100", 6.98)}
    for suffix, (team, gpu, rate) in expected.items():
        plan = json.loads((tmp_path / f"plan.{suffix}.json").read_text())
        assert plan["assumptions"]["placement"]["teams"] == [team]
        [od] = plan["on_demand"]
        assert (od["gpu_model"], od["usd_per_gpu_hour"]) == (gpu, rate)
        assert f"== {suffix.replace('-', ' ', 1)} ==" in proc.stdout
    azure = json.loads((tmp_path / "plan.azure-eastus.json").read_text())
    assert {c["instance_type"] for c in azure["commitments"]} <= {"Standard_ND96isr_H100_v5",
                                                                   "Standard_ND96amsr_A100_v4"}


def test_existing_commitments_with_usage_on_several_clouds_is_one_line_error(tmp_path):
    path = tmp_path / "usage.csv"
    _usage(MIXED, days=1).to_csv(path, index=False)
    owned = tmp_path / "owned.csv"
    owned.write_text("instance_type,option,count,start,expiry\np5.48xlarge,reserved_1y_no_upfront,1,2026-01-01,"
                     "2027-01-01\n")
    proc = gpuplan("plan", "--usage", str(path), "--out", str(tmp_path / "p.json"), "--start", "2026-01-02T00:00Z",
                   "--hours", "24", "--existing", str(owned))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: --existing with usage on 3 providers/regions (aws us-east-1, gcp "
                                "us-central1, azure eastus)"), proc.stderr
    assert "Traceback" not in proc.stderr and not list(tmp_path.glob("p*.json"))


def test_provider_column_takes_billing_names_and_refuses_unknown_ones(catalog):
    usage = _usage({"a": ("NVIDIA H100", None, 8.0), "b": ("NVIDIA A100", None, 4.0)}, days=1,
                   extra={"provider": {"a": "Microsoft", "b": "Google Cloud"}})
    assert [p.provider for p in place_usage(usage, catalog)] == ["gcp", "azure"]
    usage.loc[3, "provider"] = "Oracle"
    with pytest.raises(PlanningError, match=r"usage provider 'Oracle' is not a known cloud \(fix: write aws"):
        place_usage(usage, catalog)
