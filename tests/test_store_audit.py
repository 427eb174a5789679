"""The store without a server: the DuckDB default with no settings at all, the v1 -> v2 upgrade, the audit log of
the DuckDB file (many threads of one process saving at once) and ``gpuplan audit``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest

from app import store as St
from tests.test_store import Knobs, flat_plan

ROOT = Path(__file__).resolve().parents[1]

# The schema as the v1 planner wrote it (scenarios only), to check the upgrade keeps what it holds.
V1 = """
CREATE TABLE gpuplan_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
INSERT INTO gpuplan_meta VALUES ('schema_version', '1');
CREATE TABLE scenarios (name VARCHAR PRIMARY KEY, saved_at TIMESTAMP NOT NULL, data_source VARCHAR NOT NULL,
    note VARCHAR NOT NULL, settings_json VARCHAR NOT NULL, plan_json VARCHAR NOT NULL, expected_usd DOUBLE NOT NULL,
    p10_usd DOUBLE, p90_usd DOUBLE, all_on_demand_usd DOUBLE NOT NULL, savings_usd DOUBLE NOT NULL,
    savings_pct DOUBLE NOT NULL, upfront_usd DOUBLE NOT NULL, commitment_utilization DOUBLE,
    time_to_result_hours DOUBLE, commitments INTEGER NOT NULL);
"""


def test_with_no_settings_at_all_the_store_is_the_duckdb_file_in_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(St.STORE_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    db = St.open_store()
    assert isinstance(db, St.ScenarioStore) and db.kind == "duckdb"
    assert db.path == tmp_path / ".gpuplan" / "scenarios.duckdb" and db.path.exists()
    db.save("base", Knobs("helios", 100), flat_plan(), data_source="sample:helios")
    assert St.open_store().load("base").summary.expected_usd == pytest.approx(600.0)
    assert St.open_store().audit()[["actor", "action", "object_name"]].values.tolist() == [["local", "save", "base"]]


def test_a_path_in_the_setting_is_a_duckdb_file(tmp_path, monkeypatch):
    monkeypatch.setenv(St.STORE_ENV, str(tmp_path / "team.duckdb"))
    assert St.open_store().path == tmp_path / "team.duckdb"
    assert St.open_store(str(tmp_path / "other.duckdb")).path == tmp_path / "other.duckdb"
    monkeypatch.setenv(St.STORE_ENV, "postgresql://u@db.example/gpuplan")
    with pytest.raises(St.StoreError, match="names a PostgreSQL server, not a DuckDB file"):
        St.ScenarioStore()  # the file backend never treats a URL as a file name


def test_a_v1_file_is_upgraded_in_place_keeping_its_scenarios(tmp_path):
    path = tmp_path / "old.duckdb"
    plan = flat_plan()
    summary = St.ScenarioSummary.from_plan(plan)
    with duckdb.connect(str(path)) as con:
        con.execute(V1)
        con.execute("INSERT INTO scenarios VALUES ('kept', '2025-11-01 10:00', 'sample:helios', 'old', ?, ?, ?, ?, ?, "
                    "?, ?, ?, ?, ?, ?, ?)", [json.dumps({"sample": "helios", "hours": 100}), plan.to_json(),
                                             *(getattr(summary, c) for c in St._SUMMARY_COLUMNS)])
    db = St.ScenarioStore(path)
    assert db.schema_version() == 2
    assert db.load("kept").plan == plan and db.load("kept").note == "old"
    assert db.audit().empty and db.list_plans().empty and db.list_budgets().empty
    db.delete("kept", actor="ann@example.com")
    assert db.audit()[["actor", "action", "object_name"]].values.tolist() == [["ann@example.com", "delete", "kept"]]


def test_8_sessions_of_one_process_saving_at_once_are_all_kept_and_audited(tmp_path):
    path = tmp_path / "shared.duckdb"
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []
    plan = flat_plan()

    def session(i: int) -> None:
        db = St.open_store(str(path))
        barrier.wait()
        try:
            for k in range(3):
                db.save(f"s{i}-{k}", {"i": i}, plan, actor=f"user{i}@example.com")
        except BaseException as exc:  # collected and checked below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    db = St.open_store(str(path))
    assert sorted(db.names()) == sorted(f"s{i}-{k}" for i in range(8) for k in range(3))
    log = db.audit(limit=None)
    assert sorted(zip(log["object_name"], log["actor"], strict=True)) == sorted(
        (f"s{i}-{k}", f"user{i}@example.com") for i in range(8) for k in range(3))


def test_a_refused_or_failed_write_leaves_no_audit_entry(tmp_path):
    db = St.open_store(str(tmp_path / "s.duckdb"))
    db.save("a", Knobs("helios", 100), flat_plan())
    with pytest.raises(St.StoreError, match="already exists"):
        db.save("a", Knobs("helios", 100), flat_plan(gpus=4.0), actor="eve@example.com")
    with pytest.raises(St.StoreError, match="are empty"):
        db.save_budgets("b", "  \n", actor="eve@example.com")
    assert db.delete("missing", actor="eve@example.com") is False
    assert db.audit()["actor"].tolist() == ["local"]


def test_blank_actor_is_local_and_names_are_cleaned_in_the_log(tmp_path):
    db = St.open_store(str(tmp_path / "s.duckdb"))
    db.save_plan("  nov   plan ", flat_plan(), actor="   ")
    assert db.audit()[["actor", "object_name"]].values.tolist() == [["local", "nov plan"]]


def _gpuplan(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from app.cli import main; main()", *args], cwd=ROOT,
                          env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)


def test_the_audit_command_lists_writes_as_table_csv_and_json(tmp_path):
    path = tmp_path / "s.duckdb"
    db = St.open_store(str(path))
    db.save("=cmd|' /C calc'!A0", Knobs("helios", 100), flat_plan(), actor="ann@example.com")
    db.save_budgets("fy26", "team,period,budget_usd\nnlp,2025-11,10\n", actor="fin@example.com")
    env = {k: v for k, v in os.environ.items() if k != St.STORE_ENV}
    done = _gpuplan("audit", "--store", str(path), "--output-format", "json", env=env)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    assert [(r["actor"], r["action"], r["kind"], r["name"]) for r in rows] == [
        ("fin@example.com", "save", "budget", "fy26"), ("ann@example.com", "save", "scenario", "=cmd|' /C calc'!A0")]
    done = _gpuplan("audit", "--store", str(path), "--output-format", "csv", env=env)
    assert done.returncode == 0 and done.stdout.splitlines()[0] == "at (UTC),actor,action,kind,name,details"
    assert "'=cmd" in done.stdout  # a name that looks like a formula cannot run in a spreadsheet
    done = _gpuplan("audit", "--limit", "1", env={**env, St.STORE_ENV: str(path)})
    assert done.returncode == 0 and "fin@example.com" in done.stdout and "ann@example.com" not in done.stdout
    assert "the newest 1" in done.stdout


def test_the_audit_command_on_a_damaged_file_is_one_error_line(tmp_path):
    path = tmp_path / "s.duckdb"
    path.write_text("not a database\n")
    done = _gpuplan("audit", "--store", str(path), env=dict(os.environ))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
    assert str(path) in done.stderr and "fix:" in done.stderr


def test_8_sessions_replacing_the_same_names_at_once_all_succeed_and_are_all_audited(tmp_path):
    """Every write conflicts with the others: each is retried (random growing back-off) until it lands, none is
    reported as failed, and the audit log has every one of them (the first of each name a save, the rest changes)."""
    path = tmp_path / "shared.duckdb"
    St.open_store(str(path))
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []
    plan = flat_plan()

    def session(i: int) -> None:
        db = St.open_store(str(path))
        barrier.wait()
        for k in range(10):
            try:
                db.save(f"shared-{k % 2}", {"i": i, "k": k}, plan, overwrite=True, actor=f"user{i}@example.com")
            except BaseException as exc:  # collected and checked below
                errors.append(exc)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    db = St.open_store(str(path))
    assert sorted(db.names()) == ["shared-0", "shared-1"]
    log = db.audit(limit=None)
    assert len(log) == 80 and (log["action"] == "save").sum() == 2
    assert log.groupby("actor").size().to_dict() == {f"user{i}@example.com": 10 for i in range(8)}
    newest = log.iloc[0]
    assert db.load(newest["object_name"]).settings["i"] == int(newest["actor"][4:].split("@")[0])


def test_the_audit_command_never_creates_a_store(tmp_path):
    path = tmp_path / "none.duckdb"
    done = _gpuplan("audit", "--store", str(path), env=dict(os.environ))
    assert done.returncode == 2 and not path.exists()
    assert done.stderr.startswith(f"error: {path}: no store there yet") and "fix:" in done.stderr
