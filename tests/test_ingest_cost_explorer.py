"""Cost Explorer GetCostAndUsage -> canonical GPU usage, with botocore's Stubber (never the network).

GPUs per instance from the shipped catalog: p4d.24xlarge 8 (A100), g5.xlarge 1 (A10G).
"""

from __future__ import annotations

import boto3
import pandas as pd
import pytest
from botocore.exceptions import NoCredentialsError
from botocore.stub import Stubber

from optimizer.catalog import load_catalog
from usage.ingest import fetch_cost_explorer
from usage.ingest.cost_explorer import build_request, gpu_instance_types
from usage.schema import UNALLOCATED_TEAM, UsageError


@pytest.fixture(scope="module")
def instance_gpus():
    return load_catalog().instance_gpus()


def ce_client():
    # Dummy keys: the Stubber answers every call, nothing is signed or sent.
    return boto3.client("ce", region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def group(itype: str, tag: str, hours: str, cost: str = "0") -> dict:
    return {"Keys": [itype, tag], "Metrics": {"UsageQuantity": {"Amount": hours, "Unit": "Hrs"},
                                              "UnblendedCost": {"Amount": cost, "Unit": "USD"}}}


def result(start: str, end: str, groups: list[dict], estimated: bool = False) -> dict:
    return {"TimePeriod": {"Start": start, "End": end}, "Total": {}, "Groups": groups, "Estimated": estimated}


def test_request_shape(instance_gpus):
    types = gpu_instance_types(instance_gpus)
    assert "p4d.24xlarge" in types and all("." in t for t in types)
    req = build_request("2025-01-01", "2025-01-02", tag_key="team", granularity="DAILY", instance_types=types)
    assert req["GroupBy"] == [{"Type": "DIMENSION", "Key": "INSTANCE_TYPE"}, {"Type": "TAG", "Key": "team"}]
    assert req["Metrics"] == ["UsageQuantity", "UnblendedCost"]
    dims = {f["Dimensions"]["Key"]: f["Dimensions"]["Values"] for f in req["Filter"]["And"]}
    assert dims["SERVICE"] == ["Amazon Elastic Compute Cloud - Compute"]
    assert dims["USAGE_TYPE_GROUP"] == ["EC2: Running Hours"]
    assert dims["INSTANCE_TYPE"] == types


def test_hourly_two_pages_with_untagged_group(instance_gpus):
    client = ce_client()
    types = gpu_instance_types(instance_gpus)
    start, end = "2025-01-01T00:00:00Z", "2025-01-01T02:00:00Z"
    request = build_request(start, end, tag_key="team", granularity="HOURLY", instance_types=types)
    page1 = {"ResultsByTime": [
        result("2025-01-01T00:00:00Z", "2025-01-01T01:00:00Z",
               [group("p4d.24xlarge", "team$ml-research", "2", "65.54"),
                group("g5.xlarge", "team$", "3", "3.0")]),
    ], "NextPageToken": "page-2", "DimensionValueAttributes": []}
    page2 = {"ResultsByTime": [
        # the same hour continues on the next page, then the second hour
        result("2025-01-01T00:00:00Z", "2025-01-01T01:00:00Z",
               [group("p4d.24xlarge", "team$vision", "1", "32.77")]),
        result("2025-01-01T01:00:00Z", "2025-01-01T02:00:00Z",
               [group("p4d.24xlarge", "team$ml-research", "1", "32.77"),
                group("m5.large", "team$web", "9", "0.9")]),
    ], "DimensionValueAttributes": []}
    messages = []
    with Stubber(client) as stub:
        stub.add_response("get_cost_and_usage", page1, request)
        stub.add_response("get_cost_and_usage", page2, {**request, "NextPageToken": "page-2"})
        usage, report = fetch_cost_explorer(start, end, instance_gpus=instance_gpus, client=client,
                                            progress=messages.append)
        stub.assert_no_pending_responses()
    cells = {(r.timestamp, r.team, r.gpu_type): r.gpus for r in usage.itertuples()}
    h0, h1 = pd.Timestamp("2025-01-01 00:00"), pd.Timestamp("2025-01-01 01:00")
    assert cells[(h0, "ml-research", "NVIDIA A100")] == 16.0   # 2 h x 8 GPUs
    assert cells[(h1, "ml-research", "NVIDIA A100")] == 8.0
    assert cells[(h0, "vision", "NVIDIA A100")] == 8.0
    assert cells[(h0, UNALLOCATED_TEAM, "NVIDIA A10G")] == 3.0  # "team$" = untagged
    assert report.format == "cost_explorer"
    assert report.rows_read == 5 and report.gpu_rows_kept == 4   # m5.large dropped
    assert report.gpu_hours == pytest.approx(35.0)
    assert report.untagged_share == pytest.approx(3.0 / 35.0)
    assert len(messages) == 2 and "page 2" in messages[1]


def test_daily_spreads_over_24_hours(instance_gpus):
    client = ce_client()
    request = build_request("2025-01-01", "2025-01-03", tag_key="project", granularity="DAILY",
                            instance_types=gpu_instance_types(instance_gpus))
    response = {"ResultsByTime": [
        result("2025-01-01", "2025-01-02", [group("p4d.24xlarge", "project$llm", "48", "1573")]),
        result("2025-01-02", "2025-01-03", [group("g5.xlarge", "project$", "24", "24.1")], estimated=True),
    ], "DimensionValueAttributes": []}
    with Stubber(client) as stub:
        stub.add_response("get_cost_and_usage", response, request)
        usage, report = fetch_cost_explorer("2025-01-01", "2025-01-03", tag_key="project",
                                            granularity="DAILY", instance_gpus=instance_gpus, client=client)
    llm = usage[usage["team"] == "llm"]
    # 48 instance-hours x 8 GPUs = 384 GPU-hours over the day = 16 GPUs in each hour
    assert len(llm) == 24 and (llm["gpus"] == 16.0).all()
    assert llm["cost_usd"].sum() == pytest.approx(1573.0)
    untagged = usage[usage["team"] == UNALLOCATED_TEAM]
    assert untagged["timestamp"].min() == pd.Timestamp("2025-01-02 00:00") and (untagged["gpus"] == 1.0).all()
    assert report.gpu_hours == pytest.approx(384.0 + 24.0)
    text = "\n".join(report.lines())
    assert "gpus = GPU-hours / 24" in text and "estimated" in text


def test_session_creates_us_east_1_ce_client(instance_gpus):
    client = ce_client()
    calls = []

    class Session:
        def client(self, name, region_name=None):
            calls.append((name, region_name))
            return client

    request = build_request("2025-01-01", "2025-01-02", tag_key="team", granularity="DAILY",
                            instance_types=gpu_instance_types(instance_gpus))
    with Stubber(client) as stub:
        stub.add_response("get_cost_and_usage", {"ResultsByTime": [
            result("2025-01-01", "2025-01-02", [group("g5.xlarge", "team$a", "24")])]}, request)
        fetch_cost_explorer("2025-01-01", "2025-01-02", granularity="DAILY", instance_gpus=instance_gpus,
                            session=Session())
    assert calls == [("ce", "us-east-1")]


def test_api_errors_are_one_line_usage_errors(instance_gpus):
    client = ce_client()
    with Stubber(client) as stub:
        stub.add_client_error("get_cost_and_usage", service_error_code="AccessDeniedException",
                              service_message="User is not authorized to perform ce:GetCostAndUsage")
        with pytest.raises(UsageError, match=r"AccessDeniedException.*fix: grant ce:GetCostAndUsage"):
            fetch_cost_explorer("2025-01-01", "2025-01-02", granularity="DAILY", instance_gpus=instance_gpus,
                                client=client)

    class NoCreds:
        def get_cost_and_usage(self, **kwargs):
            raise NoCredentialsError()

    with pytest.raises(UsageError, match="no AWS credentials found") as info:
        fetch_cost_explorer("2025-01-01", "2025-01-02", granularity="DAILY", instance_gpus=instance_gpus,
                            client=NoCreds())
    assert "\n" not in str(info.value)


def test_bad_arguments(instance_gpus):
    with pytest.raises(UsageError, match="granularity 'MONTHLY'"):
        fetch_cost_explorer("2025-01-01", "2025-02-01", granularity="MONTHLY", instance_gpus=instance_gpus)
    with pytest.raises(UsageError, match="not after start"):
        fetch_cost_explorer("2025-01-02", "2025-01-01", granularity="DAILY", instance_gpus=instance_gpus)
    with pytest.raises(UsageError, match="cannot parse start"):
        fetch_cost_explorer("yesterday-ish", "2025-01-01", instance_gpus=instance_gpus)


def test_no_gpu_usage_returned(instance_gpus):
    client = ce_client()
    request = build_request("2025-01-01", "2025-01-02", tag_key="team", granularity="DAILY",
                            instance_types=gpu_instance_types(instance_gpus))
    with Stubber(client) as stub:
        empty = {"ResultsByTime": [result("2025-01-01", "2025-01-02", [])]}
        stub.add_response("get_cost_and_usage", empty, request)
        with pytest.raises(UsageError, match="no GPU instance usage returned"):
            fetch_cost_explorer("2025-01-01", "2025-01-02", granularity="DAILY", instance_gpus=instance_gpus,
                                client=client)
