"""The PostgreSQL store against a REAL server the tests start and stop (tests/pg_server.py): many processes
saving at once, the audit log, the same API as the DuckDB file, and one-line errors without the password."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from app import store as St
from app.store_pg import PostgresStore, redact
from tests.pg_server import missing_reason, running_server
from tests.test_store import Knobs, flat_plan

ROOT = Path(__file__).resolve().parents[1]
SESSIONS = 8
BUDGETS = "team,period,budget_usd\nnlp,2025-11,1000\nvision,2025-11,2500\n"


@pytest.fixture(scope="module")
def server():
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    with running_server() as srv:
        yield srv


@pytest.fixture
def pg_url(server) -> str:
    """A new, empty database on the test server."""
    return server.new_database()


# --- many sessions (processes) at once ------------------------------------------------------------
SAVER = textwrap.dedent("""
    import json, sys
    from app.store import StoreError, open_store
    from optimizer.plan import Plan
    url, plan_file, user, steps = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    plan = Plan.from_dict(json.load(open(plan_file)))
    print("ready", flush=True)
    db = None
    for step in steps:  # "name1,name2,...:overwrite"; every session starts each step together
        names, overwrite = step.rsplit(":", 1)
        sys.stdin.readline()
        db = db or open_store(url)  # a new database: the sessions also race to create the schema
        for name in names.split(","):
            try:
                db.save(name, {"user": user}, plan, data_source="sample:helios", overwrite=overwrite == "1",
                        actor=user)
                print("saved", name, flush=True)
            except StoreError as exc:
                print("refused", exc, flush=True)
        print("done", flush=True)
""")


def _sessions(url: str, tmp_path: Path, *steps) -> list[list[str]]:
    """Run SESSIONS processes at once, session i acting as user ``user{i}@example.com``; each step is a function
    of i giving (names to save, overwrite); every session starts a step together. The lines each session
    printed per step: ``[step][session]``."""
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(flat_plan().to_json())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def args(i: int) -> list[str]:
        return [f"{','.join(names)}:{int(overwrite)}" for names, overwrite in (step(i) for step in steps)]

    procs = [subprocess.Popen([sys.executable, "-c", SAVER, url, str(plan_file), f"user{i}@example.com", *args(i)],
                              cwd=ROOT, env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for i in range(SESSIONS)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        lines: list[list[str]] = []
        for _ in steps:
            for p in procs:
                p.stdin.write("go\n")
                p.stdin.flush()
            per_session = []
            for p in procs:
                got = []
                while (line := p.stdout.readline()) and line.strip() != "done":
                    got.append(line.strip())
                assert line, p.stderr.read()[-2000:]
                per_session.append(got)
            lines.append(per_session)
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err[-2000:]
        return lines
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def test_8_processes_saving_at_once_to_a_new_database_all_succeed_and_each_save_is_audited(pg_url, tmp_path):
    per_session = 5
    (lines,) = _sessions(pg_url, tmp_path, lambda i: ([f"s{i}-{k}" for k in range(per_session)], False))
    assert lines == [[f"saved s{i}-{k}" for k in range(per_session)] for i in range(SESSIONS)]
    db = St.open_store(pg_url)
    assert isinstance(db, PostgresStore) and db.schema_version() == St.SCHEMA_VERSION
    expected = {f"s{i}-{k}" for i in range(SESSIONS) for k in range(per_session)}
    assert set(db.names()) == expected and len(db.names()) == SESSIONS * per_session
    assert db.load("s3-4").settings == {"user": "user3@example.com"}
    log = db.audit(limit=None)
    assert len(log) == SESSIONS * per_session
    assert set(log["action"]) == {"save"} and set(log["object_kind"]) == {"scenario"}
    assert set(zip(log["object_name"], log["actor"], strict=True)) == {
        (f"s{i}-{k}", f"user{i}@example.com") for i in range(SESSIONS) for k in range(per_session)}
    assert log["at"].is_monotonic_decreasing and str(log["at"].dt.tz) == "UTC"


def test_8_processes_saving_one_new_name_at_once_one_wins_the_others_are_told(pg_url, tmp_path):
    St.open_store(pg_url)
    first, replace = _sessions(pg_url, tmp_path, lambda i: (["shared"], False), lambda i: (["shared"], True))
    winners = [i for i, got in enumerate(first) if got == ["saved shared"]]
    refused = [got[0] for got in first if got != ["saved shared"]]
    assert len(winners) == 1 and len(refused) == SESSIONS - 1
    assert all(r.startswith("refused scenario 'shared' already exists (fix:") for r in refused), refused
    assert replace == [["saved shared"]] * SESSIONS  # the second step: every session replaces it
    db = St.open_store(pg_url)
    assert db.names() == ["shared"]
    log = db.audit(limit=None)
    saves = log[log["action"] == "save"]
    assert saves["actor"].tolist() == [f"user{winners[0]}@example.com"]  # refused saves are not audited
    changes = log[log["action"] == "change"]
    assert sorted(changes["actor"]) == sorted(f"user{i}@example.com" for i in range(SESSIONS))
    assert len(log) == 1 + SESSIONS and log.iloc[-1]["action"] == "save"
    last = changes.iloc[0]["actor"]  # the newest change is the scenario now stored
    assert db.load("shared").settings == {"user": last}


# --- the same API on both backends ----------------------------------------------------------------
@pytest.fixture(params=["duckdb", "postgresql"])
def store(request, tmp_path) -> St.Store:
    if request.param == "duckdb":
        return St.open_store(str(tmp_path / "s.duckdb"))
    return St.open_store(request.getfixturevalue("pg_url"))


def test_save_change_delete_of_scenarios_budgets_and_plans_are_audited_with_their_user(store):
    plan = flat_plan()
    store.save("base", Knobs("helios", 100), plan, data_source="sample:helios", actor="ann@example.com")
    store.save("base", Knobs("helios", 100), flat_plan(gpus=4.0), overwrite=True, actor="bob@example.com")
    assert store.load("base").summary.expected_usd == pytest.approx(4 * 0.6 * 100)
    store.save_budgets("fy26", BUDGETS, note="from finance", actor="fin@example.com")
    with pytest.raises(St.StoreError, match="budget 'fy26' already exists"):
        store.save_budgets("fy26", "team,period,budget_usd\nnlp,2025-11,1\n", actor="eve@example.com")
    assert store.load_budgets("fy26").budgets_csv == BUDGETS
    assert store.list_budgets()[["name", "rows"]].values.tolist() == [["fy26", 2]]
    store.save_plan("nov", plan, data_source="sample:helios", actor="ops@example.com")
    assert store.load_plan("nov").plan == plan
    assert store.list_plans()[["name", "expected_usd", "commitments"]].values.tolist() == [["nov", 600.0, 10]]
    assert store.delete_plan("nov", actor="ops@example.com") is True
    assert store.delete_plan("nov", actor="ops@example.com") is False  # nothing deleted: nothing audited
    assert store.delete_budgets("fy26", actor="fin@example.com") is True
    assert store.delete("base", actor="carol@example.com") is True
    assert store.names() == [] and store.list_plans().empty and store.list_budgets().empty

    log = store.audit()
    assert log[["actor", "action", "object_kind", "object_name"]].values.tolist()[::-1] == [
        ["ann@example.com", "save", "scenario", "base"],
        ["bob@example.com", "change", "scenario", "base"],
        ["fin@example.com", "save", "budget", "fy26"],
        ["ops@example.com", "save", "plan", "nov"],
        ["ops@example.com", "delete", "plan", "nov"],
        ["fin@example.com", "delete", "budget", "fy26"],
        ["carol@example.com", "delete", "scenario", "base"]]
    details = json.loads(log.iloc[-2]["details"])  # bob's change
    assert details["expected_usd"] == pytest.approx(240.0)
    assert list(store.audit(limit=2)["object_kind"]) == ["scenario", "budget"]


def test_scenario_listing_is_the_same_on_both_backends(store):
    store.save("a", Knobs("helios", 100), flat_plan(gpus=10.0), time_to_result_hours=12.5)
    store.save("b", Knobs("helios", 100), flat_plan(gpus=4.0))
    listing = store.list()
    assert list(listing.columns) == list(St.LIST_COLUMNS)
    assert listing["name"].tolist() == ["b", "a"]  # newest first
    assert listing["expected_usd"].tolist() == [pytest.approx(240.0), pytest.approx(600.0)]
    assert listing["time_to_result_hours"].isna().tolist() == [True, False]
    assert str(listing["saved_at"].dtype).startswith("datetime64") and listing["commitments"].tolist() == [4, 10]


# --- what the PostgreSQL backend refuses ----------------------------------------------------------
def test_another_applications_database_is_refused_and_left_alone(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute("CREATE TABLE invoices (id integer)")
    with pytest.raises(St.StoreError, match=r"another database \(tables invoices\).*nothing was written") as err:
        St.open_store(pg_url)
    assert "\n" not in str(err.value)
    with psycopg.connect(pg_url) as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'public'").fetchall()]
    assert tables == ["invoices"]


def test_a_newer_schema_is_refused(pg_url):
    St.open_store(pg_url)
    with psycopg.connect(pg_url) as con:
        con.execute("UPDATE gpuplan_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(St.StoreError, match="schema v99 is newer"):
        St.open_store(pg_url)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_an_unreachable_server_is_one_line_naming_the_setting_without_the_password(scheme):
    url = f"{scheme}://planner:s3cr%40t-pw@127.0.0.1:{_closed_port()}/gpuplan?connect_timeout=3"
    with pytest.raises(St.StoreError) as err:
        St.open_store(url)
    message = str(err.value)
    assert message.startswith(f"GPUPLAN_STORE={scheme}://planner:***@127.0.0.1:") and "cannot be reached" in message
    assert "fix: start the server" in message and "PGPASSWORD" in message and "\n" not in message
    assert "s3cr" not in message


def test_a_malformed_url_is_one_line_without_the_password():
    with pytest.raises(St.StoreError) as err:
        St.open_store("postgresql://planner:hunter2@db.example:5432/gpuplan?sslmode=sometimes")
    message = str(err.value)
    assert "GPUPLAN_STORE=postgresql://planner:***@db.example:5432/gpuplan" in message
    assert "fix:" in message and "hunter2" not in message and "\n" not in message


def test_the_audit_command_reads_the_server_named_by_the_environment(pg_url):
    db = St.open_store(pg_url)
    db.save("base", Knobs("helios", 100), flat_plan(), actor="ann@example.com")
    db.delete("base", actor="bob@example.com")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GPUPLAN_STORE": pg_url}
    done = subprocess.run([sys.executable, "-c", "from app.cli import main; main()", "audit", "--output-format",
                           "json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert [(r["actor"], r["action"], r["kind"], r["name"]) for r in doc["rows"]] == [
        ("bob@example.com", "delete", "scenario", "base"), ("ann@example.com", "save", "scenario", "base")]
    assert "postgresql" in doc["title"]


def test_the_audit_command_on_an_unreachable_server_is_one_error_line_without_the_password():
    url = f"postgresql://planner:topsecret@127.0.0.1:{_closed_port()}/gpuplan?connect_timeout=3"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GPUPLAN_STORE": url}
    done = subprocess.run([sys.executable, "-c", "from app.cli import main; main()", "audit"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "GPUPLAN_STORE=postgresql://planner:***@" in lines[0]
    assert "topsecret" not in done.stderr and "Traceback" not in done.stderr


def test_redact_hides_passwords_in_the_url_and_in_parameters():
    assert redact("postgresql://u:p%40ss@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgres://u@h/db?password=x&sslmode=require") == "postgres://u@h/db?password=***&sslmode=require"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"


# --- the app on the server ------------------------------------------------------------------------
def _scenarios_page() -> None:  # runs inside AppTest's script: imports must be local
    from app import uploads
    from app.app_pages import scenarios

    uploads.sidebar_upload()
    scenarios.render()


def test_the_scenarios_page_saves_to_the_server_and_the_save_is_audited(pg_url, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from app import fmt
    from app import state as A
    from app.app_pages import scenarios as P

    monkeypatch.setenv(A.DEFAULT_SAMPLE_ENV, "helios")
    monkeypatch.setenv(A.DEFAULT_HOURS_ENV, "168")
    monkeypatch.setenv(St.STORE_ENV, pg_url)
    at = AppTest.from_function(_scenarios_page, default_timeout=300)
    at.run()
    at.text_input(key=P.NAME_KEY).set_value("base on the server")
    next(b for b in at.get("button") if b.proto.label == "Save scenario").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    saved = St.open_store(pg_url).load("base on the server")
    assert saved.settings["sample"] == "helios" and saved.summary.expected_usd > 0
    assert any(f"expected cost {fmt.usd(saved.summary.expected_usd)}" in fmt.unplain(s.value) for s in at.success)
    assert any("1 saved in postgresql://" in fmt.unplain(c.value) and "(postgresql;" in fmt.unplain(c.value)
               for c in at.caption)
    log = St.open_store(pg_url).audit()
    assert log[["actor", "action", "object_kind", "object_name"]].values.tolist() == [
        ["local", "save", "scenario", "base on the server"]]


def test_a_wrong_password_is_refused_in_one_line_and_the_right_one_comes_from_pgpassword(monkeypatch):
    if missing_reason() is not None:
        pytest.skip(missing_reason())
    with running_server(password="right-horse-battery") as srv:
        wrong = srv.url().replace("gpuplan_test@", "gpuplan_test:wrong-staple-7@")
        with pytest.raises(St.StoreError) as err:
            St.open_store(wrong)
        message = str(err.value)
        assert message.startswith("GPUPLAN_STORE=postgresql://gpuplan_test:***@/postgres?host=")
        assert "refused the login" in message and "password authentication failed" in message
        assert "wrong-staple-7" not in message and "\n" not in message
        monkeypatch.setenv("PGPASSWORD", "right-horse-battery")  # libpq's standard place: not in the URL
        db = St.open_store(srv.url())
        db.save("base", Knobs("helios", 100), flat_plan(), actor="ann@example.com")
        assert db.names() == ["base"] and "right-horse" not in db.location
