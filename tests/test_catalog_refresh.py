"""Tests of optimizer.catalog_refresh with botocore Stubber (never the internet).

The fixtures in tests/fixtures/pricing are modelled on real responses: ``GetProducts`` pages whose
PriceList entries follow the AWS Price List product format (kept as JSON objects in the files for
readability and turned into JSON strings here, as the API returns them), and ``DescribeSpotPriceHistory``
pages (newest first, empty NextToken on the last page, as EC2 returns them).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import botocore.session
import pandas as pd
import pytest
from botocore.exceptions import NoCredentialsError
from botocore.stub import Stubber

from optimizer.catalog import CATALOG_COLUMNS, Catalog, load_catalog, write_atomic_csv
from optimizer.catalog_refresh import (
    REFRESH_SOURCE,
    RefreshConfig,
    RefreshError,
    RefreshResult,
    parse_price_list_item,
    refresh_catalog,
    spot_price_by_type,
)
from optimizer.options import ALL_OPTIONS, COMMITMENT_OPTIONS, SAVINGS_PLAN_OPTIONS

FIXTURES = Path(__file__).parent / "fixtures" / "pricing"
END = datetime(2025, 12, 8, tzinfo=UTC)
START = END - timedelta(hours=168)
FAKE_KEY_ID, FAKE_SECRET = "AKIAFAKEKEYID000TEST", "fake/secret/key/never/printed"
TYPES = ("p4d.24xlarge", "g5.xlarge")


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def _products_page(name: str) -> dict:
    page = _fixture(name)
    page["PriceList"] = [json.dumps(item) for item in page["PriceList"]]  # the API sends JSON strings
    return page


def _spot_page(name: str) -> dict:
    page = _fixture(name)
    for rec in page["SpotPriceHistory"]:
        rec["Timestamp"] = datetime.fromisoformat(rec["Timestamp"])  # boto3 parses timestamps
    return page


def _client(service: str, region: str):
    return botocore.session.Session().create_client(
        service, region_name=region, aws_access_key_id=FAKE_KEY_ID, aws_secret_access_key=FAKE_SECRET)


def _filters(instance_type: str, region: str = "us-east-1") -> list[dict]:
    values = [("instanceType", instance_type), ("regionCode", region), ("operatingSystem", "Linux"),
              ("tenancy", "Shared"), ("preInstalledSw", "NA"), ("capacitystatus", "Used")]
    return [{"Type": "TERM_MATCH", "Field": f, "Value": v} for f, v in values]


def _expect_products(stub: Stubber, instance_type: str, pages: list[dict]) -> None:
    token = None
    for page in pages:
        params = {"ServiceCode": "AmazonEC2", "Filters": _filters(instance_type), "FormatVersion": "aws_v1",
                  "MaxResults": 100}
        if token:
            params["NextToken"] = token
        stub.add_response("get_products", page, params)
        token = page.get("NextToken")


def _expect_spot(stub: Stubber, instance_types: list[str], pages: list[dict]) -> None:
    token = None
    for page in pages:
        params = {"InstanceTypes": instance_types, "ProductDescriptions": ["Linux/UNIX"], "StartTime": START,
                  "EndTime": END, "MaxResults": 1000}
        if token:
            params["NextToken"] = token
        stub.add_response("describe_spot_price_history", page, params)
        token = page.get("NextToken")


@pytest.fixture(scope="module")
def base() -> Catalog:
    return load_catalog()


@pytest.fixture
def clients():
    pricing, ec2 = _client("pricing", "us-east-1"), _client("ec2", "us-east-1")
    with Stubber(pricing) as pstub, Stubber(ec2) as estub:
        yield pricing, ec2, pstub, estub
        pstub.assert_no_pending_responses()
        estub.assert_no_pending_responses()


def _stub_two_types(pstub: Stubber, estub: Stubber) -> None:
    for itype in TYPES:
        _expect_products(pstub, itype, [_products_page(f"get_products_{itype}_page1.json"),
                                        _products_page(f"get_products_{itype}_page2.json")])
    _expect_spot(estub, list(TYPES), [_spot_page("describe_spot_price_history_page1.json"),
                                      _spot_page("describe_spot_price_history_page2.json")])


@pytest.fixture
def refreshed(clients, base) -> RefreshResult:
    pricing, ec2, pstub, estub = clients
    _stub_two_types(pstub, estub)
    return refresh_catalog(RefreshConfig(instance_types=TYPES, end_time=END), pricing_client=pricing,
                           ec2_client=ec2, base=base)


def _row(table: pd.DataFrame, itype: str, option: str) -> pd.Series:
    rows = table[(table["instance_type"] == itype) & (table["purchase_option"] == option)]
    assert len(rows) == 1, (itype, option)
    return rows.iloc[0]


def test_refresh_returns_every_option_for_both_types(refreshed):
    table = refreshed.catalog
    assert tuple(table.columns) == CATALOG_COLUMNS
    assert refreshed.rows == len(table) == 2 * 26
    assert refreshed.instance_types == 2 and refreshed.spot_prices == 2
    for itype in TYPES:
        assert set(table.loc[table["instance_type"] == itype, "purchase_option"]) == set(ALL_OPTIONS)
    # no savings-plans client injected: every savings-plan row is derived from the RI rates and flagged
    assert table.loc[table["purchase_option"].isin(SAVINGS_PLAN_OPTIONS), "rate_is_estimate"].all()
    assert not table.loc[~table["purchase_option"].isin(SAVINGS_PLAN_OPTIONS), "rate_is_estimate"].any()
    assert set(table["provider"]) == {"aws"} and set(table["region"]) == {"us-east-1"}
    assert set(table["snapshot_date"]) == {"2025-12-08"}
    assert set(table["source"]) == {REFRESH_SOURCE}
    assert not table["upfront_is_estimate"].any()
    sorted_table = table.sort_values(["provider", "region", "instance_type", "purchase_option"])
    assert list(sorted_table.index) == list(range(len(table)))


def test_on_demand_and_no_upfront_prices(refreshed):
    t = refreshed.catalog
    od = _row(t, "p4d.24xlarge", "on_demand")
    assert od["effective_hourly_usd"] == pytest.approx(21.957642, rel=1e-12)
    assert od["upfront_usd"] == 0.0 and od["term_hours"] == 0
    assert _row(t, "g5.xlarge", "on_demand")["effective_hourly_usd"] == pytest.approx(1.006, rel=1e-12)
    no_up = _row(t, "p4d.24xlarge", "reserved_1y_no_upfront")
    assert no_up["effective_hourly_usd"] == pytest.approx(13.921094, rel=1e-12)
    assert no_up["recurring_hourly_usd"] == pytest.approx(13.921094, rel=1e-12)
    assert no_up["upfront_usd"] == 0.0 and no_up["term_hours"] == 8760
    conv = _row(t, "g5.xlarge", "convertible_3y_no_upfront")
    assert conv["effective_hourly_usd"] == pytest.approx(0.54324, rel=1e-12) and conv["term_hours"] == 26280


def test_partial_and_all_upfront_effective_hourly_by_hand(refreshed):
    t = refreshed.catalog
    partial = _row(t, "p4d.24xlarge", "reserved_1y_partial_upfront")
    assert partial["upfront_usd"] == 58071.0
    assert partial["recurring_hourly_usd"] == pytest.approx(6.6291, rel=1e-12)
    assert partial["effective_hourly_usd"] == pytest.approx(6.6291 + 58071 / 8760, rel=1e-12)
    assert not partial["upfront_is_estimate"]
    partial3 = _row(t, "g5.xlarge", "convertible_3y_partial_upfront")
    assert partial3["effective_hourly_usd"] == pytest.approx(0.2515 + 6609 / 26280, rel=1e-12)
    assert partial3["term_hours"] == 26280
    all_up = _row(t, "p4d.24xlarge", "reserved_3y_all_upfront")
    assert all_up["upfront_usd"] == 214420.0 and all_up["recurring_hourly_usd"] == 0.0
    assert all_up["effective_hourly_usd"] == pytest.approx(214420 / 26280, rel=1e-12)
    conv_all = _row(t, "g5.xlarge", "convertible_1y_all_upfront")
    assert conv_all["effective_hourly_usd"] == pytest.approx(6477 / 8760, rel=1e-12)
    commitments = t[t["purchase_option"].isin(COMMITMENT_OPTIONS)]
    rebuilt = commitments["recurring_hourly_usd"] + commitments["upfront_usd"] / commitments["term_hours"]
    assert (rebuilt - commitments["effective_hourly_usd"]).abs().max() < 1e-9


def test_spot_is_mean_over_zones_of_time_weighted_prices(refreshed):
    t = refreshed.catalog
    # p4d: us-east-1a 9.0 for 84 h then 8.0 for 84 h -> 8.5; us-east-1b 10.0 from its first point on -> 10.0
    assert _row(t, "p4d.24xlarge", "spot")["effective_hourly_usd"] == pytest.approx((8.5 + 10.0) / 2)
    # g5: us-east-1a 0.4 throughout; us-east-1b 0.3 for 144 h then 0.5 for 24 h
    g5_b = (0.3 * 144 + 0.5 * 24) / 168
    spot = _row(t, "g5.xlarge", "spot")
    assert spot["effective_hourly_usd"] == pytest.approx((0.4 + g5_b) / 2)
    assert spot["term_hours"] == 0 and spot["upfront_usd"] == 0.0


def test_gpu_specs_and_buckets_come_from_the_base_catalog(refreshed, base):
    t = refreshed.catalog
    for itype in TYPES:
        shipped = base.offers("us-east-1", instance_types=(itype,)).iloc[0]
        rows = t[t["instance_type"] == itype]
        for col in ("gpu_model", "gpu_count", "gpu_memory_gib", "interruption_bucket"):
            assert set(rows[col]) == {shipped[col]}, (itype, col)
    assert _row(t, "p4d.24xlarge", "spot")["gpu_model"] == "NVIDIA A100"
    assert any("interruption bucket" in n and "base catalog" in n for n in refreshed.notes)
    assert any("time-weighted" in n for n in refreshed.notes)


def test_round_trip_through_write_atomic_csv_and_load_catalog(refreshed, tmp_path):
    path = tmp_path / "catalog" / "refreshed.csv"
    write_atomic_csv(refreshed.catalog, path)
    loaded = load_catalog(path)
    assert set(loaded.table["snapshot_date"]) == {"2025-12-08"}
    pd.testing.assert_frame_equal(loaded.table, refreshed.catalog, check_exact=False, rtol=1e-12)
    assert set(loaded.gpu_models("us-east-1")) == {"NVIDIA A100", "NVIDIA A10G"}


def test_partial_upfront_math_from_a_price_list_item():
    item = _fixture("get_products_g5.xlarge_page2.json")["PriceList"][0]
    item = copy.deepcopy(item)
    for term in item["terms"]["Reserved"].values():
        attrs = term["termAttributes"]
        if (attrs["LeaseContractLength"], attrs["OfferingClass"], attrs["PurchaseOption"]) == \
                ("1yr", "standard", "Partial Upfront"):
            for dim in term["priceDimensions"].values():
                dim["pricePerUnit"]["USD"] = "1000" if dim["unit"] == "Quantity" else "0.5000000000"
    attributes, offers = parse_price_list_item(json.dumps(item))
    assert attributes["instanceType"] == "g5.xlarge" and attributes["gpu"] == "1"
    by_option = {o.option: o for o in offers}
    assert set(by_option) == {"on_demand", *COMMITMENT_OPTIONS}
    partial = by_option["reserved_1y_partial_upfront"]
    assert (partial.upfront_usd, partial.recurring_hourly_usd) == (1000.0, 0.5)
    assert partial.effective_hourly_usd == pytest.approx(0.5 + 1000 / 8760, rel=1e-15)
    # the parsed dict works as well as the JSON string
    assert parse_price_list_item(item)[1] == offers


def test_unpriced_instance_type_keeps_nothing_and_is_named(clients, base):
    pricing, ec2, pstub, estub = clients
    _expect_products(pstub, "p4d.24xlarge", [_products_page("get_products_p4d.24xlarge_page1.json"),
                                             _products_page("get_products_p4d.24xlarge_page2.json")])
    _expect_products(pstub, "p5.48xlarge", [{"FormatVersion": "aws_v1", "PriceList": []}])
    spot = _spot_page("describe_spot_price_history_page2.json")
    spot["SpotPriceHistory"].append({"AvailabilityZone": "us-east-1a", "InstanceType": "p5.48xlarge",
                                     "ProductDescription": "Linux/UNIX", "SpotPrice": "30.000000",
                                     "Timestamp": datetime(2025, 12, 3, tzinfo=UTC)})
    _expect_spot(estub, ["p4d.24xlarge", "p5.48xlarge"], [spot])
    result = refresh_catalog(RefreshConfig(instance_types=("p4d.24xlarge", "p5.48xlarge"), end_time=END),
                             pricing_client=pricing, ec2_client=ec2, base=base)
    assert set(result.catalog["instance_type"]) == {"p4d.24xlarge"}
    assert result.instance_types == 1 and result.rows == 26   # 14 priced + 12 savings-plan rows from its RIs
    assert _row(result.catalog, "p4d.24xlarge", "spot")["effective_hourly_usd"] == pytest.approx(9.0)
    assert any("not priced" in n and "p5.48xlarge" in n for n in result.notes)


def test_default_instance_types_are_the_base_catalogs_for_the_region(clients, base):
    pricing, ec2, pstub, estub = clients
    small = Catalog(table=base.table[base.table["instance_type"].isin(TYPES)].reset_index(drop=True),
                    path="small.csv")
    for itype in sorted(TYPES):  # g5.xlarge first: the base catalog's types, sorted
        _expect_products(pstub, itype, [_products_page(f"get_products_{itype}_page1.json"),
                                        _products_page(f"get_products_{itype}_page2.json")])
    _expect_spot(estub, sorted(TYPES), [_spot_page("describe_spot_price_history_page1.json"),
                                        _spot_page("describe_spot_price_history_page2.json")])
    messages: list[str] = []
    result = refresh_catalog(RefreshConfig(end_time=END), pricing_client=pricing, ec2_client=ec2, base=small,
                             progress=messages.append)
    assert result.rows == 52 and result.spot_prices == 2
    assert any("g5.xlarge" in m for m in messages) and any("spot" in m for m in messages)
    assert any("small.csv" in n for n in result.notes)


def test_access_denied_becomes_one_line_refresh_error(clients, base):
    pricing, ec2, pstub, _ = clients
    pstub.add_client_error(
        "get_products", service_error_code="AccessDeniedException", http_status_code=400,
        service_message="User: arn:aws:iam::123456789012:user/alice is not authorized to perform: "
                        "pricing:GetProducts")
    with pytest.raises(RefreshError) as info:
        refresh_catalog(RefreshConfig(instance_types=TYPES, end_time=END), pricing_client=pricing,
                        ec2_client=ec2, base=base)
    message = str(info.value)
    assert "GetProducts" in message and "AccessDeniedException" in message
    assert "credentials" in message and "permissions" in message
    assert "\n" not in message
    for secret in (FAKE_KEY_ID, FAKE_SECRET, "123456789012", "arn:aws"):
        assert secret not in message


def test_spot_permission_error_names_describe_spot_price_history(clients, base):
    pricing, ec2, pstub, estub = clients
    for itype in TYPES:
        _expect_products(pstub, itype, [_products_page(f"get_products_{itype}_page1.json"),
                                        _products_page(f"get_products_{itype}_page2.json")])
    estub.add_client_error("describe_spot_price_history", service_error_code="UnauthorizedOperation",
                           http_status_code=403,
                           service_message="You are not authorized to perform this operation.")
    with pytest.raises(RefreshError, match=r"DescribeSpotPriceHistory failed \(UnauthorizedOperation\)"):
        refresh_catalog(RefreshConfig(instance_types=TYPES, end_time=END), pricing_client=pricing,
                        ec2_client=ec2, base=base)


class _NoCredentialsClient:
    def get_products(self, **_params):
        raise NoCredentialsError()


class _FakeSession:
    def __init__(self, pricing, ec2, savingsplans=None):
        self.calls: list[tuple[str, str]] = []
        self._clients = {"pricing": pricing, "ec2": ec2, "savingsplans": savingsplans}

    def client(self, name, region_name=None, config=None):
        self.calls.append((name, region_name))
        return self._clients[name]


def test_missing_credentials_become_refresh_error(base):
    session = _FakeSession(_NoCredentialsClient(), object())
    with pytest.raises(RefreshError, match="GetProducts failed: no AWS credentials found"):
        refresh_catalog(RefreshConfig(region="us-west-2", instance_types=("p4d.24xlarge",)), session=session,
                        base=base)
    assert session.calls == [("pricing", "us-east-1"), ("ec2", "us-west-2"), ("savingsplans", "us-east-1")]


def test_clients_come_from_the_session_when_not_injected(clients, base):
    pricing, ec2, pstub, estub = clients
    _stub_two_types(pstub, estub)
    sp = _client("savingsplans", "us-east-1")
    with Stubber(sp) as sstub:
        sstub.add_response("describe_savings_plans_offering_rates", {"searchResults": []}, _sp_params())
        session = _FakeSession(pricing, ec2, sp)
        result = refresh_catalog(RefreshConfig(instance_types=TYPES, end_time=END), session=session, base=base)
        sstub.assert_no_pending_responses()
    assert result.rows == 52
    assert session.calls == [("pricing", "us-east-1"), ("ec2", "us-east-1"), ("savingsplans", "us-east-1")]


@pytest.mark.parametrize("config, match", [
    (RefreshConfig(spot_lookback_hours=0), "look-back"),
    (RefreshConfig(pricing_region="us-west-2"), "Price List API"),
    (RefreshConfig(instance_types=("m5.large",)), "m5.large"),
    (RefreshConfig(region="mars-north-1"), "mars-north-1"),
])
def test_invalid_configs_fail_before_calling_aws(config, match, base):
    with pytest.raises(RefreshError, match=match):
        refresh_catalog(config, pricing_client=object(), ec2_client=object(), base=base)


def test_spot_price_by_type_edge_cases():
    start, end = START, END
    records = [
        # only a point after the window end: its latest price is used
        {"InstanceType": "a", "AvailabilityZone": "z1", "SpotPrice": "2.0",
         "Timestamp": end + timedelta(hours=1)},
        # a Windows price is ignored; naive and string timestamps are read as UTC
        {"InstanceType": "b", "AvailabilityZone": "z1", "SpotPrice": "9.0", "ProductDescription": "Windows",
         "Timestamp": start},
        {"InstanceType": "b", "AvailabilityZone": "z1", "SpotPrice": "1.0",
         "ProductDescription": "Linux/UNIX", "Timestamp": "2025-11-01T00:00:00Z"},
        {"InstanceType": "b", "AvailabilityZone": "z2", "SpotPrice": "3.0",
         "Timestamp": datetime(2025, 12, 7, 12)},
    ]
    prices = spot_price_by_type(records, start, end)
    assert prices == {"a": 2.0, "b": pytest.approx((1.0 + 3.0) / 2)}


def test_unreadable_price_list_entry_is_a_refresh_error(clients, base):
    pricing, ec2, pstub, _ = clients
    _expect_products(pstub, "p4d.24xlarge", [{"FormatVersion": "aws_v1", "PriceList": ["{not json"]}])
    with pytest.raises(RefreshError, match="unreadable PriceList entry for p4d.24xlarge"):
        refresh_catalog(RefreshConfig(instance_types=("p4d.24xlarge",), end_time=END), pricing_client=pricing,
                        ec2_client=ec2, base=base)


def test_merged_refresh_replaces_only_the_refreshed_types(refreshed, base):
    from optimizer.catalog import merge_catalog

    merged = merge_catalog(base.table, refreshed.catalog)
    key = ["provider", "region", "instance_type"]
    fresh = merged.merge(refreshed.catalog[key].drop_duplicates(), on=key)
    assert len(fresh) == len(refreshed.catalog)
    assert set(fresh["source"]) == {REFRESH_SOURCE}
    untouched = base.table[~base.table["instance_type"].isin(refreshed.catalog["instance_type"])
                           | (base.table["region"] != "us-east-1")]
    assert len(merged) == len(untouched) + len(refreshed.catalog)
    assert (merged["provider"] == "gcp").sum() == (base.table["provider"] == "gcp").sum()


def _sp_params(token: str | None = None) -> dict:
    params = {"savingsPlanTypes": ["Compute", "EC2Instance"], "products": ["EC2"], "serviceCodes": ["AmazonEC2"],
              "filters": [{"name": "region", "values": ["us-east-1"]},
                          {"name": "instanceType", "values": list(TYPES)},
                          {"name": "productDescription", "values": ["Linux/UNIX"]},
                          {"name": "tenancy", "values": ["shared"]}], "maxResults": 1000}
    if token:
        params["nextToken"] = token
    return params


def _sp_result(plan_type: str, payment: str, years: int, itype: str, rate: str, **extra) -> dict:
    props = {"region": "us-east-1", "instanceType": itype, "productDescription": "Linux/UNIX", "tenancy": "shared",
             **extra}
    return {"savingsPlanOffering": {"offeringId": f"{plan_type}-{payment}-{years}", "paymentOption": payment,
                                    "planType": plan_type, "durationSeconds": 31536000 * years, "currency": "USD",
                                    "planDescription": "test"},
            "rate": rate, "unit": "Hrs", "productType": "EC2", "serviceCode": "AmazonEC2",
            "usageType": f"BoxUsage:{itype}", "operation": "RunInstances",
            "properties": [{"name": k, "value": v} for k, v in props.items()]}


def test_savings_plan_rates_are_read_over_every_page_and_split_by_payment(clients, base):
    pricing, ec2, pstub, estub = clients
    _stub_two_types(pstub, estub)
    sp = _client("savingsplans", "us-east-1")
    page1 = {"searchResults": [_sp_result("Compute", "No Upfront", 1, "p4d.24xlarge", "21.9"),
                               _sp_result("EC2Instance", "All Upfront", 3, "p4d.24xlarge", "9.5"),
                               # dedicated tenancy is another price: ignored
                               _sp_result("Compute", "Partial Upfront", 1, "g5.xlarge", "0.1", tenancy="dedicated")],
             "nextToken": "page2"}
    page2 = {"searchResults": [_sp_result("Compute", "Partial Upfront", 1, "g5.xlarge", "0.66")]}
    with Stubber(sp) as sstub:
        sstub.add_response("describe_savings_plans_offering_rates", page1, _sp_params())
        sstub.add_response("describe_savings_plans_offering_rates", page2, _sp_params("page2"))
        result = refresh_catalog(RefreshConfig(instance_types=TYPES, end_time=END), pricing_client=pricing,
                                 ec2_client=ec2, savingsplans_client=sp, base=base)
        sstub.assert_no_pending_responses()
    table = result.catalog
    no = _row(table, "p4d.24xlarge", "compute_sp_1y_no_upfront")
    assert (no["effective_hourly_usd"], no["upfront_usd"], no["recurring_hourly_usd"]) == (21.9, 0.0, 21.9)
    assert not no["rate_is_estimate"] and no["term_hours"] == 8760
    all_up = _row(table, "p4d.24xlarge", "ec2_instance_sp_3y_all_upfront")     # the whole term paid upfront
    assert all_up["upfront_usd"] == pytest.approx(9.5 * 26280) and all_up["recurring_hourly_usd"] == 0.0
    assert all_up["effective_hourly_usd"] == pytest.approx(9.5) and not all_up["rate_is_estimate"]
    partial = _row(table, "g5.xlarge", "compute_sp_1y_partial_upfront")        # page 2; half upfront
    assert partial["effective_hourly_usd"] == pytest.approx(0.66) and not partial["rate_is_estimate"]
    assert partial["upfront_usd"] == pytest.approx(0.33 * 8760)
    assert partial["recurring_hourly_usd"] == pytest.approx(0.33)
    # options AWS did not publish are derived from the same type's RI rates and flagged
    est = _row(table, "p4d.24xlarge", "compute_sp_3y_no_upfront")
    ri = _row(table, "p4d.24xlarge", "convertible_3y_no_upfront")
    assert est["rate_is_estimate"] and est["effective_hourly_usd"] == pytest.approx(ri["effective_hourly_usd"])
    assert any("3 published" in n for n in result.notes)
