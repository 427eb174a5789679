"""Tests of the shipped price snapshot and of optimizer.catalog functions."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from optimizer.catalog import (
    CATALOG_COLUMNS,
    DEFAULT_CATALOG,
    INTERRUPTION_BUCKETS,
    PARTIAL_UPFRONT_SHARE,
    CatalogError,
    build_snapshot,
    interruption_rate_per_hour,
    load_catalog,
    rework_fraction,
    write_atomic_csv,
)
from optimizer.options import ALL_OPTIONS, PURCHASABLE_OPTIONS, term_hours


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture(scope="module")
def table(catalog) -> pd.DataFrame:
    return catalog.table


def _price(table: pd.DataFrame, itype: str, option: str, region: str = "us-east-1") -> float:
    rows = table[(table["region"] == region) & (table["instance_type"] == itype)
                 & (table["purchase_option"] == option)]
    assert len(rows) == 1, (itype, option, region)
    return float(rows["effective_hourly_usd"].iloc[0])


def test_snapshot_columns_and_label(catalog, table):
    assert tuple(table.columns) == CATALOG_COLUMNS
    assert catalog.path == "built-in snapshot"
    assert "2025-11-30" in catalog.snapshot_dates()
    assert catalog.snapshot_dates("us-central1") == ("2026-07-30",)
    assert table["upfront_is_estimate"].dtype == bool


def test_known_us_east_1_prices(table):
    assert _price(table, "p5.48xlarge", "on_demand") == 55.04
    assert _price(table, "p4d.24xlarge", "on_demand") == 21.957642
    assert _price(table, "p4d.24xlarge", "reserved_1y_no_upfront") == 13.921094
    assert _price(table, "g5.xlarge", "on_demand") == 1.006


def test_one_row_per_type_region_option_and_valid_names(table):
    assert not table.duplicated(["provider", "region", "instance_type", "purchase_option"]).any()
    assert set(table["purchase_option"]) <= set(ALL_OPTIONS)
    assert (table["effective_hourly_usd"] > 0).all()
    assert set(table["provider"]) == {"aws", "gcp", "azure"}


def test_commitment_rows_amortise_exactly(table):
    rows = table[table["purchase_option"].isin(PURCHASABLE_OPTIONS)]
    assert len(rows) > 0
    assert (rows["term_hours"] == rows["purchase_option"].map(term_hours)).all()
    rebuilt = rows["recurring_hourly_usd"] + rows["upfront_usd"] / rows["term_hours"]
    rel = (rebuilt - rows["effective_hourly_usd"]).abs() / rows["effective_hourly_usd"]
    assert rel.max() < 1e-6
    other = table[~table["purchase_option"].isin(PURCHASABLE_OPTIONS)]
    assert (other["term_hours"] == 0).all() and (other["upfront_usd"] == 0).all()
    assert (other["recurring_hourly_usd"] == other["effective_hourly_usd"]).all()


def test_upfront_split_by_payment_option(table):
    no_up = table[table["purchase_option"].str.contains("_no_upfront")]
    assert (no_up["upfront_usd"] == 0).all() and not no_up["upfront_is_estimate"].any()
    all_up = table[table["purchase_option"].str.contains("_all_upfront")]
    # all upfront: the whole term is paid upfront (to the cent), the recurring rate is ~0
    assert all_up["recurring_hourly_usd"].abs().max() < 1e-6 and not all_up["upfront_is_estimate"].any()
    partial = table[table["purchase_option"].str.contains("_partial_upfront")]
    assert partial["upfront_is_estimate"].all()
    share = partial["upfront_usd"] / (partial["effective_hourly_usd"] * partial["term_hours"])
    assert np.allclose(share, PARTIAL_UPFRONT_SHARE, atol=1e-6)


def test_gcp_rows_for_us_central1(catalog, table):
    gcp = table[(table["provider"] == "gcp") & (table["region"] == "us-central1")]
    assert len(gcp) > 0
    assert "NVIDIA A100" in set(gcp["gpu_model"])
    cud = {"on_demand", "spot", "reserved_1y_no_upfront", "reserved_3y_no_upfront"}
    assert set(gcp["purchase_option"]) <= cud
    assert gcp["interruption_bucket"].isna().all()
    assert "NVIDIA A100" in catalog.gpu_models("us-central1")


def test_rework_fraction_increases_with_bucket():
    rework = [rework_fraction(b) for b in INTERRUPTION_BUCKETS]
    assert all(a < b for a, b in zip(rework, rework[1:], strict=False))
    assert all(r > 0 for r in rework)
    # unknown buckets are priced as the worst one
    assert rework_fraction(None) == rework_fraction(">20%") == rework_fraction("nonsense")
    # more frequent checkpoints lose less work
    assert rework_fraction(">20%", checkpoint_interval_hours=0.25) < rework_fraction(">20%")


def test_interruption_rate_from_bucket_upper_edge():
    assert interruption_rate_per_hour("<5%") == pytest.approx(-np.log(0.95) / 730)
    assert interruption_rate_per_hour(">20%") == pytest.approx(-np.log(0.70) / 730)
    assert rework_fraction("5-10%", 1.0, 0.25) == pytest.approx(interruption_rate_per_hour("5-10%") * 0.75)


def test_build_snapshot_reproduces_the_shipped_csv():
    built = build_snapshot()
    text = built.to_csv(index=False)
    shipped = pd.read_csv(DEFAULT_CATALOG)
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(text)), shipped, check_exact=True)
    assert text == DEFAULT_CATALOG.read_text()


def test_instance_gpus_and_offers(catalog):
    gpus = catalog.instance_gpus()
    assert gpus["p5.48xlarge"] == ("NVIDIA H100", 8.0)
    assert gpus["g5.xlarge"] == ("NVIDIA A10G", 1.0)
    offers = catalog.offers("us-east-1", gpu_model="NVIDIA H100", options=("on_demand", "spot"))
    assert len(offers) > 0 and set(offers["gpu_model"]) == {"NVIDIA H100"}
    assert set(offers["purchase_option"]) == {"on_demand", "spot"}
    only = catalog.offers("us-east-1", instance_types=("p4d.24xlarge",))
    assert set(only["instance_type"]) == {"p4d.24xlarge"} and len(only) == len(ALL_OPTIONS)


def test_unknown_region_is_a_clear_error(catalog):
    with pytest.raises(CatalogError, match="no prices for region 'xx-nowhere-1'"):
        catalog.region("xx-nowhere-1")


def test_load_catalog_errors(tmp_path):
    with pytest.raises(CatalogError, match="catalog file not found"):
        load_catalog(tmp_path / "missing.csv")
    table = load_catalog().table.head(3)
    write_atomic_csv(table.drop(columns=["source"]), tmp_path / "no_source.csv")
    with pytest.raises(CatalogError, match="missing column 'source'"):
        load_catalog(tmp_path / "no_source.csv")
    bad = table.copy()
    bad.loc[1, "effective_hourly_usd"] = -1.0
    write_atomic_csv(bad, tmp_path / "bad.csv")
    with pytest.raises(CatalogError, match=r"row 3, column 'effective_hourly_usd'"):
        load_catalog(tmp_path / "bad.csv")


def test_write_atomic_csv_round_trips_and_leaves_no_temp_files(tmp_path):
    table = load_catalog().table.head(50)
    path = tmp_path / "sub" / "catalog.csv"
    write_atomic_csv(table, path)
    write_atomic_csv(table, path)  # overwriting works too
    assert [p.name for p in path.parent.iterdir()] == ["catalog.csv"]
    loaded = load_catalog(path)
    assert loaded.path == str(path)
    pd.testing.assert_frame_equal(loaded.table, table.reset_index(drop=True))
