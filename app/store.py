"""Scenario store: named planner scenarios (inputs, plan, summary), budgets files and plans, with an audit log.

Two backends behind one interface (:class:`Store`, opened with :func:`open_store`):

* an embedded DuckDB file, the default: ``$GPUPLAN_STORE`` if it is a path, else ``~/.gpuplan/scenarios.duckdb``.
  The default sits in the user's home, outside the repository, so scenarios survive app restarts, ``make clean``
  and fresh checkouts; set ``GPUPLAN_STORE`` to keep a team's scenarios in a shared folder or a test's in a
  temporary one;
* a PostgreSQL server for a shared deployment: ``GPUPLAN_STORE=postgresql://user@host/db`` (or ``postgres://``),
  see :mod:`app.store_pg`. The password comes from the URL or libpq's standard places (``PGPASSWORD``,
  ``~/.pgpass``) and is never shown in a message.

What a scenario holds (nothing is pickled; every column is text or a number):

* ``settings_json``: the planner settings dataclass as JSON (:func:`settings_dict`); tuples become lists
  and come back as tuples through :func:`settings_from_dict`;
* ``plan_json``: the plan's ``plan.json`` (schema ``gpuplan.plan/v1``), read back with :meth:`Plan.from_dict`;
* the summary as columns, so the list and the comparison are SQL: expected cost, p10 and p90 cost,
  all-on-demand cost and savings (USD), savings (%), upfront cash (USD), commitment utilisation
  (fraction 0-1), time-to-result (hours, when the plan carries one), commitments bought (instances);
* ``data_source`` (e.g. ``sample:helios`` or ``upload:usage.csv#<hash>``), ``note`` and ``saved_at`` (UTC).

Budgets files (their CSV text, as :mod:`operate.budgets` reads it) and plans (their ``plan.json``) are kept the
same way, by name. Every write (save, change = replace, delete) is recorded in ``audit_log`` with who did it
(``actor``) and when (UTC), in the same transaction as the write.

Schema versioned (the same tables and versions in both backends): table ``gpuplan_meta`` holds
``schema_version`` (v1: scenarios; v2 adds budgets, plans and audit_log, upgrading a v1 store in place);
opening a store written by a newer version raises :class:`StoreError` instead of guessing. A database holding
other tables but no ``gpuplan_meta`` is another application's: it is refused before any table is created in it.
Each DuckDB operation opens and closes its own connection (:meth:`ScenarioStore._session`, the one way in) and
runs in one transaction, so a failed save leaves the file as it was and several app sessions and processes can
share one file: DuckDB lets one process hold the file at a time, so an open that finds it locked waits (random
back-off, at most ``lock_wait_s`` seconds, default 30) and then names the process holding it. A damaged file
(e.g. truncated) is reported as such, one line with the fix, whichever operation finds it.
This module never imports streamlit.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pandas as pd

from optimizer.plan import Plan

STORE_ENV = "GPUPLAN_STORE"
DEFAULT_STORE = Path("~") / ".gpuplan" / "scenarios.duckdb"
SCHEMA_VERSION = 2
MAX_NAME_LENGTH = 80
LOCK_WAIT_S = 30.0
"""How long an operation waits for another process's lock on the store file before giving up, seconds."""
WRITE_ATTEMPTS = 30
"""Times a write that conflicts with another session's is run again (random growing back-off, at most 0.25 s)
before the store reports the conflict; both backends."""
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.*?)\s*\(PID (?P<pid>\d+)\)")

_SUMMARY_COLUMNS = ("expected_usd", "p10_usd", "p90_usd", "all_on_demand_usd", "savings_usd", "savings_pct",
                    "upfront_usd", "commitment_utilization", "time_to_result_hours", "commitments")
_COLUMNS = ("name", "saved_at", "data_source", "note", "settings_json", "plan_json", *_SUMMARY_COLUMNS)
LIST_COLUMNS = ("name", "saved_at", "data_source", "note", *_SUMMARY_COLUMNS)
"""Columns of :meth:`Store.list`, newest scenario first."""


class StoreError(ValueError):
    """A user-facing problem with the scenario store or a scenario name: one line with the fix."""


def default_store_path() -> Path:
    """The DuckDB file: ``$GPUPLAN_STORE`` if set, else ``~/.gpuplan/scenarios.duckdb`` (home expanded)."""
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


# --- audit log ------------------------------------------------------------------------------------
ACTIONS = ("save", "change", "delete")
"""Audit actions: ``save`` a new object, ``change`` (replace) an existing one, ``delete`` one."""
OBJECT_KINDS = ("scenario", "budget", "plan")
AUDIT_COLUMNS = ("at", "actor", "action", "object_kind", "object_name", "details")
"""Columns of :meth:`Store.audit`, newest entry first; ``at`` is a UTC timestamp."""
DEFAULT_ACTOR = "local"
"""The actor of a write when nobody is signed in (local use)."""


def check_actor(actor: str) -> str:
    """The actor recorded in the audit log: blanks collapsed; empty becomes :data:`DEFAULT_ACTOR`."""
    clean = " ".join(str(actor).split())
    return clean[:320] or DEFAULT_ACTOR


# --- one interface, two backends ------------------------------------------------------------------
class Tx(abc.ABC):
    """One open transaction of a backend; SQL uses ``?`` placeholders whichever the backend."""

    @abc.abstractmethod
    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run ``sql`` and return every row."""

    @abc.abstractmethod
    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run ``sql`` (no result)."""

    def frame(self, sql: str, columns: Sequence[str], params: Sequence[Any] = ()) -> pd.DataFrame:
        """The rows of ``sql`` as a frame with ``columns`` (the select list, in order)."""
        return pd.DataFrame(self.rows(sql, params), columns=list(columns))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS gpuplan_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS scenarios (
    name VARCHAR PRIMARY KEY,
    saved_at TIMESTAMP NOT NULL,
    data_source VARCHAR NOT NULL,
    note VARCHAR NOT NULL,
    settings_json VARCHAR NOT NULL,
    plan_json VARCHAR NOT NULL,
    expected_usd DOUBLE PRECISION NOT NULL,
    p10_usd DOUBLE PRECISION,
    p90_usd DOUBLE PRECISION,
    all_on_demand_usd DOUBLE PRECISION NOT NULL,
    savings_usd DOUBLE PRECISION NOT NULL,
    savings_pct DOUBLE PRECISION NOT NULL,
    upfront_usd DOUBLE PRECISION NOT NULL,
    commitment_utilization DOUBLE PRECISION,
    time_to_result_hours DOUBLE PRECISION,
    commitments INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS budgets (
    name VARCHAR PRIMARY KEY,
    saved_at TIMESTAMP NOT NULL,
    note VARCHAR NOT NULL,
    budgets_csv VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS plans (
    name VARCHAR PRIMARY KEY,
    saved_at TIMESTAMP NOT NULL,
    data_source VARCHAR NOT NULL,
    note VARCHAR NOT NULL,
    plan_json VARCHAR NOT NULL,
    expected_usd DOUBLE PRECISION NOT NULL,
    commitments INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
    "at" TIMESTAMPTZ NOT NULL,
    actor VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    object_kind VARCHAR NOT NULL,
    object_name VARCHAR NOT NULL,
    details VARCHAR NOT NULL
);
"""
"""Schema v2 in SQL both backends run as written (v1 had gpuplan_meta and scenarios only; the upgrade adds the
other tables, keeping every scenario). ``DOUBLE PRECISION`` is DuckDB's ``DOUBLE``; ``"at"`` is quoted because
DuckDB reserves the word."""
BUDGET_COLUMNS = ("name", "saved_at", "note", "budgets_csv")
PLAN_LIST_COLUMNS = ("name", "saved_at", "data_source", "note", "expected_usd", "commitments")
"""Columns of :meth:`Store.list_plans`, newest first."""
_PLAN_COLUMNS = (*PLAN_LIST_COLUMNS, "plan_json")
BUDGET_LIST_COLUMNS = ("name", "saved_at", "note", "rows")
"""Columns of :meth:`Store.list_budgets`, newest first (``rows``: budget lines in the file, header excluded)."""


@dataclass(frozen=True)
class SavedBudgets:
    """A budgets file kept in the store: its CSV text as uploaded (see :mod:`operate.budgets`)."""

    name: str
    saved_at: pd.Timestamp
    """When it was saved, naive UTC."""
    note: str
    budgets_csv: str


@dataclass(frozen=True)
class SavedPlan:
    """A purchase plan kept in the store under a name."""

    name: str
    saved_at: pd.Timestamp
    """When it was saved, naive UTC."""
    data_source: str
    note: str
    plan: Plan


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").tz_localize(None).floor("ms")


def _csv_rows(text: str) -> int:
    return max(sum(1 for line in text.splitlines() if line.strip()) - 1, 0)


class Store(abc.ABC):
    """Named scenarios, budgets files and plans, plus the audit log of every write: one interface, two backends
    (:class:`ScenarioStore` on a DuckDB file, :class:`app.store_pg.PostgresStore` on a PostgreSQL server); open one
    with :func:`open_store`.

    Every write runs in one transaction together with its audit entry (so the log never lists a write that did
    not happen, nor misses one), takes the keyword ``actor`` (who did it; :data:`DEFAULT_ACTOR` when nobody is
    signed in) and is retried when another session's write conflicts with it; names stay unique (a second save
    under a taken name raises :class:`StoreError` unless ``overwrite``).
    """

    kind: str = ""
    """``duckdb`` or ``postgresql``."""

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the store is, for messages: the file path, or the server URL without its password."""

    @abc.abstractmethod
    def _read(self) -> contextlib.AbstractContextManager[Tx]:
        """A session for reads."""

    @abc.abstractmethod
    def _write(self, work: Callable[[Tx], T], what: str) -> T:
        """Run ``work`` in one transaction and commit it; retry it while another session's write conflicts (then
        raise StoreError naming ``what``); a StoreError raised by ``work`` rolls back and is raised as it is."""

    # --- shared SQL -----------------------------------------------------------------------------
    def _migrate_in(self, tx: Tx, tables: Sequence[str]) -> None:
        """Check and create or upgrade the schema inside ``tx`` (``tables``: the tables already there)."""
        has_meta = "gpuplan_meta" in tables
        if not has_meta and tables:
            shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
            raise StoreError(f"{self.location}: this {self._what_db} is another database (tables {shown}), not a "
                             f"gpuplan scenario store; nothing was written to it (fix: set {STORE_ENV} to "
                             f"{self._fresh_hint})")
        version = 0
        if has_meta:
            row = tx.rows("SELECT value FROM gpuplan_meta WHERE key = 'schema_version'")
            version = int(row[0][0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.location}: scenario store schema v{version} is newer than this planner "
                             f"understands (v{SCHEMA_VERSION}) (fix: upgrade gpu-cost-planner or set {STORE_ENV} "
                             "to another store)")
        if version < SCHEMA_VERSION:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    tx.run(statement)
            tx.run("INSERT INTO gpuplan_meta VALUES ('schema_version', ?) "
                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [str(SCHEMA_VERSION)])

    _what_db = "DuckDB file"
    _fresh_hint = "a new file path, e.g. ~/.gpuplan/scenarios.duckdb"

    @staticmethod
    def _log(tx: Tx, actor: str, action: str, kind: str, name: str, details: Mapping[str, Any]) -> None:
        tx.run('INSERT INTO audit_log ("at", actor, action, object_kind, object_name, details) '
               "VALUES (?, ?, ?, ?, ?, ?)",
               [dt.datetime.now(dt.UTC), check_actor(actor), action, kind, name,
                json.dumps(_jsonable(dict(details)), sort_keys=True)])

    def _put(self, tx: Tx, table: str, kind: str, columns: Sequence[str], row: Sequence[Any], *, overwrite: bool,
             actor: str, details: Mapping[str, Any]) -> None:
        """Insert ``row`` (its first value is the name) into ``table``, replacing a row of that name only when
        ``overwrite``; audited as ``save`` (new name) or ``change`` (replaced)."""
        name = row[0]
        exists = tx.rows(f"SELECT count(*) FROM {table} WHERE name = ?", [name])[0][0]
        if exists and not overwrite:
            raise StoreError(f"{kind} '{name}' already exists (fix: choose another name, or replace it)")
        tx.run(f"DELETE FROM {table} WHERE name = ?", [name])
        tx.run(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", list(row))
        self._log(tx, actor, "change" if exists else "save", kind, name, details)

    def _drop(self, table: str, kind: str, name: str, actor: str) -> bool:
        def work(tx: Tx) -> bool:
            n = tx.rows(f"SELECT count(*) FROM {table} WHERE name = ?", [name])[0][0]
            if n:
                tx.run(f"DELETE FROM {table} WHERE name = ?", [name])
                self._log(tx, actor, "delete", kind, name, {})
            return bool(n)

        return self._write(work, f"{kind} '{name}'")

    # --- public API -----------------------------------------------------------------------------
    def schema_version(self) -> int:
        """The schema version recorded in the store."""
        with self._read() as tx:
            return int(tx.rows("SELECT value FROM gpuplan_meta WHERE key = 'schema_version'")[0][0])

    def save(self, name: str, settings: Any, plan: Plan, *, data_source: str = "", note: str = "",
             time_to_result_hours: float | None = None, overwrite: bool = False,
             actor: str = DEFAULT_ACTOR) -> Scenario:
        """Save a scenario under ``name``.

        Args:
            name: display name (blanks collapsed, at most 80 characters).
            settings: the settings dataclass (or mapping) the plan was made with.
            plan: the plan.
            data_source: where the demand came from (sample or upload, with its content hash).
            note: free text shown next to the scenario.
            time_to_result_hours: expected completion time, hours, if known (else taken from the plan).
            overwrite: replace a scenario of the same name instead of raising.
            actor: who saves it, for the audit log.

        Raises:
            StoreError: bad name, or the name exists and ``overwrite`` is false.
        """
        name = check_name(name)
        summary = ScenarioSummary.from_plan(plan, time_to_result_hours)
        settings_json = json.dumps(settings_dict(settings), sort_keys=True)
        saved_at = _now()
        row = [name, saved_at.to_pydatetime(), str(data_source), str(note), settings_json, plan.to_json(),
               *(getattr(summary, c) for c in _SUMMARY_COLUMNS)]
        details = {"expected_usd": summary.expected_usd, "data_source": str(data_source)}
        self._write(lambda tx: self._put(tx, "scenarios", "scenario", _COLUMNS, row, overwrite=overwrite,
                                         actor=actor, details=details), f"scenario '{name}'")
        return Scenario(name=name, saved_at=saved_at, data_source=str(data_source), note=str(note),
                        settings=json.loads(settings_json), plan=plan, summary=summary)

    def list(self) -> pd.DataFrame:
        """All scenarios without their inputs and plans (:data:`LIST_COLUMNS`), newest first."""
        with self._read() as tx:
            frame = tx.frame(f"SELECT {', '.join(LIST_COLUMNS)} FROM scenarios ORDER BY saved_at DESC, name",
                             LIST_COLUMNS)
        return _typed(frame)

    def names(self) -> list[str]:
        """Scenario names, newest first."""
        return self.list()["name"].tolist()

    def load(self, name: str) -> Scenario:
        """The scenario called ``name``.

        Raises:
            StoreError: no scenario has that name, or its stored plan is not a valid plan.json.
        """
        with self._read() as tx:
            rows = tx.rows(f"SELECT {', '.join(_COLUMNS)} FROM scenarios WHERE name = ?", [name])
        if not rows:
            raise StoreError(f"no scenario named '{name}' in {self.location} (fix: pick one of the saved scenarios)")
        rec = dict(zip(_COLUMNS, rows[0], strict=True))
        plan = self._plan_of(rec["plan_json"], f"scenario '{name}'")
        summary = ScenarioSummary(**{c: rec[c] for c in _SUMMARY_COLUMNS})
        return Scenario(name=rec["name"], saved_at=pd.Timestamp(rec["saved_at"]), data_source=rec["data_source"],
                        note=rec["note"], settings=json.loads(rec["settings_json"]), plan=plan, summary=summary)

    def delete(self, name: str, *, actor: str = DEFAULT_ACTOR) -> bool:
        """Delete the scenario called ``name`` (audited); True if it existed."""
        return self._drop("scenarios", "scenario", name, actor)

    def _plan_of(self, plan_json: str, what: str) -> Plan:
        try:
            return Plan.from_dict(json.loads(plan_json))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{self.location}: {what} holds an unreadable plan ({exc}) "
                             "(fix: delete it and save it again)") from None

    # budgets files
    def save_budgets(self, name: str, budgets_csv: str, *, note: str = "", overwrite: bool = False,
                     actor: str = DEFAULT_ACTOR) -> SavedBudgets:
        """Keep a budgets file (its CSV text, as :func:`operate.budgets.load_budgets` reads it) under ``name``.

        Raises:
            StoreError: bad or taken name (without ``overwrite``), or the text is empty.
        """
        name = check_name(name)
        text = str(budgets_csv)
        if not text.strip():
            raise StoreError(f"budgets '{name}' are empty (fix: save a budgets CSV with a header and rows)")
        saved_at = _now()
        row = [name, saved_at.to_pydatetime(), str(note), text]
        self._write(lambda tx: self._put(tx, "budgets", "budget", BUDGET_COLUMNS, row, overwrite=overwrite,
                                         actor=actor, details={"rows": _csv_rows(text)}), f"budgets '{name}'")
        return SavedBudgets(name=name, saved_at=saved_at, note=str(note), budgets_csv=text)

    def list_budgets(self) -> pd.DataFrame:
        """Saved budgets files (:data:`BUDGET_LIST_COLUMNS`), newest first."""
        with self._read() as tx:
            frame = tx.frame("SELECT name, saved_at, note, budgets_csv FROM budgets ORDER BY saved_at DESC, name",
                             BUDGET_COLUMNS)
        frame["rows"] = [_csv_rows(t) for t in frame["budgets_csv"]]
        frame["saved_at"] = pd.to_datetime(frame["saved_at"])
        return frame[list(BUDGET_LIST_COLUMNS)].astype({"rows": "int64"})

    def load_budgets(self, name: str) -> SavedBudgets:
        """The budgets file saved as ``name``.

        Raises:
            StoreError: no budgets have that name.
        """
        with self._read() as tx:
            rows = tx.rows(f"SELECT {', '.join(BUDGET_COLUMNS)} FROM budgets WHERE name = ?", [name])
        if not rows:
            raise StoreError(f"no budgets named '{name}' in {self.location} (fix: pick one of the saved budgets)")
        n, at, note, text = rows[0]
        return SavedBudgets(name=n, saved_at=pd.Timestamp(at), note=note, budgets_csv=text)

    def delete_budgets(self, name: str, *, actor: str = DEFAULT_ACTOR) -> bool:
        """Delete the budgets saved as ``name`` (audited); True if they existed."""
        return self._drop("budgets", "budget", name, actor)

    # plans
    def save_plan(self, name: str, plan: Plan, *, data_source: str = "", note: str = "", overwrite: bool = False,
                  actor: str = DEFAULT_ACTOR) -> SavedPlan:
        """Keep a purchase plan (its plan.json) under ``name``.

        Raises:
            StoreError: bad or taken name (without ``overwrite``).
        """
        name = check_name(name)
        saved_at = _now()
        expected = float(plan.expected.total_usd)
        commitments = sum(c.count for c in plan.commitments)
        row = [name, saved_at.to_pydatetime(), str(data_source), str(note), expected, commitments, plan.to_json()]
        self._write(lambda tx: self._put(tx, "plans", "plan", _PLAN_COLUMNS, row, overwrite=overwrite, actor=actor,
                                         details={"expected_usd": expected, "commitments": commitments}),
                    f"plan '{name}'")
        return SavedPlan(name=name, saved_at=saved_at, data_source=str(data_source), note=str(note), plan=plan)

    def list_plans(self) -> pd.DataFrame:
        """Saved plans without their plan.json (:data:`PLAN_LIST_COLUMNS`), newest first."""
        with self._read() as tx:
            frame = tx.frame(f"SELECT {', '.join(PLAN_LIST_COLUMNS)} FROM plans ORDER BY saved_at DESC, name",
                             PLAN_LIST_COLUMNS)
        frame["saved_at"] = pd.to_datetime(frame["saved_at"])
        return frame.astype({"expected_usd": "float64", "commitments": "int64"})

    def load_plan(self, name: str) -> SavedPlan:
        """The plan saved as ``name``.

        Raises:
            StoreError: no plan has that name, or its plan.json is unreadable.
        """
        with self._read() as tx:
            rows = tx.rows(f"SELECT {', '.join(_PLAN_COLUMNS)} FROM plans WHERE name = ?", [name])
        if not rows:
            raise StoreError(f"no plan named '{name}' in {self.location} (fix: pick one of the saved plans)")
        rec = dict(zip(_PLAN_COLUMNS, rows[0], strict=True))
        return SavedPlan(name=rec["name"], saved_at=pd.Timestamp(rec["saved_at"]), data_source=rec["data_source"],
                         note=rec["note"], plan=self._plan_of(rec["plan_json"], f"plan '{name}'"))

    def delete_plan(self, name: str, *, actor: str = DEFAULT_ACTOR) -> bool:
        """Delete the plan saved as ``name`` (audited); True if it existed."""
        return self._drop("plans", "plan", name, actor)

    # audit
    def audit(self, limit: int | None = 100) -> pd.DataFrame:
        """The audit log (:data:`AUDIT_COLUMNS`), newest entry first; ``limit`` entries at most (None: all).

        ``at`` is a UTC timestamp; ``details`` is JSON text (e.g. the expected cost of a saved scenario).
        """
        sql = ('SELECT "at", actor, action, object_kind, object_name, details FROM audit_log '
               'ORDER BY "at" DESC, object_name DESC')
        params: list[Any] = []
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(int(limit), 0))
        with self._read() as tx:
            frame = tx.frame(sql, AUDIT_COLUMNS, params)
        frame["at"] = pd.to_datetime(frame["at"], utc=True)
        return frame


def _typed(listing: pd.DataFrame) -> pd.DataFrame:
    """The scenario listing with the same dtypes whichever backend read it."""
    listing["saved_at"] = pd.to_datetime(listing["saved_at"])
    floats = {c: "float64" for c in _SUMMARY_COLUMNS if c != "commitments"}
    return listing.astype({**floats, "commitments": "int64"})


# --- the DuckDB backend ---------------------------------------------------------------------------
class _DuckTx(Tx):
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.con.execute(sql, list(params)).fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.con.execute(sql, list(params))


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


class ScenarioStore(Store):
    """The store in one DuckDB file (created with its folder on first use): the embedded default.

    Args:
        path: the ``.duckdb`` file (default :func:`default_store_path`).
        lock_wait_s: how long an operation waits while another process holds the file, seconds.
    """

    kind = "duckdb"

    def __init__(self, path: str | Path | None = None, *, lock_wait_s: float = LOCK_WAIT_S) -> None:
        if path is None and is_server_url(os.environ.get(STORE_ENV, "")):
            raise StoreError(f"{STORE_ENV} names a PostgreSQL server, not a DuckDB file (fix: open it with "
                             "app.store.open_store())")
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self.lock_wait_s = float(lock_wait_s)
        with self._session():
            pass  # create or check the schema now, so a bad file is reported when the store is opened

    @property
    def location(self) -> str:
        return str(self.path)

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
        if "gpuplan_meta" in tables:
            row = con.execute("SELECT value FROM gpuplan_meta WHERE key = 'schema_version'").fetchone()
            if row and int(row[0]) == SCHEMA_VERSION:
                return
        try:
            con.execute("BEGIN TRANSACTION")
            self._migrate_in(_DuckTx(con), tables)
            con.execute("COMMIT")
        except StoreError:
            _rollback(con)
            raise
        except duckdb.TransactionException:
            # Another session created the schema at the same moment: roll back and use theirs.
            _rollback(con)
            if attempts <= 1:
                raise
            time.sleep(0.01 * (11 - attempts))  # back off a little more each time, so one session wins
            self._migrate(con, attempts - 1)

    @contextlib.contextmanager
    def _read(self) -> Iterator[Tx]:
        with self._session() as con:
            yield _DuckTx(con)

    def _write(self, work: Callable[[Tx], T], what: str) -> T:
        pause = 0.01
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with self._session() as con:
                    con.execute("BEGIN TRANSACTION")
                    try:
                        result = work(_DuckTx(con))
                    except StoreError:
                        _rollback(con)
                        raise
                    con.execute("COMMIT")
                return result
            except (duckdb.TransactionException, duckdb.ConstraintException) as exc:
                # Another session wrote the same name at the same moment (closing rolled this one back): try
                # again, so the name check sees its row.
                if attempt == WRITE_ATTEMPTS - 1:
                    raise StoreError(f"{self.path}: {what} is being saved by other sessions and stayed in "
                                     f"conflict {WRITE_ATTEMPTS} times ({exc.__class__.__name__}) (fix: save it "
                                     "again)") from None
                # random back-off, growing: sessions that collided once do not collide again in lock-step
                time.sleep(random.uniform(0.5, 1.5) * pause)
                pause = min(pause * 1.6, 0.25)
        raise AssertionError("unreachable")  # pragma: no cover


DuckDBStore = ScenarioStore
"""The DuckDB backend under its backend name (``ScenarioStore`` is its historical name)."""


# --- choosing the backend -------------------------------------------------------------------------
SERVER_SCHEMES = ("postgresql://", "postgres://")


def is_server_url(spec: str) -> bool:
    """Whether a store setting names a PostgreSQL server (``postgresql://`` or ``postgres://``) rather than a file."""
    return str(spec).strip().lower().startswith(SERVER_SCHEMES)


def open_store(spec: str | Path | None = None) -> Store:
    """The store a setting names: a ``postgresql://`` or ``postgres://`` URL opens :class:`app.store_pg.PostgresStore`,
    anything else is a DuckDB file path; ``None`` reads ``$GPUPLAN_STORE`` and, with no setting at all, uses
    ``~/.gpuplan/scenarios.duckdb``.

    Raises:
        StoreError: the store cannot be opened (one line naming the setting and the fix; no password shown).
    """
    if spec is None:
        spec = os.environ.get(STORE_ENV) or None
    if spec is not None and is_server_url(str(spec)):
        from app.store_pg import PostgresStore

        return PostgresStore(str(spec).strip())
    return ScenarioStore(spec)


def open_existing_store(spec: str | Path | None = None) -> Store | None:
    """Like :func:`open_store`, but None when the setting names a DuckDB file that does not exist yet: for views that
    only read, so showing a page never creates a store file (the first save does). A server is always opened."""
    if spec is None:
        spec = os.environ.get(STORE_ENV) or None
    if spec is not None and is_server_url(str(spec)):
        return open_store(spec)
    path = Path(spec).expanduser() if spec is not None else default_store_path()
    return open_store(str(path)) if path.exists() else None
