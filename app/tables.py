"""How every CLI table is printed: in full as a table, or as CSV or JSON (``--output-format table|csv|json``).

``table`` (default): a rich table whose cells are never cut with an ellipsis. On a terminal, a cell too wide for
the terminal wraps inside its column (``overflow="fold"``); piped (cron, CI logs, ``| less``), the table is printed
at its natural width, so no value is cut or wrapped, whatever ``COLUMNS`` says.

``csv`` and ``json``: stdout carries only the tables (everything else the command prints goes to stderr, see
:func:`data_only_stdout`); the values are the ones the table shows, with numbers as numbers (``1,234.5`` ->
``1234.5``, ``12.5%`` -> ``0.125``) in right-aligned (numeric) columns and ``-`` or an empty cell as missing.
CSV goes through the spreadsheet-formula sanitiser (:func:`usage.io.csv_text`); a command with several
tables prints them one after the other, CSV blocks separated by a blank line, JSON as one object per line
(``title, columns, rows``).
No units of its own: each table's title and headers state them.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from usage.io import csv_text

OUTPUT_FORMATS = ("table", "csv", "json")
OutputFormatOpt = Annotated[str, typer.Option(
    "--output-format", help="how tables print: table (full values, never cut), csv or json (stdout then holds only "
                            "the tables; messages go to stderr)")]
NUMBER = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?([eE][+-]?\d+)?$")
MISSING = ("", "-")
MAX_WIDTH = 100_000
_emitted = 0  # tables emitted by the running command (CSV blocks after the first start with a blank line)


def check_output_format(fmt: str) -> str:
    """The format, lower-cased; ValueError (one line, with the fix) for an unknown one."""
    value = fmt.strip().lower()
    if value not in OUTPUT_FORMATS:
        raise ValueError(f"--output-format '{fmt}' is not one of {', '.join(OUTPUT_FORMATS)} "
                         "(fix: --output-format table, csv or json)")
    return value


@contextmanager
def data_only_stdout(console: Console, fmt: str) -> Iterator[None]:
    """While a command runs with ``csv`` or ``json`` output, send what ``console`` prints (notes, "wrote ..."
    lines, summaries) to stderr, so stdout holds only the tables :func:`emit` writes."""
    global _emitted
    _emitted = 0
    if fmt == "table":
        yield
        return
    previous = console._file  # noqa: SLF001 - None: the console follows whatever sys.stdout is at print time
    console.file = sys.stderr
    try:
        yield
    finally:
        console._file = previous  # noqa: SLF001


def _plain(cell: Any) -> str:
    if isinstance(cell, Text):
        return cell.plain
    return "" if cell is None else str(cell)


def _value(text: str, numeric: bool) -> Any:
    if text.strip() in MISSING:
        return None
    value = text.strip()
    if numeric and value.endswith("%") and NUMBER.match(value[:-1]):
        return round(float(value[:-1].replace(",", "")) / 100.0, 12)
    if numeric and NUMBER.match(value):
        number = value.replace(",", "")
        return int(number) if number.lstrip("+-").isdigit() else float(number)
    return text


def table_frame(table: Table) -> pd.DataFrame:
    """The table's cells as a frame: one column per header, numbers (and percentages, as fractions) parsed in
    right-aligned columns; ``-`` and empty cells are None."""
    data = {}
    for column in table.columns:
        numeric = column.justify == "right"
        data[_plain(column.header)] = [_value(_plain(c), numeric) for c in column.cells]
    return pd.DataFrame(data, columns=list(data), dtype=object)


def _full_width(console: Console, table: Table) -> int:
    """Width the table needs to show every cell on one line (its maximum measurement)."""
    options = console.options.update(width=MAX_WIDTH, max_width=MAX_WIDTH)
    return max(Measurement.get(console, options, table).maximum, 20)


def emit(table: Table, fmt: str, console: Console) -> None:
    """Print ``table`` as ``fmt`` (:data:`OUTPUT_FORMATS`); see the module docstring.

    Args:
        table: the rich table (headers, cells as shown; right-aligned columns are numeric).
        fmt: ``table``, ``csv`` or ``json``.
        console: the command's stdout console (``table`` output goes there).
    """
    global _emitted
    _emitted += 1
    if fmt == "csv":
        sys.stdout.write(("\n" if _emitted > 1 else "") + csv_text(table_frame(table)))
        sys.stdout.flush()
        return
    if fmt == "json":
        frame = table_frame(table)
        rows = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
                for r in frame.astype(object).to_dict(orient="records")]
        doc = {"title": _plain(table.title), "columns": list(frame.columns), "rows": rows}
        sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    for column in table.columns:  # wrap inside the column rather than cut with an ellipsis
        column.overflow = "fold"
        column.no_wrap = False
    if console.is_terminal:
        console.print(table)
        return
    wide = Console(file=console.file, width=_full_width(console, table), markup=False, highlight=False,
                   soft_wrap=False, color_system=None)
    wide.print(table)
