"""Matching AWS Budgets for the budgets file, through boto3 (``budgets`` client; dry run by default).

Each budget becomes one AWS cost budget named ``gpuplan-<team>[-<project>]-<start>-<end>`` with the same
limit (USD) and period (``TimePeriod`` start/end; ``TimeUnit`` MONTHLY, QUARTERLY or ANNUALLY when the
period is one calendar month, quarter or year, else CUSTOM), filtered to EC2 compute cost carrying the
cost-allocation tag ``<tag_key>=<team>`` (and ``<project_tag_key>=<project>``). When the budget has an
``owner`` e-mail, two notifications go to it: forecasted spend above ``forecast_threshold_pct`` and actual
spend above 100% of the budget.

A dry run builds the requests and calls nothing. ``apply=True`` asks ``describe_budget`` for each name and
then calls ``create_budget`` (new) or ``update_budget`` (limit or period changed; notifications are only
set on creation). Credentials come from the standard boto3 chain. Amounts are USD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from operate.budgets import Budget

EC2_COMPUTE = "Amazon Elastic Compute Cloud - Compute"


@dataclass(frozen=True)
class BudgetAction:
    """What was (or would be) done for one budget: ``create``, ``update``, ``unchanged`` or ``dry-run``."""

    name: str
    action: str
    request: dict[str, Any]


def budget_name(b: Budget) -> str:
    scope = b.team if b.project is None else f"{b.team}-{b.project}"
    return f"gpuplan-{scope}-{b.start:%Y%m%d}-{b.end:%Y%m%d}"[:100].replace(":", "-").replace("\\", "-")


def time_unit(b: Budget) -> str:
    """MONTHLY/QUARTERLY/ANNUALLY for one calendar month/quarter/year starting on its first day, else CUSTOM."""
    start = b.start
    if start != start.normalize() or start.day != 1:
        return "CUSTOM"
    if b.end == start + pd.DateOffset(months=1):
        return "MONTHLY"
    if b.end == start + pd.DateOffset(months=3) and start.month in (1, 4, 7, 10):
        return "QUARTERLY"
    if b.end == start + pd.DateOffset(years=1) and start.month == 1:
        return "ANNUALLY"
    return "CUSTOM"


def budget_request(b: Budget, account_id: str, *, tag_key: str = "team", project_tag_key: str = "project",
                   forecast_threshold_pct: float = 100.0) -> dict[str, Any]:
    """The ``create_budget`` keyword arguments for one budget."""
    filters: list[dict[str, Any]] = [
        {"Dimensions": {"Key": "SERVICE", "Values": [EC2_COMPUTE]}},
        {"Tags": {"Key": tag_key, "Values": [b.team], "MatchOptions": ["EQUALS"]}}]
    if b.project is not None:
        filters.append({"Tags": {"Key": project_tag_key, "Values": [b.project], "MatchOptions": ["EQUALS"]}})
    budget = {
        "BudgetName": budget_name(b),
        "BudgetLimit": {"Amount": f"{b.budget_usd:.2f}", "Unit": "USD"},
        "TimeUnit": time_unit(b),
        "TimePeriod": {"Start": b.start.to_pydatetime(), "End": b.end.to_pydatetime()},
        "BudgetType": "COST",
        "FilterExpression": {"And": filters},
    }
    request: dict[str, Any] = {"AccountId": account_id, "Budget": budget}
    if b.owner:
        subscribers = [{"SubscriptionType": "EMAIL", "Address": b.owner}]
        request["NotificationsWithSubscribers"] = [
            {"Notification": {"NotificationType": "FORECASTED", "ComparisonOperator": "GREATER_THAN",
                              "Threshold": float(forecast_threshold_pct), "ThresholdType": "PERCENTAGE"},
             "Subscribers": subscribers},
            {"Notification": {"NotificationType": "ACTUAL", "ComparisonOperator": "GREATER_THAN",
                              "Threshold": 100.0, "ThresholdType": "PERCENTAGE"},
             "Subscribers": subscribers}]
    return request


def _same(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    limit = existing.get("BudgetLimit", {})
    period = existing.get("TimePeriod", {})

    def ts(value: Any) -> pd.Timestamp | None:
        if value is None:
            return None
        t = pd.Timestamp(value)
        return t.tz_convert("UTC").tz_localize(None) if t.tzinfo is not None else t

    return (abs(float(limit.get("Amount", "nan")) - float(wanted["BudgetLimit"]["Amount"])) < 0.005
            and existing.get("TimeUnit") == wanted["TimeUnit"]
            and ts(period.get("Start")) == ts(wanted["TimePeriod"]["Start"])
            and ts(period.get("End")) == ts(wanted["TimePeriod"]["End"]))


def sync_budgets(budgets: tuple[Budget, ...], account_id: str, *, apply: bool = False, client: Any = None,
                 tag_key: str = "team", project_tag_key: str = "project",
                 forecast_threshold_pct: float = 100.0) -> list[BudgetAction]:
    """Create (or update) one AWS Budget per budget; a dry run (the default) calls nothing.

    Args:
        budgets: from :func:`operate.budgets.load_budgets`.
        account_id: the 12-digit AWS account that owns the budgets.
        apply: call AWS; otherwise only return the requests.
        client: a boto3 ``budgets`` client (default: one from the standard credential chain).

    Raises:
        ValueError: ``account_id`` is not 12 digits.
    """
    if not (len(account_id) == 12 and account_id.isdigit()):
        raise ValueError(f"AWS account id {account_id!r} is not 12 digits (fix: e.g. --account-id 123456789012)")
    requests = [budget_request(b, account_id, tag_key=tag_key, project_tag_key=project_tag_key,
                               forecast_threshold_pct=forecast_threshold_pct) for b in budgets]
    if not apply:
        return [BudgetAction(r["Budget"]["BudgetName"], "dry-run", r) for r in requests]
    if client is None:
        import boto3

        client = boto3.client("budgets", region_name="us-east-1")
    actions = []
    for r in requests:
        name = r["Budget"]["BudgetName"]
        try:
            existing = client.describe_budget(AccountId=account_id, BudgetName=name)["Budget"]
        except client.exceptions.NotFoundException:
            client.create_budget(**r)
            actions.append(BudgetAction(name, "create", r))
            continue
        if _same(existing, r["Budget"]):
            actions.append(BudgetAction(name, "unchanged", r))
            continue
        client.update_budget(AccountId=account_id, NewBudget=r["Budget"])
        actions.append(BudgetAction(name, "update", r))
    return actions
