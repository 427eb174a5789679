"""Concurrent saves to the store: the DuckDB file (baseline) against a PostgreSQL server, in one process.

Each run has SESSIONS sessions (threads, each with its own store object, as Streamlit sessions are), released
together, each saving SAVES scenarios under its own names with its own user, then counts what the store holds:
scenarios kept (lost = saved - kept) and audit entries (one per save, with its user). Reported: wall time, saves
per second and the ratio against the DuckDB file with the same sessions. A third run has every session save
the same SAVES names with ``overwrite=True`` (all conflicting), to measure the retries.

The PostgreSQL server is a throw-away one started in a temporary folder (``tests/pg_server.py``; Debian's
``postgresql`` package, fsync off: a lower bound on a real server's commit time). Units: seconds, saves per second.
Run: ``.venv/bin/python benchmarks/store_concurrency.py``.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import store as St  # noqa: E402
from tests.pg_server import missing_reason, running_server  # noqa: E402
from tests.test_store import flat_plan  # noqa: E402

SESSIONS = 8
SAVES = 25


def run(spec: str, shared_names: bool = False) -> tuple[float, int, int, list[BaseException]]:
    """(wall seconds, scenarios kept, audit entries, errors) of SESSIONS sessions saving SAVES each."""
    St.open_store(spec)  # schema created before the clock starts
    plan = flat_plan()
    barrier = threading.Barrier(SESSIONS + 1)
    errors: list[BaseException] = []

    def session(i: int) -> None:
        db = St.open_store(spec)
        barrier.wait()
        for k in range(SAVES):
            name = f"shared-{k}" if shared_names else f"s{i}-{k}"
            try:
                db.save(name, {"i": i}, plan, overwrite=shared_names, actor=f"user{i}@example.com")
            except BaseException as exc:  # counted and printed
                errors.append(exc)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(SESSIONS)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    db = St.open_store(spec)
    return wall, len(db.names()), len(db.audit(limit=None)), errors


def main() -> None:
    reason = missing_reason()
    if reason is not None:
        sys.exit(f"error: {reason}")
    saves = SESSIONS * SAVES
    print(f"{SESSIONS} sessions x {SAVES} saves = {saves} saves per run")
    with tempfile.TemporaryDirectory() as tmp, running_server() as server:
        rows = []
        for label, spec, shared in (
                ("duckdb file, own names", str(Path(tmp) / "a.duckdb"), False),
                ("postgresql, own names", server.new_database(), False),
                ("duckdb file, same names (overwrite)", str(Path(tmp) / "b.duckdb"), True),
                ("postgresql, same names (overwrite)", server.new_database(), True)):
            wall, kept, audited, errors = run(spec, shared)
            expected = SAVES if shared else saves
            rows.append((label, wall, kept, expected, audited, errors))
        base = {False: rows[0][1], True: rows[2][1]}
        for label, wall, kept, expected, audited, errors in rows:
            shared = "same names" in label
            print(f"{label:38s} {wall:7.2f} s  {saves / wall:7.1f} saves/s  x{base[shared] / wall:5.2f} vs duckdb  "
                  f"kept {kept}/{expected}  lost {expected - kept}  audit entries {audited}/{saves}  "
                  f"errors {len(errors)}" + (f" ({errors[0]})" if errors else ""))


if __name__ == "__main__":
    main()
