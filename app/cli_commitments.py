"""``gpuplan commitments``: the inventory of owned commitments from a billing export, and the under-used ones.

Registered on the main ``app`` of :mod:`app.cli_common` and following its conventions: a user mistake ends with one
``error: ...`` line and exit status 2; files are written atomically and never over an input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from app.cli_common import (
    USER_ERRORS,
    CatalogOpt,
    TagKeyOpt,
    UserFacingError,
    app,
    fail,
    out,
    say_note,
)
from app.cli_operate import EmailOpt, NotifyFormatOpt, NotifyOpt, NotifyStateOpt, _channels, _deliver
from app.tables import OutputFormatOpt, emit
from optimizer.catalog import load_catalog
from usage.io import write_csv_atomic


@app.command()
def commitments(
    billing: Annotated[Path, typer.Option(help="billing export with commitment rows: FOCUS (CommitmentDiscountId, "
                                               "CommitmentDiscountStatus) or AWS CUR (RIFee, DiscountedUsage, "
                                               "SavingsPlanRecurringFee)")],
    out_path: Annotated[Path | None, typer.Option("--out", help="inventory CSV to write (one row per commitment "
                                                                "and month)")] = None,
    existing_out: Annotated[Path | None, typer.Option("--existing-out", help="owned commitments in the format of "
                                                                            "gpuplan plan --existing")] = None,
    findings_out: Annotated[Path | None, typer.Option("--findings-out", help="under-used commitments CSV to "
                                                                            "write")] = None,
    below: Annotated[float, typer.Option(help="under-used when utilisation over the window is below this (0-1)",
                                         min=0.0, max=1.0)] = 0.8,
    lookback_days: Annotated[int, typer.Option(help="window before the newest billed hour, in days", min=1,
                                               max=366)] = 14,
    notify: NotifyOpt = None,
    notify_format: NotifyFormatOpt = "slack",
    email: EmailOpt = False,
    notify_state_out: NotifyStateOpt = None,
    tag_key: TagKeyOpt = "team",
    catalog: CatalogOpt = None,
    output_format: OutputFormatOpt = "table",
) -> None:
    """Owned RIs, Savings Plans, reservations and CUDs with utilisation and unused dollars per month; the ones used
    below --below over the last --lookback-days, with the teams that could move onto them."""
    from operate.commitments import UtilizationRule, review
    from operate.notify import violation_items
    from operate.policy import commitment_violations

    try:
        channels = _channels(notify, notify_format, email)
        cat = load_catalog(catalog)
        rev = review(billing, UtilizationRule(below, lookback_days), cat.instance_gpus(), cat.gpu_models(), tag_key)
        inv, findings, owned = rev.inventory, rev.findings, rev.owned
        if existing_out is not None and owned.empty:
            raise UserFacingError(f"{billing}: no commitment counted in instances with a known term, payment option "
                                  "and expiry, so --existing-out has nothing to write (fix: list them by hand; "
                                  "see gpuplan plan --help for --existing)")
        if out_path is not None:
            write_csv_atomic(inv, out_path)
        if findings_out is not None:
            write_csv_atomic(findings, findings_out)
        if existing_out is not None:
            write_csv_atomic(owned, existing_out)
    except (*USER_ERRORS, UserFacingError) as exc:
        fail(exc)
    for note in rev.notes + (rev.owned_notes if existing_out is not None else ()):
        say_note(note)
    table = Table(title=f"Commitments in {billing} (utilisation = used / (used + unused), in each commitment's unit)")
    for col in ("month", "type", "commitment", "covers", "term end", "used", "unused", "unit", "utilisation",
                "unused USD"):
        table.add_column(col, justify="right" if col in ("used", "unused", "utilisation", "unused USD") else "left")
    for _, r in inv.iterrows():
        covers = r["instance_type"] if isinstance(r["instance_type"], str) else r["scope"]
        table.add_row(r["month"], r["type"], str(r["commitment_id"]), str(covers),
                      r["term_end"] if isinstance(r["term_end"], str) else "-", f"{r['used_quantity']:,.1f}",
                      f"{r['unused_quantity']:,.1f}", str(r["unit"]),
                      "-" if pd.isna(r["utilization"]) else f"{r['utilization']:.1%}", f"{r['unused_usd']:,.2f}")
    emit(table, output_format, out)
    for _, f in findings.iterrows():
        out.print(f"UNDER-USED {f['message']}", markup=False, highlight=False)
    wrote = [str(p) for p in (out_path, findings_out, existing_out) if p is not None]
    out.print(f"{inv['commitment_id'].nunique()} commitments, {len(findings)} used below {below:.0%} over the last "
              f"{lookback_days} days" + (f"; wrote {', '.join(wrote)}" if wrote else ""), markup=False,
              highlight=False)
    items = violation_items(commitment_violations(findings, "billing"), source="commitments")
    if not _deliver(channels, items, "commitments", notify_state_out):
        raise typer.Exit(2)
