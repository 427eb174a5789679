"""Budgets per team (optionally per project) and period, from a CSV or YAML file.

File columns (CSV header or YAML entry keys; YAML lists them under ``budgets:``):

* ``team`` (required): a team of the usage (``unallocated`` is allowed for untagged usage);
* ``project`` (optional): narrows the budget to one project of the team;
* ``period`` (``2025-12``, ``2025-Q4``, ``2025``) or ``period_start`` / ``period_end`` (dates, end exclusive, UTC);
* ``budget_usd`` (required): the budget in USD, >= 0;
* ``owner`` (optional): who is alerted (an e-mail address for AWS Budgets notifications).

Validation rejects unknown teams, negative or non-numeric budgets, bad periods and overlapping periods of
the same team/project with one line naming the file, row, column and fix. Nested periods are not overlaps: a team
may have a quarterly budget and monthly budgets inside it (each is alerted on its own); the same period twice, or
two periods that straddle each other, are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from operate.files import PERIOD, PERIOD_END, PERIOD_START, blank, number, parse_period, read_records
from usage.schema import UsageError

TEAM = "team"
PROJECT = "project"
BUDGET_USD = "budget_usd"
OWNER = "owner"


@dataclass(frozen=True)
class Budget:
    """``budget_usd`` USD for ``team`` (and ``project`` if set) over ``[start, end)`` (UTC)."""

    team: str
    project: str | None
    start: pd.Timestamp
    end: pd.Timestamp
    budget_usd: float
    owner: str | None = None
    row: int = 0

    @property
    def scope(self) -> str:
        return self.team if self.project is None else f"{self.team}/{self.project}"

    @property
    def label(self) -> str:
        return f"{self.scope} {self.start:%Y-%m-%d}..{self.end:%Y-%m-%d}"

    @property
    def hours(self) -> int:
        return int((self.end - self.start) / pd.Timedelta(hours=1))


def load_budgets(path: str | Path, known_teams: set[str] | None = None,
                 known_projects: dict[str, set[str]] | None = None) -> tuple[Budget, ...]:
    """Read and validate a budgets file.

    Args:
        path: CSV or YAML file (see the module docstring).
        known_teams: teams of the usage; a budget for another team is an error. ``None`` skips the check.
        known_projects: team -> projects seen in the usage; a budget for an unseen project is an error.

    Raises:
        UsageError: one line with the file, row, column and fix.
    """
    rec = read_records(path, "budgets")
    df = rec.frame
    if df.empty:
        raise UsageError(rec.source, "no budgets", fix="add one row per team and period")
    for col in (TEAM, BUDGET_USD):
        if col not in df.columns:
            raise UsageError(rec.source, f"missing column '{col}'", column=col,
                             fix="the budgets need team, period (or period_start/period_end) and budget_usd")
    if PERIOD not in df.columns and not {PERIOD_START, PERIOD_END} <= set(df.columns):
        raise UsageError(rec.source, f"missing column '{PERIOD}'", column=PERIOD,
                         fix="add period (e.g. 2025-Q4) or period_start and period_end")
    out: list[Budget] = []
    for i, row in df.reset_index(drop=True).iterrows():
        team = row[TEAM]
        if blank(team):
            raise rec.error("empty team", i, TEAM, fix="name the team the budget is for")
        team = str(team).strip()
        if known_teams is not None and team not in known_teams:
            close = sorted(t for t in known_teams if t[:3] == team[:3]) or sorted(known_teams)
            raise rec.error(f"unknown team '{team}' (not in the usage)", i, TEAM,
                            fix=f"use a team of the usage, e.g. {', '.join(close[:4])}")
        project = None
        if PROJECT in df.columns and not blank(row[PROJECT]):
            project = str(row[PROJECT]).strip()
            if known_projects is not None and project not in known_projects.get(team, set()):
                seen = sorted(known_projects.get(team, set()))
                raise rec.error(f"team '{team}' has no usage for project '{project}'", i, PROJECT,
                                fix=f"use one of its projects ({', '.join(seen[:4]) or 'none'}) or leave it empty")
        amount = number(rec, i, row, BUDGET_USD, fix="write the budget in USD, e.g. 250000")
        if amount < 0:
            raise rec.error(f"budget_usd {amount:,.2f} is negative", i, BUDGET_USD, fix="budgets must be >= 0 USD")
        start, end = parse_period(rec, i, row)
        owner = None if OWNER not in df.columns or blank(row[OWNER]) else str(row[OWNER]).strip()
        out.append(Budget(team, project, start, end, amount, owner, rec.row(i)))
    _check_overlaps(out, rec)
    return tuple(out)


def _check_overlaps(budgets: list[Budget], rec) -> None:
    """Periods of one team/project may nest (a month inside its quarter, a quarter inside its year: each is
    checked on its own) but not otherwise overlap: two budgets for the same hours at the same level (the same
    period twice, or periods that straddle each other) would be ambiguous."""
    by_scope: dict[tuple[str, str | None], list[tuple[int, Budget]]] = {}
    for i, b in enumerate(budgets):
        by_scope.setdefault((b.team, b.project), []).append((i, b))
    for items in by_scope.values():
        items.sort(key=lambda ib: (ib[1].start, -ib[1].hours))
        for k, (_, a) in enumerate(items):
            for j, b in items[k + 1:]:
                if b.start >= a.end:
                    continue
                if b.end <= a.end and b.hours < a.hours:
                    continue   # b nests inside a
                raise rec.error(f"period {b.start:%Y-%m-%d}..{b.end:%Y-%m-%d} of {b.scope} overlaps "
                                f"{a.start:%Y-%m-%d}..{a.end:%Y-%m-%d} on row {a.row}", j, PERIOD
                                if PERIOD in rec.frame.columns else PERIOD_START,
                                fix="give each team/project one budget per period (merge or shorten them); periods "
                                    "may nest, e.g. months inside a quarter")
