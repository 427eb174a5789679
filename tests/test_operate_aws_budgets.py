"""AWS Budgets through boto3, exercised with botocore's Stubber (no network, no credentials): the dry run calls
nothing; --apply creates missing budgets, updates changed ones and leaves equal ones alone."""

from __future__ import annotations

import datetime as dt

import boto3
import pandas as pd
import pytest
from botocore.stub import Stubber

from operate.aws_budgets import EC2_COMPUTE, budget_name, budget_request, sync_budgets, time_unit
from operate.budgets import Budget

ACCOUNT = "123456789012"
Q4 = Budget("vision", None, pd.Timestamp("2025-10-01"), pd.Timestamp("2026-01-01"), 250_000.0, "v@example.com")
DEC = Budget("search", "ranker", pd.Timestamp("2025-12-01"), pd.Timestamp("2026-01-01"), 1234.5)


@pytest.fixture
def client():
    c = boto3.client("budgets", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    with Stubber(c) as stub:
        yield c, stub
        stub.assert_no_pending_responses()


def test_request_shape():
    r = budget_request(Q4, ACCOUNT)
    b = r["Budget"]
    assert b["BudgetName"] == "gpuplan-vision-20251001-20260101" and b["TimeUnit"] == "QUARTERLY"
    assert b["BudgetLimit"] == {"Amount": "250000.00", "Unit": "USD"} and b["BudgetType"] == "COST"
    assert b["TimePeriod"] == {"Start": dt.datetime(2025, 10, 1), "End": dt.datetime(2026, 1, 1)}
    assert b["FilterExpression"]["And"] == [{"Dimensions": {"Key": "SERVICE", "Values": [EC2_COMPUTE]}},
                                            {"Tags": {"Key": "team", "Values": ["vision"], "MatchOptions": ["EQUALS"]}}]
    kinds = [(n["Notification"]["NotificationType"], n["Notification"]["Threshold"])
             for n in r["NotificationsWithSubscribers"]]
    assert kinds == [("FORECASTED", 100.0), ("ACTUAL", 100.0)]
    assert r["NotificationsWithSubscribers"][0]["Subscribers"] == [{"SubscriptionType": "EMAIL",
                                                                    "Address": "v@example.com"}]
    d = budget_request(DEC, ACCOUNT, tag_key="owner-team")
    assert "NotificationsWithSubscribers" not in d and d["Budget"]["TimeUnit"] == "MONTHLY"
    assert d["Budget"]["FilterExpression"]["And"][1]["Tags"]["Key"] == "owner-team"
    assert d["Budget"]["FilterExpression"]["And"][2]["Tags"] == {"Key": "project", "Values": ["ranker"],
                                                                 "MatchOptions": ["EQUALS"]}
    assert budget_name(DEC) == "gpuplan-search-ranker-20251201-20260101"
    odd = Budget("x", None, pd.Timestamp("2025-10-15"), pd.Timestamp("2025-11-15"), 1.0)
    assert time_unit(odd) == "CUSTOM"
    assert time_unit(Budget("x", None, pd.Timestamp("2025-01-01"), pd.Timestamp("2026-01-01"), 1.0)) == "ANNUALLY"


def test_dry_run_calls_nothing(client):
    c, _ = client  # no responses queued: any call would fail the Stubber
    actions = sync_budgets((Q4, DEC), ACCOUNT, client=c)
    assert [(a.name, a.action) for a in actions] == [("gpuplan-vision-20251001-20260101", "dry-run"),
                                                     ("gpuplan-search-ranker-20251201-20260101", "dry-run")]


def test_apply_creates_updates_and_skips(client):
    c, stub = client
    q4, dec = budget_request(Q4, ACCOUNT), budget_request(DEC, ACCOUNT)
    # Q4 does not exist yet -> create
    stub.add_client_error("describe_budget", service_error_code="NotFoundException", http_status_code=404,
                          expected_params={"AccountId": ACCOUNT, "BudgetName": q4["Budget"]["BudgetName"]})
    stub.add_response("create_budget", {}, expected_params=q4)
    # December exists with another limit -> update
    existing = {k: dec["Budget"][k] for k in ("BudgetName", "TimeUnit", "TimePeriod", "BudgetType")}
    stub.add_response("describe_budget", {"Budget": {**existing, "BudgetLimit": {"Amount": "999.0", "Unit": "USD"}}},
                      expected_params={"AccountId": ACCOUNT, "BudgetName": dec["Budget"]["BudgetName"]})
    stub.add_response("update_budget", {}, expected_params={"AccountId": ACCOUNT, "NewBudget": dec["Budget"]})
    actions = sync_budgets((Q4, DEC), ACCOUNT, apply=True, client=c)
    assert [a.action for a in actions] == ["create", "update"]


def test_apply_leaves_an_equal_budget_alone(client):
    c, stub = client
    dec = budget_request(DEC, ACCOUNT)["Budget"]
    same = {k: dec[k] for k in ("BudgetName", "TimeUnit", "TimePeriod", "BudgetType")}
    same["BudgetLimit"] = {"Amount": "1234.5", "Unit": "USD"}
    stub.add_response("describe_budget", {"Budget": same})
    assert [a.action for a in sync_budgets((DEC,), ACCOUNT, apply=True, client=c)] == ["unchanged"]


def test_account_id_is_checked():
    with pytest.raises(ValueError, match=r"AWS account id '1234' is not 12 digits"):
        sync_budgets((Q4,), "1234")
