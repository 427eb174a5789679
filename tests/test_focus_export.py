"""The chargeback as FOCUS 1.2 rows (issue 16 item 6): the spec's columns, BilledCost equal to the chargeback to
the cent (per team and in total), and the repository's own FOCUS ingest reading the file back to the same
GPU-hours per team. Real CLI, shipped synthetic organisation and its November 2025 plan."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli import app
from operate import focus_export as F
from optimizer.catalog import load_catalog
from usage import schema as S
from usage.ingest import load_usage

ROOT = Path(__file__).resolve().parents[1]
USAGE = str(ROOT / "data_samples" / "synthetic_org.parquet")
PLAN = str(ROOT / "data_samples" / "operate" / "plan_2025-11.json")
runner = CliRunner()

# FOCUS 1.2 column list as published (FinOps Foundation, 2025): the exporter's constant must match it exactly
SPEC_1_2 = {
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingAccountType",
    "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart", "CapacityReservationId", "CapacityReservationStatus",
    "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart",
    "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName", "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus", "CommitmentDiscountType", "CommitmentDiscountUnit", "ConsumedQuantity",
    "ConsumedUnit", "ContractedCost", "ContractedUnitPrice", "EffectiveCost", "InvoiceId", "InvoiceIssuerName",
    "ListCost", "ListUnitPrice", "PricingCategory", "PricingCurrency", "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice", "PricingQuantity", "PricingUnit",
    "ProviderName", "PublisherName", "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType",
    "ServiceCategory", "ServiceName", "ServiceSubcategory", "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId",
    "SubAccountId", "SubAccountName", "SubAccountType", "Tags",
}


@pytest.fixture(scope="module", params=["proportional", "central"])
def exported(request, tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame, Path, str]:
    tmp = tmp_path_factory.mktemp(f"focus_{request.param}")
    cb, focus = tmp / "chargeback.csv", tmp / "chargeback_focus.csv"
    r = runner.invoke(app, ["chargeback", "--usage", USAGE, "--plan", PLAN, "--out", str(cb), "--focus-out",
                            str(focus), "--unused-policy", request.param])
    assert r.exit_code == 0, r.output
    assert str(focus) in r.output
    return pd.read_csv(cb), pd.read_csv(focus), focus, request.param


def test_columns_are_the_focus_1_2_columns_plus_x_columns(exported) -> None:
    _, focus, _, _ = exported
    assert set(F.FOCUS_COLUMNS) == SPEC_1_2
    assert list(focus.columns) == list(F.COLUMNS)
    assert all(c.startswith("x_") for c in F.CUSTOM_COLUMNS)


def test_billed_cost_equals_the_chargeback_to_the_cent(exported) -> None:
    cb, focus, _, policy = exported
    assert round(focus["BilledCost"].sum(), 2) == round(cb["total_usd"].sum(), 2)
    assert (focus["BilledCost"] == focus["EffectiveCost"]).all()
    teams = json_teams(focus)
    expected = cb.set_index("team")["total_usd"].round(2)
    per_team = focus.groupby(teams)["BilledCost"].sum().round(2).reindex(expected.index, fill_value=0.0)
    assert (expected == 0).sum() == 2  # two teams with no usage in November: no rows, nothing billed
    pd.testing.assert_series_equal(per_team.sort_index(), expected.sort_index(), check_names=False)
    unused = focus[focus["CommitmentDiscountStatus"] == "Unused"]
    assert round(unused["BilledCost"].sum(), 2) == round(cb["unused_commitment_usd"].sum(), 2) > 0
    committed = focus[focus["CommitmentDiscountStatus"] == "Used"]
    assert round(committed["BilledCost"].sum(), 2) == round(cb["committed_usd"].sum(), 2)
    assert round(focus.loc[focus["PricingCategory"] == "Dynamic", "BilledCost"].sum(), 2) == round(
        cb["spot_usd"].sum(), 2)
    assert round(focus.loc[focus["PricingCategory"] == "Standard", "BilledCost"].sum(), 2) == round(
        cb["on_demand_usd"].sum(), 2)
    assert set(focus["PricingCategory"]) == {"Committed", "Dynamic", "Standard"}
    assert committed["CommitmentDiscountType"].eq("Reserved Instance").all()
    assert committed["CommitmentDiscountId"].notna().all() and committed["ConsumedQuantity"].gt(0).all()
    assert unused["ConsumedQuantity"].isna().all() and unused["PricingQuantity"].gt(0).all()
    assert (focus["ChargeCategory"] == "Usage").all() and (focus["BillingCurrency"] == "USD").all()
    assert set(focus["BillingPeriodStart"]) == {"2025-11-01T00:00:00Z"}
    assert set(focus["BillingPeriodEnd"]) == {"2025-12-01T00:00:00Z"}
    assert ("central" in set(teams)) == (policy == "central")
    # list cost of used capacity at on-demand rates is above what the teams pay for it: the commitment saving
    assert committed["ListCost"].sum() > committed["EffectiveCost"].sum()


def json_teams(focus: pd.DataFrame) -> pd.Series:
    return focus["Tags"].map(lambda t: json.loads(t)["team"])


def test_the_focus_ingest_reads_back_the_same_gpu_hours_per_team(exported) -> None:
    cb, _, path, _ = exported
    cat = load_catalog()
    usage, report = load_usage(path, "auto", tag_key="team", instance_gpus=cat.instance_gpus(),
                               known_gpu_types=cat.gpu_models())
    assert any("FOCUS 1.2 export" in line for line in report.lines())  # detected as FOCUS, version 1.2
    back = usage.groupby(S.TEAM)[S.GPUS].sum()
    want = cb[cb["gpu_hours"] > 0].set_index("team")["gpu_hours"]
    assert set(back.index) == set(want.index)
    for team, hours in want.items():
        assert back[team] == pytest.approx(hours, rel=1e-6, abs=1e-3), team
    # and per GPU model: the instance types map back to the models billed
    assert set(usage[S.GPU_TYPE]) <= {"NVIDIA A100", "NVIDIA A10G", "NVIDIA H100", "NVIDIA L4"}


def test_bill_is_the_provider_invoice_effective_cost_is_the_chargeback(tmp_path: Path) -> None:
    from optimizer.plan import Plan

    out, cb_path = tmp_path / "bill_focus.csv", tmp_path / "cb.csv"
    assert runner.invoke(app, ["chargeback", "--usage", USAGE, "--plan", PLAN, "--out", str(cb_path)]).exit_code == 0
    r = runner.invoke(app, ["bill", "--usage", USAGE, "--plan", PLAN, "--out", str(out)])
    assert r.exit_code == 0, r.output
    cb, rows = pd.read_csv(cb_path), pd.read_csv(out)
    assert list(rows.columns) == list(F.COLUMNS)
    assert round(rows["EffectiveCost"].sum(), 2) == round(cb["total_usd"].sum(), 2) == 1_235_981.97
    plan = Plan.read(PLAN)
    upfront = sum(round(c.count * c.upfront_usd_per_instance, 2) for c in plan.commitments)
    purchases = rows[rows["ChargeCategory"] == "Purchase"]
    assert len(purchases) == len(plan.commitments)  # all upfront, all starting 2025-11-01: one fee each
    assert set(purchases["ChargeFrequency"]) == {"One-Time"} and (purchases["EffectiveCost"] == 0).all()
    assert round(purchases["BilledCost"].sum(), 2) == round(upfront, 2)
    usage = rows[rows["ChargeCategory"] == "Usage"]
    assert (usage.loc[usage["PricingCategory"] == "Committed", "BilledCost"] == 0).all()
    cash = upfront + cb["spot_usd"].sum() + cb["on_demand_usd"].sum()
    assert round(rows["BilledCost"].sum(), 2) == round(cash, 2)
    assert "effective 1,235,981.97 USD = chargeback 1,235,981.97 USD" in r.output
    cat = load_catalog()
    back, _ = load_usage(out, "auto", tag_key="team", instance_gpus=cat.instance_gpus(),
                         known_gpu_types=cat.gpu_models())
    per_team = back.groupby(S.TEAM)[S.GPUS].sum()
    want = cb[cb["gpu_hours"] > 0].set_index("team")["gpu_hours"]
    assert set(per_team.index) == set(want.index)  # purchase rows (team central) are not usage
    assert per_team[want.index].to_numpy() == pytest.approx(want.to_numpy(), rel=1e-6)


def test_bill_invoices_the_recurring_fee_for_the_active_hours(tmp_path: Path) -> None:
    """The sample plan with its A100 reservation turned partial-upfront at the same effective rate: the amortised
    bill is unchanged, the invoice has 19 x 6.00 USD x 720 h of recurring fee and a smaller upfront."""
    doc = json.loads(Path(PLAN).read_text())
    c = doc["commitments"][0]
    assert c["instance_type"] == "p4d.24xlarge" and c["count"] == 19
    effective = c["hourly_usd_per_instance"] + c["upfront_usd_per_instance"] / c["term_hours"]
    c["hourly_usd_per_instance"], c["upfront_usd_per_instance"] = 6.0, (effective - 6.0) * c["term_hours"]
    c["purchase_option"] = "reserved_1y_partial_upfront"
    plan_path = tmp_path / "plan_partial.json"
    plan_path.write_text(json.dumps(doc))
    r = runner.invoke(app, ["bill", "--usage", USAGE, "--plan", str(plan_path), "--out", str(tmp_path / "b.csv")])
    assert r.exit_code == 0, r.output
    rows = pd.read_csv(tmp_path / "b.csv")
    assert round(rows["EffectiveCost"].sum(), 2) == 1_235_981.97  # same amortised bill as the all-upfront plan
    recurring = rows[rows["ChargeFrequency"] == "Recurring"]
    assert len(recurring) == 1 and recurring["BilledCost"].iloc[0] == pytest.approx(19 * 6.0 * 720, abs=0.01)
    assert recurring["CommitmentDiscountQuantity"].iloc[0] == 19 * 720
    one_time = rows[(rows["ChargeFrequency"] == "One-Time") & (rows["ResourceType"] == "p4d.24xlarge")]
    assert one_time["BilledCost"].iloc[0] == pytest.approx(19 * (effective - 6.0) * 8760, abs=0.01)
