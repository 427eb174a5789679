"""Budget files: CSV and YAML, period shorthands, and one-line errors for every bad input."""

from __future__ import annotations

import pandas as pd
import pytest

from operate.budgets import load_budgets
from usage.schema import UsageError

TEAMS = {"vision", "search", "unallocated"}


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_with_period_shorthands_and_explicit_dates(tmp_path):
    path = write(tmp_path, "b.csv", "team,project,period,period_start,period_end,budget_usd,owner\n"
                                    "vision,,2025-Q4,,,\"1,000,000\",v@example.com\n"
                                    "vision,,2026-01,,,5000,\n"
                                    "search,ranker,,2025-10-15,2025-11-15T00:00Z,0,\n"
                                    "search,,2026,,,12.5,\n")
    b = load_budgets(path, TEAMS, {"search": {"ranker"}})
    assert [(x.team, x.project, x.start, x.end, x.budget_usd) for x in b] == [
        ("vision", None, pd.Timestamp("2025-10-01"), pd.Timestamp("2026-01-01"), 1_000_000.0),
        ("vision", None, pd.Timestamp("2026-01-01"), pd.Timestamp("2026-02-01"), 5000.0),
        ("search", "ranker", pd.Timestamp("2025-10-15"), pd.Timestamp("2025-11-15"), 0.0),
        ("search", None, pd.Timestamp("2026-01-01"), pd.Timestamp("2027-01-01"), 12.5)]
    assert b[0].owner == "v@example.com" and b[1].owner is None and b[0].hours == 92 * 24
    assert b[2].row == 4  # CSV line number


def test_yaml_entries(tmp_path):
    path = write(tmp_path, "b.yaml", "budgets:\n  - {team: vision, period: 2025-Q4, budget_usd: 100}\n"
                                     "  - team: search\n    period_start: 2025-10-01\n    period_end: 2025-12-01\n"
                                     "    budget_usd: 50\n")
    b = load_budgets(path, TEAMS)
    assert [(x.team, x.end, x.budget_usd, x.row) for x in b] == [
        ("vision", pd.Timestamp("2026-01-01"), 100.0, 1), ("search", pd.Timestamp("2025-12-01"), 50.0, 2)]


@pytest.mark.parametrize(("text", "expected"), [
    ("team,period,budget_usd\nvision,2025-Q4,100\nmarketing,2025-Q4,5\n",
     "b.csv, row 3, column 'team': unknown team 'marketing' (not in the usage) (fix: use a team of the usage"),
    ("team,period,budget_usd\nvision,2025-Q4,-5\n",
     "b.csv, row 2, column 'budget_usd': budget_usd -5.00 is negative (fix: budgets must be >= 0 USD)"),
    ("team,period,budget_usd\nvision,2025-Q4,lots\n",
     "b.csv, row 2, column 'budget_usd': budget_usd 'lots' is not a number"),
    ("team,period,budget_usd\nvision,2025-Q4,100\nsearch,2025-12,1\nvision,2025-Q4,90\n",
     "b.csv, row 4, column 'period': period 2025-10-01..2026-01-01 of vision overlaps 2025-10-01..2026-01-01 on row 2 "
     "(fix: give each team/project one budget per period"),
    ("team,period,budget_usd\nvision,Q4 2025,100\n",
     "b.csv, row 2, column 'period': cannot read period 'Q4 2025' (fix: use YYYY-MM (month), YYYY-Qn (quarter)"),
    ("team,period,budget_usd\nvision,2025-13,100\n", "b.csv, row 2, column 'period': period '2025-13' has no month 13"),
    ("team,period_start,period_end,budget_usd\nvision,2025-12-01,2025-11-01,100\n",
     "b.csv, row 2, column 'period_end': period_end 2025-11-01 is not after period_start 2025-12-01"),
    ("team,budget_usd\nvision,100\n", "b.csv, column 'period': missing column 'period'"),
    ("team,period\nvision,2025-Q4\n", "b.csv, column 'budget_usd': missing column 'budget_usd'"),
    ("team,period,budget_usd\n,2025-Q4,1\n", "b.csv, row 2, column 'team': empty team"),
])
def test_bad_csv_budgets_get_one_line_errors(tmp_path, text, expected):
    path = write(tmp_path, "b.csv", text)
    with pytest.raises(UsageError) as exc:
        load_budgets(path, TEAMS)
    message = str(exc.value)
    assert message.startswith(str(tmp_path / expected.split(", ", 1)[0]))
    assert expected.split(", ", 1)[1] in message and "\n" not in message


def test_same_period_for_team_and_its_project_is_not_an_overlap_but_a_project_must_exist(tmp_path):
    path = write(tmp_path, "b.csv", "team,project,period,budget_usd\nvision,,2025-Q4,10\nvision,seg,2025-Q4,5\n")
    assert len(load_budgets(path, TEAMS, {"vision": {"seg"}})) == 2
    with pytest.raises(UsageError, match=r"row 3, column 'project': team 'vision' has no usage for project 'seg'"):
        load_budgets(path, TEAMS, {"vision": {"det"}})


def test_bad_yaml_budgets(tmp_path):
    path = write(tmp_path, "b.yaml", "budgets:\n  - {team: vision, period: 2025-Q4, budget_usd: -1}\n")
    with pytest.raises(UsageError, match=r"b.yaml, entry 1, column 'budget_usd': budget_usd -1.00 is negative"):
        load_budgets(path, TEAMS)
    path = write(tmp_path, "c.yaml", "budgets: [team: x\n")
    with pytest.raises(UsageError, match=r"c.yaml: not valid YAML at line"):
        load_budgets(path, TEAMS)
    path = write(tmp_path, "d.yaml", "budgets: 5\n")
    with pytest.raises(UsageError, match=r"expected a list of entries under 'budgets:'"):
        load_budgets(path, TEAMS)
    with pytest.raises(UsageError, match=r"missing.yaml: file not found"):
        load_budgets(tmp_path / "missing.yaml", TEAMS)


def test_nested_periods_are_budgets_but_straddling_ones_overlap(tmp_path):
    """A quarter with its months and the year around them is normal budgeting (issue 15, item 3)."""
    path = write(tmp_path, "b.csv", "team,period,budget_usd\nvision,2025,1200\nvision,2025-Q4,300\n"
                                    "vision,2025-10,100\nvision,2025-11,100\nvision,2025-12,100\n")
    b = load_budgets(path, TEAMS)
    assert [(x.start.month, x.hours) for x in b] == [(1, 8760), (10, 2208), (10, 744), (11, 720), (12, 744)]
    path = write(tmp_path, "s.csv", "team,period_start,period_end,budget_usd\nvision,2025-10-01,2026-01-01,300\n"
                                    "vision,2025-12-15,2026-01-15,100\n")
    with pytest.raises(UsageError, match=r"row 3, column 'period_start': period 2025-12-15..2026-01-15 of vision "
                                         r"overlaps 2025-10-01..2026-01-01 on row 2 .*periods may nest"):
        load_budgets(path, TEAMS)
