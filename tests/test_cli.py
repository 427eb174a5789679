"""gpuplan end to end on the shipped sample data, and every user mistake as one line with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli import app
from optimizer.plan import Plan
from usage import schema as S

ROOT = Path(__file__).resolve().parents[1]
HELIOS = ROOT / "data_samples" / "helios_earth_may2020.csv"
FIXTURES = ROOT / "tests" / "fixtures" / "ingest"
runner = CliRunner()


def gpuplan(*args: str) -> subprocess.CompletedProcess:
    """Run the real console entry point in a subprocess (what a user or cron job sees)."""
    return subprocess.run([sys.executable, "-c", "from app.cli import main; main()", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_plan_end_to_end_on_helios_month(tmp_path):
    out = tmp_path / "plan.json"
    proc = gpuplan("plan", "--usage", str(HELIOS), "--start", "2020-05-24T16:00Z", "--hours", "168", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "What to buy" in proc.stdout and "savings" in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["schema"] == "gpuplan.plan/v1" and doc["window"] == {"start": "2020-05-24T16:00:00Z",
                                                                   "end": "2020-05-31T16:00:00Z"}
    plan = Plan.from_dict(doc)
    assert plan.expected.total_usd < plan.expected.all_on_demand_usd
    assert {o.gpu_model for o in plan.on_demand} == {"NVIDIA Tesla V100"}


def test_forecast_and_plan_from_a_forecast_file(tmp_path):
    fc_path, plan_path = tmp_path / "fc.csv", tmp_path / "plan.json"
    r = invoke("forecast", "--usage", str(HELIOS), "--horizon-hours", "48", "--out", str(fc_path))
    assert r.exit_code == 0, r.output
    fc = pd.read_csv(fc_path)
    assert list(fc.columns) == list(S.FORECAST_COLUMNS_FULL) and len(fc) == 16 * 48
    assert (fc[S.P10] >= 0).all() and (fc[S.P10] <= fc[S.P90]).all()
    r = invoke("plan", "--usage", str(HELIOS), "--start", "2020-05-31T16:00Z", "--hours", "48", "--forecast",
               str(fc_path), "--no-spot", "--options", "reserved_1y_no_upfront,convertible_1y_no_upfront",
               "--out", str(plan_path))
    assert r.exit_code == 0, r.output
    doc = json.loads(plan_path.read_text())
    assert doc["spot"] == [] and doc["expected"]["spot_usd"] == 0
    assert {c["purchase_option"] for c in doc["commitments"]} <= {"reserved_1y_no_upfront", "convertible_1y_no_upfront"}


def test_ingest_cur_export_to_canonical(tmp_path):
    out = tmp_path / "usage.csv"
    r = invoke("ingest", str(FIXTURES / "cur2.csv"), "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "rows read" in r.output and "untagged share" in r.output
    usage = pd.read_csv(out)
    S.validate_usage(usage, str(out))
    assert set(usage.columns) >= set(S.REQUIRED_COLUMNS)


def test_demo_on_helios_prints_the_plan(tmp_path):
    r = invoke("demo", "--sample", "helios", "--hours", "48", "--out-dir", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert "What to buy" in r.output and "all on-demand would cost" in r.output
    assert "Over the commitment terms" in r.output and "obligation of the new commitments" in r.output
    assert (tmp_path / "plan.json").exists() and (tmp_path / "forecast.csv").exists()
    assert "data costs: the 'helios' sample has no storage or transfer lines" in r.output


def test_demo_data_cost_line_of_the_synthetic_sample():
    from app.cli import demo_data_lines

    # the total of data_samples/synthetic_org_data_costs.csv (tests/test_sample_data_costs.py sums it too)
    assert demo_data_lines("synthetic")[0] == (
        "data costs: 1,956,012.82 USD over 2024-06..2025-11 (storage 1,505,244.93, transfer 450,767.89; 22 teams) "
        "[SYNTHETIC, data_samples/synthetic_org_data_costs.csv]")
    # the largest saving of gpuplan data-savings on the same lines: llm-pretrain's November training-data transfer,
    # 107,275.7 GB inter-region x 0.02 + 218,214.7 GB inter-AZ x 0.01 USD/GB (shipped us-east-1 prices)
    top = demo_data_lines("synthetic")[1]
    assert top.startswith("top data saving: 4,327.66 USD a month, llm-pretrain: Co-locate data with the GPUs: keep "
                          "training data in the GPUs' region and zone (2025-11; 12 savings total ")
    assert round(107_275.7 * 0.02 + 218_214.7 * 0.01, 2) == 4327.66


GOOD_HEADER = "timestamp,team,gpu_type,gpus\n"
BAD_FILES = {
    "missing_column.csv": ("timestamp,team,gpus\n2025-01-01T00:00Z,a,1\n", "missing column 'gpu_type'"),
    "bad_time.csv": (GOOD_HEADER + "2025-01-01T00:00Z,a,NVIDIA A100,1\nnot-a-time,a,NVIDIA A100,1\n",
                     "row 3, column 'timestamp'"),
    "negative.csv": (GOOD_HEADER + "2025-01-01T00:00Z,a,NVIDIA A100,-3\n", "row 2, column 'gpus'"),
    "text_gpus.csv": (GOOD_HEADER + "2025-01-01T00:00Z,a,NVIDIA A100,lots\n", "row 2, column 'gpus'"),
    "duplicate.csv": (GOOD_HEADER + "2025-01-01T00:00Z,a,NVIDIA A100,1\n2025-01-01T00:00Z,a,NVIDIA A100,2\n",
                      "row 3, column 'timestamp'"),
    "unknown_gpu.csv": (GOOD_HEADER + "2025-01-01T00:00Z,a,NVIDIA Z9000,1\n", "row 2, column 'gpu_type'"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_usage_file_is_one_line_error_exit_2_and_writes_nothing(tmp_path, name):
    text, expected = BAD_FILES[name]
    path = tmp_path / name
    path.write_text(text)
    out = tmp_path / "fc.csv"
    r = invoke("forecast", "--usage", str(path), "--horizon-hours", "24", "--out", str(out))
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0] and expected in lines[0]
    assert "fix:" in lines[0]
    assert not out.exists()


def test_real_process_prints_no_traceback_for_user_mistakes(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(GOOD_HEADER + "2025-01-01T00:00Z,a,NVIDIA A100,-1\n")
    proc = gpuplan("forecast", "--usage", str(path), "--horizon-hours", "24", "--out", str(tmp_path / "f.csv"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip().count("\n") == 0 and "column 'gpus'" in proc.stderr


def test_subhourly_and_gaps_are_reported_not_rejected(tmp_path):
    path = tmp_path / "u.csv"
    rows = ["2025-01-01T00:00Z,a,NVIDIA A100,2", "2025-01-01T00:30Z,a,NVIDIA A100,4",
            "2025-01-01T03:00Z,a,NVIDIA A100,2"]
    path.write_text(GOOD_HEADER + "\n".join(rows) + "\n")
    r = invoke("ingest", str(path), "--out", str(tmp_path / "out.csv"))
    assert r.exit_code == 0, r.output
    assert "sub-hourly rows aggregated" in r.output and "2 missing hours filled with 0" in r.output
    assert list(pd.read_csv(tmp_path / "out.csv")[S.GPUS]) == [3.0, 0.0, 0.0, 2.0]


@pytest.mark.parametrize("args, expected", [
    (["--start", "tomorrow"], "is not an ISO 8601 time"),
    (["--start", "2020-05-20T10:30Z"], "is not an hour start"),
    (["--options", "reserved_2y_no_upfront"], "unknown purchase option 'reserved_2y_no_upfront'"),
    (["--region", "mars-north-1"], "no prices for region 'mars-north-1'"),
    (["--start", "2019-01-01T00:00Z"], "no usage before --start"),
])
def test_bad_plan_options_are_one_line(tmp_path, args, expected):
    base = {"--start": "2020-05-20T00:00Z"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [x for kv in base.items() for x in kv]
    out = tmp_path / "plan.json"
    r = invoke("plan", "--usage", str(HELIOS), "--hours", "24", "--out", str(out), *flat)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip() and not ln.startswith("  ")]
    assert len(lines) == 1 and expected in lines[0], r.output
    assert not out.exists()


def test_planned_events_adjust_the_forecast_and_are_shown(tmp_path):
    events = tmp_path / "events.yaml"
    events.write_text("- {team: vc3sl, gpu_type: NVIDIA Tesla V100, kind: add, gpus: 16, start: 2020-06-01T00:00Z,"
                      " note: new project}\n")
    base, adjusted = tmp_path / "base.csv", tmp_path / "adjusted.csv"
    assert invoke("forecast", "--usage", str(HELIOS), "--horizon-hours", "24", "--out", str(base)).exit_code == 0
    r = invoke("forecast", "--usage", str(HELIOS), "--horizon-hours", "24", "--events", str(events),
               "--out", str(adjusted))
    assert r.exit_code == 0, r.output
    assert "event add vc3sl" in r.output and "new project" in r.output
    a, b = pd.read_csv(adjusted), pd.read_csv(base)
    diff = (a[S.MEAN] - b[S.MEAN]).where(a[S.TEAM] == "vc3sl", 0.0)
    after = pd.to_datetime(a[S.TIMESTAMP]) >= pd.Timestamp("2020-06-01", tz="UTC")
    assert diff[after & (a[S.TEAM] == "vc3sl")].round(9).eq(16).all() and diff[~after].abs().max() < 1e-9
    assert (a[S.TEAM] != "vc3sl").sum() == (b[S.TEAM] != "vc3sl").sum()


def test_bad_events_file_is_one_line(tmp_path):
    events = tmp_path / "events.csv"
    events.write_text("team,gpu_type,kind,start,gpus\nvc3sl,NVIDIA Tesla V100,explode,2020-06-01,4\n")
    r = invoke("forecast", "--usage", str(HELIOS), "--horizon-hours", "24", "--events", str(events),
               "--out", str(tmp_path / "f.csv"))
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error")]
    assert len(lines) == 1 and "events.csv" in lines[0] and "kind" in lines[0]


def test_longterm_forecast_with_load_duration_curves(tmp_path):
    out, ldc = tmp_path / "daily.csv", tmp_path / "ldc.csv"
    r = invoke("longterm", "--usage", str(HELIOS), "--days", "60", "--out", str(out), "--ldc-out", str(ldc))
    assert r.exit_code == 0, r.output
    daily = pd.read_csv(out)
    assert daily["date"].nunique() == 60 and (daily[S.P10] <= daily[S.P90]).all() and (daily[S.P10] >= 0).all()
    curve = pd.read_csv(ldc)
    hours = curve[curve["scenario"] == "mean"].groupby("month")["hours"].sum()
    days = pd.to_datetime(daily["date"].drop_duplicates()).dt.to_period("M").value_counts()
    expected = {str(m.start_time.date()): 24.0 * n for m, n in days.items()}
    assert {str(pd.Timestamp(m).date()): round(h, 6) for m, h in hours.items()} == expected


def test_forecast_levels_out_writes_coherent_levels_with_events_carried_up(tmp_path):
    """Helios (real, 16 teams on V100): --levels-out writes every level, reconciled (wls_var by default); each
    hour's total equals the sum of the teams, and a planned event of +16 GPUs for vc3sl and a new team of 8 GPUs
    reach the team, the GPU type and the total."""
    events = tmp_path / "events.yaml"
    events.write_text("- {team: vc3sl, gpu_type: NVIDIA Tesla V100, kind: add, gpus: 16, start: 2020-06-01T00:00Z}\n"
                      "- {team: newlab, gpu_type: NVIDIA Tesla V100, kind: add, gpus: 8, start: 2020-06-01T00:00Z}\n")
    plain, with_events = tmp_path / "levels.csv", tmp_path / "levels_events.csv"
    for path, extra in ((plain, ()), (with_events, ("--events", str(events)))):
        r = invoke("forecast", "--usage", str(HELIOS), "--horizon-hours", "24", "--out", str(tmp_path / "fc.csv"),
                   "--levels-out", str(path), *extra)
        assert r.exit_code == 0, r.output
    assert "Every level, reconciled (wls_var)" in r.output
    a, b = pd.read_csv(with_events), pd.read_csv(plain)
    assert set(b["level"]) == {"total", "gpu_type", "team", "team/gpu_type"} and len(b) == (1 + 1 + 16 + 16) * 24
    for lv in (a, b):
        total = lv[lv["level"] == "total"].set_index(S.TIMESTAMP)[S.MEAN]
        teams = lv[lv["level"] == "team"].groupby(S.TIMESTAMP)[S.MEAN].sum()
        assert (total - teams.reindex(total.index)).abs().max() < 1e-6
        assert (lv[S.P05] <= lv[S.P10]).all() and (lv[S.P90] <= lv[S.P95]).all() and (lv[S.P05] >= 0).all()
    after = pd.to_datetime(a[S.TIMESTAMP]) >= pd.Timestamp("2020-06-01", tz="UTC")
    key = a["level"] + "/" + a["key"]
    diff = a[S.MEAN] - b.set_index(["level", "key", S.TIMESTAMP])[S.MEAN].reindex(
        pd.MultiIndex.from_frame(a[["level", "key", S.TIMESTAMP]])).fillna(0.0).to_numpy()
    assert diff[after & (key == "total/total")].round(6).eq(24).all()
    assert diff[after & (key == "team/vc3sl")].round(6).eq(16).all()
    assert diff[after & (key == "team/newlab")].round(6).eq(8).all() and diff[~after].abs().max() < 1e-6


def test_unknown_reconcile_method_is_one_line_and_writes_nothing(tmp_path):
    out, levels = tmp_path / "fc.csv", tmp_path / "levels.csv"
    r = invoke("forecast", "--usage", str(HELIOS), "--horizon-hours", "24", "--out", str(out),
               "--levels-out", str(levels), "--reconcile", "magic")
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error")]
    assert len(lines) == 1 and "--reconcile" in lines[0] and "wls_var" in lines[0]
    assert not out.exists() and not levels.exists()


def test_python_m_app_cli_has_every_command_of_the_gpuplan_script():
    """`python -m app.cli` runs the module as __main__; the command modules register on the Typer app of
    app.cli_common, so that run has every command (before, they registered on a second copy of app.cli and
    `python -m app.cli anomalies` was 'No such command')."""
    registered = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    registered |= {g.name for g in app.registered_groups}
    assert {"anomalies", "watch", "commitments", "pareto", "audit", "policy", "plan", "catalog"} <= registered
    run = subprocess.run([sys.executable, "-m", "app.cli", "--help"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "200"}, timeout=120)
    assert run.returncode == 0, run.stderr
    listed = {line.split()[1] for line in run.stdout.splitlines() if line.startswith("│ ") and len(line.split()) > 2}
    assert registered - {"app"} <= listed and "app" in listed


def test_no_command_module_imports_app_cli():
    """app/cli.py imports the command modules; they import app.cli_common, never app.cli (no import circle)."""
    import ast

    for path in sorted((ROOT / "app").glob("cli_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert "app.cli" not in names, f"{path.name} imports app.cli"
            if isinstance(node, ast.ImportFrom) and node.module == "app":
                assert "cli" not in [a.name for a in node.names], f"{path.name} imports app.cli"
