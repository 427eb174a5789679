"""CLI tables printed in full, or as CSV/JSON (issue 15 item 12): ``app.tables`` and every command that prints
a table.

A team name longer than any terminal (:data:`LONG`) goes through each command: piped with ``COLUMNS=60`` the
table keeps it whole on one line; ``--output-format csv`` and ``json`` put only the table on stdout and parse
back to the same values (numbers as numbers); on a 60-column terminal the cell wraps inside its column instead of
being cut with an ellipsis.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.testing import CliRunner

from app import tables as T
from app.cli import app
from optimizer import catalog as C

ROOT = Path(__file__).resolve().parents[1]
LONG = "research-platform-large-language-model-pretraining-and-evaluation-emea"
HELIOS = C.DATA_DIR / "helios_earth_may2020.csv"
SYNTHETIC = ROOT / "data_samples" / "synthetic_org.parquet"
OPS = ROOT / "data_samples" / "operate"
runner = CliRunner(env={"COLUMNS": "60"})


def sample_table() -> Table:
    table = Table(title="Chargeback (USD)")
    for col, justify in (("team", "left"), ("GPU-hours", "right"), ("total", "right"), ("share", "right"),
                         ("status", "left"), ("note", "right")):
        table.add_column(col, justify=justify)
    table.add_row(LONG, "1,234.5", "113,819.00", "12.5%", Text("ALERT", style="bold red"), "-")
    table.add_row("=HYPERLINK(\"x\")", "0.0", "-5", "0%", "ok", "1,234-5,678")
    return table


EXPECTED = [
    {"team": LONG, "GPU-hours": 1234.5, "total": 113819.0, "share": 0.125, "status": "ALERT", "note": None},
    {"team": "=HYPERLINK(\"x\")", "GPU-hours": 0.0, "total": -5, "share": 0.0, "status": "ok", "note": "1,234-5,678"},
]


def test_piped_table_is_printed_at_full_width_whatever_the_console_width() -> None:
    buf = io.StringIO()
    T.emit(sample_table(), "table", Console(file=buf, width=60, markup=False))
    text = buf.getvalue()
    assert any(LONG in line and "113,819.00" in line for line in text.splitlines()), text
    assert "…" not in text


def test_terminal_table_wraps_inside_the_column_and_never_cuts() -> None:
    buf = io.StringIO()
    T.emit(sample_table(), "table", Console(file=buf, width=60, force_terminal=True, color_system=None, markup=False))
    lines = buf.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 60 and "…" not in buf.getvalue()
    first_cells = "".join(line.split("│")[1].strip() for line in lines if line.startswith("│"))
    assert LONG in first_cells  # the name, folded over several lines of its column, is all there


def test_csv_and_json_parse_back_to_the_table_values(capsys: pytest.CaptureFixture[str]) -> None:
    T.emit(sample_table(), "json", Console(file=io.StringIO()))
    doc = json.loads(capsys.readouterr().out)
    assert doc["title"] == "Chargeback (USD)" and doc["columns"] == list(EXPECTED[0])
    assert doc["rows"] == EXPECTED
    T.emit(sample_table(), "csv", Console(file=io.StringIO()))
    back = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(back.columns) == list(EXPECTED[0])
    assert back["team"].tolist() == [LONG, "'=HYPERLINK(\"x\")"]  # spreadsheet formula neutralised
    assert back["GPU-hours"].tolist() == [1234.5, 0.0] and back["total"].tolist() == [113819.0, -5.0]
    assert back["share"].tolist() == [0.125, 0.0] and back["note"].isna().tolist() == [True, False]


def test_unknown_output_format_is_refused() -> None:
    with pytest.raises(ValueError, match="--output-format 'xml'"):
        T.check_output_format("xml")
    assert T.check_output_format(" CSV ") == "csv"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The Helios and synthetic samples with one team renamed to :data:`LONG`, with their operate files."""
    tmp = tmp_path_factory.mktemp("tables")
    helios = pd.read_csv(HELIOS)
    helios.loc[helios["team"] == "vc6YE", "team"] = LONG
    helios.to_csv(tmp / "helios_long.csv", index=False)
    synthetic = pd.read_parquet(SYNTHETIC)
    synthetic = synthetic[synthetic["timestamp"] >= pd.Timestamp("2025-09-01", tz=synthetic["timestamp"].dt.tz)]
    synthetic["team"] = synthetic["team"].replace({"llm-pretrain": LONG})
    synthetic.to_parquet(tmp / "synthetic_long.parquet", index=False)
    budgets = pd.read_csv(OPS / "budgets.csv")
    budgets = budgets[budgets["team"] == "llm-pretrain"].assign(team=LONG)
    budgets.to_csv(tmp / "budgets.csv", index=False)
    units = pd.read_csv(OPS / "units.csv")
    units = units[units["team"] == "llm-pretrain"].assign(team=LONG)
    units = units[units["period"] >= "2025-09"]
    units.to_csv(tmp / "units.csv", index=False)
    (tmp / "policy.yaml").write_text((OPS / "policy.yaml").read_text().replace("llm-pretrain", LONG))
    (tmp / "wl.yaml").write_text("classes:\n  train: {min_gpu_memory_gib: 16, spot_tolerant: true}\ndefault: train\n")
    return {"tmp": tmp, "helios": tmp / "helios_long.csv", "synthetic": tmp / "synthetic_long.parquet"}


# every command that prints a table: its arguments and whether the long team name is in its table
COMMANDS = {
    "forecast": (["forecast", "--usage", "{helios}", "--horizon-hours", "24", "--out", "{tmp}/fc.csv"], True),
    "plan": (["plan", "--usage", "{helios}", "--start", "2020-05-31T16:00Z", "--hours", "24", "--workloads",
              "{tmp}/wl.yaml", "--out", "{tmp}/plan.json"], True),
    "catalog show": (["catalog", "show", "--gpu-model", "NVIDIA H100"], False),
    "longterm": (["longterm", "--usage", "{helios}", "--days", "30", "--out", "{tmp}/lt.csv"], False),
    "backtest": (["backtest", "--usage", "{helios}", "--horizon-hours", "24", "--origins", "1", "--out",
                  "{tmp}/bt.csv"], False),
    "backtest-plan": (["backtest-plan", "--usage", "{helios}", "--hours", "24", "--no-spot", "--lookbacks", "7"],
                      False),
    "demo": (["demo", "--sample", "helios", "--hours", "24", "--out-dir", "{tmp}/demo"], False),
    "pareto": (["pareto", "--usage", "{helios}", "--workloads", "{tmp}/wl.yaml", "--hours", "168", "--steps", "3"],
               False),
    "alerts": (["alerts", "--usage", "{synthetic}", "--budgets", "{tmp}/budgets.csv", "--out", "{tmp}/a.json"],
               True),
    "chargeback": (["chargeback", "--usage", "{synthetic}", "--plan", str(OPS / "plan_2025-11.json"), "--out",
                    "{tmp}/cb.csv"], True),
    "bill": (["bill", "--usage", "{synthetic}", "--plan", str(OPS / "plan_2025-11.json"), "--out",
              "{tmp}/bill.csv"], False),
    "units": (["units", "--usage", "{synthetic}", "--units", "{tmp}/units.csv", "--out", "{tmp}/u.csv"], True),
    "check": (["check", "--usage", "{synthetic}", "--policy", "{tmp}/policy.yaml"], False),
    "commitments": (["commitments", "--billing", str(ROOT / "data_samples" / "billing" / "cur_gpu_commitments.csv")],
                    False),
    "catalog show --missing": (["catalog", "show", "--missing"], False),
}


def _args(name: str, inputs: dict[str, Path]) -> list[str]:
    return [a.format(**{k: str(v) for k, v in inputs.items()}) for a in COMMANDS[name][0]]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_table_command_prints_csv_and_json_with_the_same_values(name: str, inputs: dict[str, Path]) -> None:
    r_json = runner.invoke(app, [*_args(name, inputs), "--output-format", "json"])
    assert r_json.exit_code in (0, 1), r_json.output
    docs = [json.loads(line) for line in r_json.stdout.splitlines() if line.strip()]  # stdout: only the tables
    assert docs and all(d["columns"] for d in docs)
    r_csv = runner.invoke(app, [*_args(name, inputs), "--output-format", "csv"])
    assert r_csv.exit_code == r_json.exit_code, r_csv.output
    blocks = [b for b in r_csv.stdout.split("\n\n") if b.strip()]
    assert len(blocks) == len(docs)
    for doc, block in zip(docs, blocks, strict=True):
        from_json = pd.DataFrame(doc["rows"], columns=doc["columns"])
        from_csv = pd.read_csv(io.StringIO(block), keep_default_na=False, na_values=[""])
        assert list(from_csv.columns) == doc["columns"]
        assert len(from_csv) == len(from_json)
        for col in doc["columns"]:
            a, b = from_json[col].tolist(), from_csv[col].tolist()
            for x, y in zip(a, b, strict=True):
                if x is None or (isinstance(x, float) and x != x):
                    assert y != y or y is None, (col, x, y)
                elif isinstance(x, int | float):
                    assert float(y) == pytest.approx(float(x)), (col, x, y)
                else:
                    assert str(y).lstrip("'") == str(x), (col, x, y)
    if COMMANDS[name][1]:
        teams = [v for d in docs for row in d["rows"] for v in row.values() if isinstance(v, str)]
        assert any(LONG in v for v in teams), f"{LONG} not in the {name} table"


@pytest.mark.parametrize("name", ["chargeback", "forecast"])
def test_piped_table_at_columns_60_prints_the_long_team_name_in_full(name: str, inputs: dict[str, Path]) -> None:
    proc = subprocess.run([sys.executable, "-c", "from app.cli import main; main()", *_args(name, inputs)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, "COLUMNS": "60", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if LONG in line]
    assert rows, proc.stdout
    assert "…" not in proc.stdout and "..." not in "".join(rows)
    # the whole row on one line: the name and the numbers after it
    assert all(line.rstrip().endswith(("│", "|")) and line.count("│") >= 4 for line in rows)
