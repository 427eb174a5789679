"""Review fixes in app/: the Budgets page's uploaded operate files are written atomically into this process's
private temporary folder, never reused from a shared, guessable /tmp path; app sessions creating or writing the
scenario store at the same moment get scenarios saved or a one-line StoreError, never a raw DuckDB conflict."""

from __future__ import annotations

import hashlib
import stat
import tempfile
import threading
from pathlib import Path

from app import operate_state as O
from app.store import ScenarioStore, StoreError
from operate.budgets import load_budgets
from tests.test_store import flat_plan

BUDGETS = b"team,period,budget_usd\na,2025-Q4,1000\nb,2025-12,250\n"


def test_a_planted_or_half_written_file_under_the_shared_tmp_path_is_not_read(tmp_path):
    f = O.InputFile("budgets.csv", BUDGETS)
    shared = Path(tempfile.gettempdir()) / "gpuplan-operate" / hashlib.sha256(BUDGETS).hexdigest()[:16]
    shared.mkdir(parents=True, exist_ok=True)
    (shared / "budgets.csv").write_bytes(BUDGETS[:20])  # what a crash mid-write (or another user) leaves
    try:
        with O.materialised(f) as path:
            assert path.read_bytes() == BUDGETS
            assert [(b.team, b.budget_usd) for b in load_budgets(path, {"a", "b"})] == [("a", 1000.0), ("b", 250.0)]
            root = path.parent
            assert root != shared and shared not in path.parents and stat.S_IMODE(root.stat().st_mode) == 0o700
    finally:
        (shared / "budgets.csv").unlink()
    assert not root.exists()  # removed with its content once read


def test_each_use_gets_a_fresh_private_copy(tmp_path):
    f = O.InputFile("budgets.csv", BUDGETS)
    with O.materialised(f) as first:
        first.write_bytes(BUDGETS[:10])  # damage it: the next use must not see this
    with O.materialised(f) as second:
        assert second.read_bytes() == BUDGETS
    assert not first.exists() and not second.exists()


def _concurrently(n: int, fn) -> list[BaseException]:
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            fn(i)
        except BaseException as exc:  # collected and checked by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_sessions_opening_a_new_store_at_once_all_save(tmp_path):
    path = tmp_path / "scenarios.duckdb"
    errors = _concurrently(8, lambda i: ScenarioStore(path).save(f"scenario {i}", {"i": i}, flat_plan()))
    assert errors == []
    assert sorted(ScenarioStore(path).names()) == [f"scenario {i}" for i in range(8)]
    assert ScenarioStore(path).schema_version() == 2


def test_sessions_saving_one_name_at_once_get_store_errors_only(tmp_path):
    path = tmp_path / "scenarios.duckdb"
    ScenarioStore(path)
    errors = _concurrently(8, lambda i: ScenarioStore(path).save("shared", {"i": i}, flat_plan(), overwrite=True))
    assert all(isinstance(e, StoreError) for e in errors), errors
    errors = _concurrently(8, lambda i: ScenarioStore(path).save("shared", {"i": i}, flat_plan()))
    assert len(errors) == 8 and all(isinstance(e, StoreError) and "already exists" in str(e) for e in errors)
    assert ScenarioStore(path).names() == ["shared"]
