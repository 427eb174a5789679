"""Scenario store: named planner scenarios (inputs, plan, summary) in an embedded DuckDB file.

Where: ``$GPUPLAN_STORE`` if set, else ``~/.gpuplan/scenarios.duckdb``. The default sits in the user's home,
outside the repository, so scenarios survive app restarts, ``make clean`` and fresh checkouts; set
``GPUPLAN_STORE`` to keep a team's scenarios in a shared folder or a test's in a temporary one.

What a scenario holds (nothing is pickled; every column is text or a number):

* ``settings_json``: the planner settings dataclass as JSON (:func:`settings_dict`); tuples become lists
  and come back as tuples through :func:`settings_from_dict`;
* ``plan_json``: the plan's ``plan.json`` (schema ``gpuplan.plan/v1``), read back with :meth:`Plan.from_dict`;
* the summary as columns, so the list and the comparison are SQL: expected cost, p10 and p90 cost,
  all-on-demand cost and savings (USD), savings (%), upfront cash (USD), commitment utilisation
  (fraction 0-1), time-to-result (hours, when the plan carries one), commitments bought (instances);
* ``data_source`` (e.g. ``sample:helios`` or ``upload:usage.csv#<hash>``), ``note`` and ``saved_at`` (UTC).

Schema versioned: table ``gpuplan_meta`` holds ``schema_version``; opening a file written by a newer
version raises :class:`StoreError` instead of guessing. A DuckDB file holding other tables but no
``gpuplan_meta`` is another application's database: it is refused before any table is created in it.
Each operation opens and closes its own connection (:meth:`ScenarioStore._session`, the one way in) and runs in
one transaction, so a failed save leaves the file as it was and several app sessions and processes can share
one file: DuckDB lets one process hold the file at a time, so an open that finds it locked waits (random
back-off, at most ``lock_wait_s`` seconds, default 30) and then names the process holding it. A damaged file
(e.g. truncated) is reported as such, one line with the fix, whichever operation finds it.
This module never imports streamlit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pandas as pd

from optimizer.plan import Plan

STORE_ENV = "GPUPLAN_STORE"
DEFAULT_STORE = Path("~") / ".gpuplan" / "scenarios.duckdb"
SCHEMA_VERSION = 1
MAX_NAME_LENGTH = 80
LOCK_WAIT_S = 30.0
"""How long an operation waits for another process's lock on the store file before giving up, seconds."""
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.*?)\s*\(PID (?P<pid>\d+)\)")

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS gpuplan_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS scenarios (
    name VARCHAR PRIMARY KEY,
    saved_at TIMESTAMP NOT NULL,
    data_source VARCHAR NOT NULL,
    note VARCHAR NOT NULL,
    settings_json VARCHAR NOT NULL,
    plan_json VARCHAR NOT NULL,
    expected_usd DOUBLE NOT NULL,
    p10_usd DOUBLE,
    p90_usd DOUBLE,
    all_on_demand_usd DOUBLE NOT NULL,
    savings_usd DOUBLE NOT NULL,
    savings_pct DOUBLE NOT NULL,
    upfront_usd DOUBLE NOT NULL,
    commitment_utilization DOUBLE,
    time_to_result_hours DOUBLE,
    commitments INTEGER NOT NULL
);
"""
_SUMMARY_COLUMNS = ("expected_usd", "p10_usd", "p90_usd", "all_on_demand_usd", "savings_usd", "savings_pct",
                    "upfront_usd", "commitment_utilization", "time_to_result_hours", "commitments")
_COLUMNS = ("name", "saved_at", "data_source", "note", "settings_json", "plan_json", *_SUMMARY_COLUMNS)
LIST_COLUMNS = ("name", "saved_at", "data_source", "note", *_SUMMARY_COLUMNS)
"""Columns of :meth:`ScenarioStore.list`, newest scenario first."""


class StoreError(ValueError):
    """A user-facing problem with the scenario store or a scenario name: one line with the fix."""


def default_store_path() -> Path:
    """``$GPUPLAN_STORE`` if set, else ``~/.gpuplan/scenarios.duckdb`` (home expanded)."""
    return Path(os.environ.get(STORE_ENV) or DEFAULT_STORE).expanduser()


# --- settings <-> JSON ----------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    raise StoreError(f"setting value {value!r} ({type(value).__name__}) cannot be stored as JSON "
                     "(fix: use numbers, text, booleans, lists or dicts in the settings dataclass)")


def settings_dict(settings: Any) -> dict[str, Any]:
    """A settings dataclass (or mapping) as a JSON-ready dict; tuples become lists, timestamps ISO text."""
    out = _jsonable(settings)
    if not isinstance(out, dict):
        raise StoreError(f"settings must be a dataclass or a mapping, not {type(settings).__name__}")
    return out


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


T = TypeVar("T")


def settings_from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Rebuild a frozen settings dataclass from :func:`settings_dict` output.

    Lists come back as tuples (hashable, as frozen settings need). Keys the class no longer has are dropped
    and fields missing from ``data`` take the class defaults, so scenarios saved by an older app version
    still load.

    Raises:
        StoreError: a field without a default is missing from ``data``.
    """
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs = {k: _tuples(v) for k, v in data.items() if k in names}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise StoreError(f"saved settings do not fit {cls.__name__}: {exc} "
                         "(fix: save the scenario again with this version of the planner)") from None


# --- records --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScenarioSummary:
    """The figures a scenario is compared on.

    Attributes:
        expected_usd: expected cost of the plan over its window, USD.
        p10_usd, p90_usd: the plan's cost when demand comes in low / high, USD.
        all_on_demand_usd: the same demand on on-demand only, USD.
        savings_usd, savings_pct: all-on-demand minus expected, USD and percent of all-on-demand.
        upfront_usd: cash paid at purchase for upfront commitments, USD.
        commitment_utilization: share of committed GPU-hours used, fraction 0-1 (None: no commitments).
        time_to_result_hours: expected completion time of the workload, hours (None: plan has no speed model).
        commitments: instances committed to, count.
    """

    expected_usd: float
    p10_usd: float | None
    p90_usd: float | None
    all_on_demand_usd: float
    savings_usd: float
    savings_pct: float
    upfront_usd: float
    commitment_utilization: float | None
    time_to_result_hours: float | None
    commitments: int

    @classmethod
    def from_plan(cls, plan: Plan, time_to_result_hours: float | None = None) -> ScenarioSummary:
        """Summary of a plan; ``time_to_result_hours`` defaults to the plan's own figure when it has one
        (``expected.time_to_result_hours`` or ``assumptions['time_to_result_hours']``)."""
        e = plan.expected
        if time_to_result_hours is None:
            expected = plan.to_dict()["expected"]
            ttr = expected.get("time_to_result_hours", plan.assumptions.get("time_to_result_hours"))
            time_to_result_hours = None if ttr is None else float(ttr)
        return cls(expected_usd=float(e.total_usd), p10_usd=_opt(e.total_p10_usd), p90_usd=_opt(e.total_p90_usd),
                   all_on_demand_usd=float(e.all_on_demand_usd), savings_usd=float(e.savings_usd),
                   savings_pct=float(e.savings_pct), upfront_usd=float(e.upfront_usd),
                   commitment_utilization=_opt(e.commitment_utilization),
                   time_to_result_hours=time_to_result_hours, commitments=sum(c.count for c in plan.commitments))


def _opt(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


@dataclass(frozen=True)
class Scenario:
    """One saved scenario: its name, the inputs, the plan and the summary."""

    name: str
    saved_at: pd.Timestamp
    """When it was saved, naive UTC."""
    data_source: str
    note: str
    settings: dict[str, Any]
    plan: Plan
    summary: ScenarioSummary


def check_name(name: str) -> str:
    """A scenario name stripped of surrounding blanks; raise StoreError if empty or too long."""
    clean = " ".join(str(name).split())
    if not clean:
        raise StoreError("scenario name is empty (fix: type a name such as 'base +20% growth')")
    if len(clean) > MAX_NAME_LENGTH:
        raise StoreError(f"scenario name is {len(clean)} characters long (fix: use at most {MAX_NAME_LENGTH})")
    return clean


# --- the store ------------------------------------------------------------------------------------
def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:  # a failed COMMIT has already rolled back
        pass


def _is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "Could not set lock" in str(exc)


def _lock_holder(exc: BaseException) -> str:
    """``PID 1234 (/usr/bin/python3)`` from DuckDB's lock error text, or ``another process``."""
    m = _LOCK_HOLDER.search(str(exc))
    return f"PID {m['pid']} ({m['exe']})" if m else "another process"


class ScenarioStore:
    """Named scenarios in one DuckDB file (created with its folder on first use).

    Args:
        path: the ``.duckdb`` file (default :func:`default_store_path`).
        lock_wait_s: how long an operation waits while another process holds the file, seconds.
    """

    def __init__(self, path: str | Path | None = None, *, lock_wait_s: float = LOCK_WAIT_S) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self.lock_wait_s = float(lock_wait_s)
        with self._session():
            pass  # create or check the schema now, so a bad file is reported when the store is opened

    def _open(self) -> duckdb.DuckDBPyConnection:
        """A connection to the file; while another process holds its lock, retry with random back-off for at most
        :attr:`lock_wait_s` seconds, then raise a StoreError naming that process (the file itself is fine)."""
        deadline = time.monotonic() + self.lock_wait_s
        pause = 0.005
        while True:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                return duckdb.connect(str(self.path))
            except duckdb.Error as exc:
                if not _is_lock_error(exc):
                    raise self._unreadable(exc) from None
                if time.monotonic() >= deadline:
                    raise StoreError(f"{self.path}: the scenario store is in use by {_lock_holder(exc)} and stayed "
                                     f"locked for {self.lock_wait_s:g} s (fix: wait until that process has finished "
                                     "or stop it, then try again; the store file itself is fine)") from None
                time.sleep(random.uniform(0.5, 1.5) * pause)
                pause = min(pause * 1.5, 0.1)
            except OSError as exc:
                raise StoreError(f"{self.path}: cannot open the scenario store ({exc.strerror or exc}) (fix: set "
                                 f"{STORE_ENV} to a .duckdb file path in a folder you can write to)") from None

    def _unreadable(self, exc: BaseException) -> StoreError:
        detail = str(exc).splitlines()[0] if str(exc) else ""
        return StoreError(f"{self.path}: cannot read the scenario store, the file is damaged or not a DuckDB "
                          f"database ({exc.__class__.__name__}: {detail}) (fix: set {STORE_ENV} to another .duckdb "
                          "file path; if this file is your scenario store, restore it from a backup)")

    @contextlib.contextmanager
    def _session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The one way to the file: open (waiting out other processes' locks), check or create the schema, yield
        the connection, close it. DuckDB errors other than transaction conflicts (which callers retry) become a
        one-line StoreError."""
        con = self._open()
        try:
            self._migrate(con)
            yield con
        except (duckdb.TransactionException, duckdb.ConstraintException):
            raise
        except (duckdb.IOException, duckdb.InternalException, duckdb.SerializationException,
                duckdb.CatalogException, duckdb.BinderException) as exc:
            raise self._unreadable(exc) from None
        finally:
            con.close()

    def _migrate(self, con: duckdb.DuckDBPyConnection, attempts: int = 10) -> None:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_catalog = current_database() ORDER BY table_name"
                                            ).fetchall()]
        has_meta = "gpuplan_meta" in tables
        if not has_meta and tables:
            shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
            raise StoreError(f"{self.path}: this DuckDB file is another database (tables {shown}), not a gpuplan "
                             f"scenario store; nothing was written to it (fix: set {STORE_ENV} to a new file path, "
                             "e.g. ~/.gpuplan/scenarios.duckdb)")
        version = 0
        if has_meta:
            row = con.execute("SELECT value FROM gpuplan_meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: scenario store schema v{version} is newer than this planner "
                             f"understands (v{SCHEMA_VERSION}) (fix: upgrade gpu-cost-planner or set {STORE_ENV} "
                             "to another file)")
        if version < SCHEMA_VERSION:
            try:
                con.execute("BEGIN TRANSACTION")
                con.execute(_SCHEMA_V1)
                con.execute("INSERT OR REPLACE INTO gpuplan_meta VALUES ('schema_version', ?)",
                            [str(SCHEMA_VERSION)])
                con.execute("COMMIT")
            except duckdb.TransactionException:
                # Another session created the schema at the same moment: roll back and use theirs.
                _rollback(con)
                if attempts <= 1:
                    raise
                time.sleep(0.01 * (11 - attempts))  # back off a little more each time, so one session wins
                self._migrate(con, attempts - 1)

    def schema_version(self) -> int:
        """The schema version recorded in the file."""
        with self._session() as con:
            return int(con.execute("SELECT value FROM gpuplan_meta WHERE key = 'schema_version'").fetchone()[0])

    def save(self, name: str, settings: Any, plan: Plan, *, data_source: str = "", note: str = "",
             time_to_result_hours: float | None = None, overwrite: bool = False) -> Scenario:
        """Save a scenario under ``name``.

        Args:
            name: display name (blanks collapsed, at most 80 characters).
            settings: the settings dataclass (or mapping) the plan was made with.
            plan: the plan.
            data_source: where the demand came from (sample or upload, with its content hash).
            note: free text shown next to the scenario.
            time_to_result_hours: expected completion time, hours, if known (else taken from the plan).
            overwrite: replace a scenario of the same name instead of raising.

        Raises:
            StoreError: bad name, or the name exists and ``overwrite`` is false.
        """
        name = check_name(name)
        summary = ScenarioSummary.from_plan(plan, time_to_result_hours)
        settings_json = json.dumps(settings_dict(settings), sort_keys=True)
        saved_at = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("ms")
        row = [name, saved_at.to_pydatetime(), str(data_source), str(note), settings_json, plan.to_json(),
               *(getattr(summary, c) for c in _SUMMARY_COLUMNS)]
        for attempt in range(5):
            try:
                with self._session() as con:
                    con.execute("BEGIN TRANSACTION")
                    exists = con.execute("SELECT count(*) FROM scenarios WHERE name = ?", [name]).fetchone()[0]
                    if exists and not overwrite:
                        con.execute("ROLLBACK")
                        raise StoreError(f"scenario '{name}' already exists (fix: choose another name, or replace it)")
                    con.execute("DELETE FROM scenarios WHERE name = ?", [name])
                    con.execute(f"INSERT INTO scenarios ({', '.join(_COLUMNS)}) "
                                f"VALUES ({', '.join('?' * len(_COLUMNS))})", row)
                    con.execute("COMMIT")
                break
            except (duckdb.TransactionException, duckdb.ConstraintException) as exc:
                # Another session wrote the same name at the same moment (closing rolled this one back): try
                # again, so the name check above sees its scenario.
                if attempt == 4:
                    raise StoreError(f"{self.path}: scenario '{name}' is being saved by another session "
                                     f"({exc.__class__.__name__}) (fix: save it again)") from None
                time.sleep(0.02 * (attempt + 1))
        return Scenario(name=name, saved_at=saved_at, data_source=str(data_source), note=str(note),
                        settings=json.loads(settings_json), plan=plan, summary=summary)

    def list(self) -> pd.DataFrame:
        """All scenarios without their inputs and plans (:data:`LIST_COLUMNS`), newest first."""
        with self._session() as con:
            return con.execute(f"SELECT {', '.join(LIST_COLUMNS)} FROM scenarios ORDER BY saved_at DESC, name"
                               ).df()

    def names(self) -> list[str]:
        """Scenario names, newest first."""
        return self.list()["name"].tolist()

    def load(self, name: str) -> Scenario:
        """The scenario called ``name``.

        Raises:
            StoreError: no scenario has that name, or its stored plan is not a valid plan.json.
        """
        with self._session() as con:
            row = con.execute(f"SELECT {', '.join(_COLUMNS)} FROM scenarios WHERE name = ?", [name]).fetchone()
        if row is None:
            raise StoreError(f"no scenario named '{name}' in {self.path} (fix: pick one of the saved scenarios)")
        rec = dict(zip(_COLUMNS, row, strict=True))
        try:
            plan = Plan.from_dict(json.loads(rec["plan_json"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{self.path}: scenario '{name}' holds an unreadable plan ({exc}) "
                             "(fix: delete it and save it again)") from None
        summary = ScenarioSummary(**{c: rec[c] for c in _SUMMARY_COLUMNS})
        return Scenario(name=rec["name"], saved_at=pd.Timestamp(rec["saved_at"]), data_source=rec["data_source"],
                        note=rec["note"], settings=json.loads(rec["settings_json"]), plan=plan, summary=summary)

    def delete(self, name: str) -> bool:
        """Delete the scenario called ``name``; True if it existed."""
        with self._session() as con:
            con.execute("BEGIN TRANSACTION")
            n = con.execute("SELECT count(*) FROM scenarios WHERE name = ?", [name]).fetchone()[0]
            con.execute("DELETE FROM scenarios WHERE name = ?", [name])
            con.execute("COMMIT")
        return bool(n)
