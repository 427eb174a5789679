"""``gpuplan audit``: who saved, changed or deleted a scenario, budgets file or plan in the store, and when.

Reads the audit log of the store :func:`app.store.open_store` opens (``--store``, else ``$GPUPLAN_STORE``, else
the default DuckDB file ``~/.gpuplan/scenarios.duckdb``); a server URL is shown without its password. Registered
on the main ``app`` of :mod:`app.cli_common` and following its conventions: a user mistake (an unreachable server, a
damaged file) ends with one ``error: ...`` line and exit status 2. Times are UTC.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from app.cli_common import (
    app,
    fail,
    out,
)
from app.store import STORE_ENV
from app.tables import OutputFormatOpt, emit


@app.command("audit")
def audit_command(
    store: Annotated[str | None, typer.Option("--store", help="the store: a .duckdb file path or a postgresql:// "
                                                              "URL (default: $GPUPLAN_STORE, else "
                                                              "~/.gpuplan/scenarios.duckdb)")] = None,
    limit: Annotated[int, typer.Option(min=1, help="newest entries to show")] = 100,
    output_format: OutputFormatOpt = "table",
) -> None:
    """The store's audit log, newest first: when (UTC), who, what (save, change, delete), which scenario, budgets
    file or plan, and details."""
    from app.store import StoreError, default_store_path, open_existing_store

    try:
        db = open_existing_store(store)  # reading the log never creates a store file
        if db is None:
            where = store or default_store_path()
            raise StoreError(f"{where}: no store there yet, so no audit log (fix: give --store or {STORE_ENV} the "
                             "store the app uses; a store is created by its first save)")
        log = db.audit(limit=limit)
    except StoreError as exc:
        fail(exc)
    table = Table(title=f"Audit log of {db.location} ({db.kind}; newest first, times UTC)")
    for col in ("at (UTC)", "actor", "action", "kind", "name", "details"):
        table.add_column(col)
    for r in log.itertuples(index=False):
        table.add_row(r.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], r.actor, r.action, r.object_kind, r.object_name,
                      r.details)
    emit(table, output_format, out)
    out.print(f"{len(log)} entries" + (f" (the newest {limit}; --limit shows more)" if len(log) == limit else ""),
              markup=False, highlight=False)
