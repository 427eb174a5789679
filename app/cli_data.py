"""``gpuplan data-costs``: storage and data-transfer costs per team and month from a billing export.

Units: USD; storage in GB-month, transfer in GB (see :mod:`forecasting.ingest.data_lines`). Registered on the
main ``app`` of :mod:`app.cli` and following its conventions: a user mistake ends with one ``error: ...`` line
and exit status 2; files are written atomically and never over an input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from app.cli import USER_ERRORS, TagKeyOpt, UserFacingError, _fail, app, err, out
from app.tables import OutputFormatOpt, emit
from forecasting.io import write_csv_atomic


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
    from forecasting.ingest.data_lines import by_class, data_costs, load_data_lines

    try:
        frame, report = load_data_lines(billing, tag_key=tag_key, project_key=project_key)
        costs = data_costs(frame)
        classes = by_class(frame)
        if out_path is not None:
            write_csv_atomic(costs, out_path)
        if by_class_out is not None:
            write_csv_atomic(classes, by_class_out)
    except (*USER_ERRORS, UserFacingError) as exc:
        _fail(exc)
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
