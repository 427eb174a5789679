"""``gpuplan data-costs``: storage and data-transfer costs per team and month from a billing export; ``gpuplan
data-savings``: the savings that can be acted on in them; ``gpuplan data-prices-refresh``: their prices.

Units: USD; storage in GB-month, transfer in GB (see :mod:`usage.ingest.data_lines`). Registered on the
main ``app`` of :mod:`app.cli_common` and following its conventions: a user mistake ends with one ``error: ...`` line
and exit status 2; files are written atomically and never over an input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from app.cli_common import (
    USER_ERRORS,
    TagKeyOpt,
    UserFacingError,
    app,
    err,
    fail,
    out,
    step,
)
from app.tables import OutputFormatOpt, emit
from usage.io import write_csv_atomic


def _money(value: float) -> str:
    return "-" if pd.isna(value) else f"{value:,.2f}"


@app.command("data-costs")
def data_costs_command(
    billing: Annotated[Path, typer.Option(help="billing export: AWS CUR 2.0 or legacy CUR, or FOCUS 1.0-1.3 "
                                               "(AWS, Azure or Google Cloud)")],
    out_path: Annotated[Path | None, typer.Option("--out", help="per team and month CSV to write (storage_usd, "
                                                                "storage_gb_month, egress_usd, egress_gb, "
                                                                "transfer_usd, total and change)")] = None,
    by_class_out: Annotated[Path | None, typer.Option("--by-class-out", help="per team, month and storage "
                                                                            "class or transfer kind CSV to "
                                                                            "write")] = None,
    tag_key: TagKeyOpt = "team",
    project_key: Annotated[str, typer.Option(help="cost-allocation tag holding the project")] = "project",
    output_format: OutputFormatOpt = "table",
) -> None:
    """Storage (object, block, snapshots) and data-transfer costs per team and month, by class, with the
    month-on-month change; untagged lines are team 'unallocated'."""
    from usage.ingest.data_lines import by_class, data_costs, load_data_lines

    try:
        frame, report = load_data_lines(billing, tag_key=tag_key, project_key=project_key)
        costs = data_costs(frame)
        classes = by_class(frame)
        if out_path is not None:
            write_csv_atomic(costs, out_path)
        if by_class_out is not None:
            write_csv_atomic(classes, by_class_out)
    except (*USER_ERRORS, UserFacingError) as exc:
        fail(exc)
    for line in report.lines()[1:]:
        err.print(f"  {line}", markup=False, highlight=False)
    table = Table(title=f"Data costs per team and month in {billing} (USD; storage GB-month; egress GB; egress = "
                        "internet egress, transfer = inter-region, inter-AZ, NAT and ingress)")
    heads = ("month", "team", "storage USD", "storage GB-month", "egress USD", "egress GB", "transfer USD",
             "total USD", "change USD", "change")
    for col in heads:
        table.add_column(col, justify="left" if col in ("month", "team") else "right")
    for r in costs.itertuples(index=False):
        table.add_row(r.month, str(r.team), _money(r.storage_usd), f"{r.storage_gb_month:,.1f}",
                      _money(r.egress_usd), f"{r.egress_gb:,.1f}", _money(r.transfer_usd), _money(r.total_usd),
                      _money(r.total_change_usd), "-" if pd.isna(r.total_change_pct) else f"{r.total_change_pct:.1%}")
    emit(table, output_format, out)
    detail = Table(title="Data costs by class (quantity in the unit shown; USD)")
    for col in ("month", "team", "category", "class", "quantity", "unit", "cost USD"):
        detail.add_column(col, justify="right" if col in ("quantity", "cost USD") else "left")
    for _, r in classes.iterrows():
        detail.add_row(r["month"], str(r["team"]), r["category"], r["class"], "-" if pd.isna(r["quantity"])
                       else f"{r['quantity']:,.1f}", r["unit"], _money(r["cost_usd"]))
    emit(detail, output_format, out)
    wrote = [str(p) for p in (out_path, by_class_out) if p is not None]
    out.print(f"data costs {report.cost_usd:,.2f} USD over {costs['month'].nunique()} months and "
              f"{costs['team'].nunique()} teams" + (f"; wrote {', '.join(wrote)}" if wrote else ""),
              markup=False, highlight=False)


@app.command("data-savings")
def data_savings_command(
    billing: Annotated[Path, typer.Option(help="billing export: AWS CUR 2.0 or legacy CUR, or FOCUS 1.0-1.3")],
    out_path: Annotated[Path, typer.Option("--out", help="savings CSV to write (team, kind, description, "
                                                         "usd_per_month, assumptions, ...)")],
    tag_key: TagKeyOpt = "team",
    project_key: Annotated[str, typer.Option(help="cost-allocation tag holding the project")] = "project",
    policy: Annotated[Path | None, typer.Option(help="YAML policy: region, unread_days, read_fraction, "
                                                     "lifecycle_targets, avg_object_mb, snapshot_retention_days, "
                                                     "snapshot_old_share, colocate_transfer, min_usd_per_month")
                      ] = None,
    unread_days: Annotated[int | None, typer.Option(help="days without a read before storage moves to a colder "
                                                         "class (overrides the policy; default 90)")] = None,
    prices: Annotated[Path | None, typer.Option(help="data price file (default: the shipped us-east-1 file; "
                                                     "gpuplan data-prices-refresh writes others)")] = None,
    volumes: Annotated[Path | None, typer.Option(help="EBS volume inventory CSV: volume_id, team, size_gb, type, "
                                                      "attached (the billing export cannot tell attachment)")] = None,
    output_format: OutputFormatOpt = "table",
) -> None:
    """Savings that can be acted on in storage and transfer costs (USD per month, largest first): lifecycle rules
    for S3 storage nobody reads, snapshots beyond retention, unattached volumes, transfer that co-location removes."""
    from operate.data_savings import (
        find_savings,
        has_request_lines,
        load_policy,
        load_prices,
        load_volumes,
        savings_frame,
    )
    from usage.ingest.data_lines import load_data_lines, load_detail_lines

    try:
        the_policy = load_policy(policy, unread_days=unread_days)
        price_file = load_prices(prices)
        if the_policy.region not in price_file.regions():
            raise UserFacingError(f"{price_file.path}: no prices for region '{the_policy.region}' (fix: refresh "
                                  f"them with gpuplan data-prices-refresh --region {the_policy.region}, or set "
                                  "region in the policy)")
        inventory = load_volumes(volumes) if volumes is not None else None
        frame, report = load_data_lines(billing, tag_key=tag_key, project_key=project_key)
        details = load_detail_lines(billing, tag_key=tag_key, project_key=project_key)
        savings = find_savings(frame, price_file, the_policy, details=details, volumes=inventory)
        table_frame = savings_frame(savings)
        write_csv_atomic(table_frame, out_path)
    except (*USER_ERRORS, UserFacingError) as exc:
        fail(exc)
    for line in report.lines()[1:]:
        err.print(f"  {line}", markup=False, highlight=False)
    if the_policy.read_fraction is None and not has_request_lines(details):
        err.print("  note: the export has no S3 request lines (Requests-Tier1/Tier2), so unread storage cannot be "
                  "told: no lifecycle saving; give read_fraction in the policy", markup=False, highlight=False)
    latest = frame["month"].max()
    table = Table(title=f"Data savings in {billing}, priced on {latest} ({the_policy.region} prices from "
                        f"{price_file.path}; USD per month)")
    for col in ("team", "project", "kind", "description", "USD/month", "now USD/month", "one-off USD"):
        table.add_column(col, justify="right" if "USD" in col else "left")
    for s in savings:
        table.add_row(s.team, s.project or "-", s.kind, s.description, _money(s.usd_per_month),
                      _money(s.current_usd_per_month), _money(s.one_off_usd))
    emit(table, output_format, out)
    total = sum(s.usd_per_month for s in savings)
    out.print(f"{len(savings)} savings, {total:,.2f} USD per month; assumptions per saving in {out_path}",
              markup=False, highlight=False)


@app.command("data-prices-refresh")
def data_prices_refresh_command(
    out_path: Annotated[Path, typer.Option("--out", help="price CSV to write (same columns as the shipped "
                                                         "data_samples/prices/aws_data_prices.csv)")],
    region: Annotated[str, typer.Option(help="AWS region to price")] = "us-east-1",
    offer_file: Annotated[list[Path] | None, typer.Option(help="read these AWS offer files (CSV form, e.g. the "
                                                               "public AmazonS3 and AmazonEC2 <region>/index.csv) "
                                                               "instead of calling the Price List API")] = None,
) -> None:
    """Refresh the S3, EBS and data-transfer prices of a region from the AWS Price List API (needs AWS credentials
    with pricing:GetProducts; boto3's standard chain), or from downloaded AWS offer files (no credentials)."""
    from operate.data_prices_refresh import (
        PricesRefreshResult,
        prices_from_offer_csv,
        refresh_data_prices,
        write_prices,
    )
    from optimizer.catalog_refresh import RefreshError

    try:
        if offer_file:
            parts = [prices_from_offer_csv(f, region) for f in offer_file]
            table = pd.concat([p.table for p in parts], ignore_index=True).drop_duplicates("item")
            if table.empty:
                raise UserFacingError(f"{', '.join(map(str, offer_file))}: no S3, EBS or transfer price found (fix: "
                                      "give the AmazonS3, AmazonEC2 or AWSDataTransfer offer files of the region)")
            result = PricesRefreshResult(table=table.sort_values("item", kind="stable").reset_index(drop=True),
                                         products=sum(p.products for p in parts),
                                         notes=tuple(n for p in parts for n in p.notes))
        else:
            with step("Refreshing data prices") as say:
                result = refresh_data_prices(region, say=say)
        write_prices(result, out_path)
    except (*USER_ERRORS, UserFacingError, RefreshError) as exc:
        fail(exc)
    for note in result.notes:
        err.print(f"  note: {note}", markup=False, highlight=False)
    out.print(f"{len(result.table)} prices for {region} from {result.products} Price List rows; wrote {out_path}",
              markup=False, highlight=False)
