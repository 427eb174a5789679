"""AWS Cost Explorer ``GetCostAndUsage`` -> canonical hourly GPU usage.

Units: Cost Explorer's ``UsageQuantity`` for EC2 running hours is instance-hours; GPU-hours =
instance-hours x GPUs per instance of the ``INSTANCE_TYPE`` group. HOURLY results give the GPU-hours
of each hour, which is the canonical ``gpus`` of that hour. DAILY results give a day's GPU-hours; they
are spread evenly over the day's 24 hours (``gpus = GPU-hours / 24`` per hour), which hides the
within-day shape. ``cost_usd`` is ``UnblendedCost`` in USD, spread the same way.

The query filters on SERVICE ``Amazon Elastic Compute Cloud - Compute``, USAGE_TYPE_GROUP
``EC2: Running Hours`` and the GPU instance types of the catalog, and groups by INSTANCE_TYPE and the
team tag. Cost Explorer returns tag groups as ``team$ml-research``; an empty value after ``$`` means
untagged (team ``unallocated``). Credentials come only from boto3's standard chain
(``boto3.Session()``: environment, shared config/SSO profile, instance or task role) and are never
read, printed or logged here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from usage.ingest.readers import IngestReport, usage_report
from usage.schema import (
    COST_USD,
    GPU_TYPE,
    GPUS,
    INSTANCE_TYPE,
    TEAM,
    TIMESTAMP,
    UNALLOCATED_TEAM,
    UsageError,
    validate_usage,
)

SOURCE = "AWS Cost Explorer"
EC2_COMPUTE = "Amazon Elastic Compute Cloud - Compute"
RUNNING_HOURS = "EC2: Running Hours"
GRANULARITIES = ("HOURLY", "DAILY")
CE_REGION = "us-east-1"
"""Cost Explorer has one endpoint, in us-east-1."""


def _period(value: str, granularity: str, name: str) -> tuple[pd.Timestamp, str]:
    """Parse a start/end date and format it the way Cost Explorer wants for the granularity."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        ts = None
    if ts is None or pd.isna(ts):
        raise UsageError(SOURCE, f"cannot parse {name} {value!r}", column=name,
                         fix="use a date such as 2025-01-31 or a time such as 2025-01-31T00:00:00Z") from None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    if granularity == "HOURLY":
        ts = ts.floor("h")
        return ts, ts.strftime("%Y-%m-%dT%H:%M:%SZ")
    ts = ts.floor("D")
    return ts, ts.strftime("%Y-%m-%d")


def gpu_instance_types(instance_gpus: Mapping[str, tuple[str, float]]) -> list[str]:
    """AWS instance types (``family.size``) with at least one GPU, sorted."""
    return sorted(k for k, v in instance_gpus.items()
                  if "." in k and v is not None and v[1] is not None and float(v[1]) > 0)


def build_request(start: str, end: str, *, tag_key: str, granularity: str,
                  instance_types: list[str]) -> dict:
    """The ``get_cost_and_usage`` arguments (without ``NextPageToken``)."""
    return {
        "TimePeriod": {"Start": start, "End": end},
        "Granularity": granularity,
        "Metrics": ["UsageQuantity", "UnblendedCost"],
        "Filter": {"And": [
            {"Dimensions": {"Key": "SERVICE", "Values": [EC2_COMPUTE]}},
            {"Dimensions": {"Key": "USAGE_TYPE_GROUP", "Values": [RUNNING_HOURS]}},
            {"Dimensions": {"Key": "INSTANCE_TYPE", "Values": list(instance_types)}},
        ]},
        "GroupBy": [{"Type": "DIMENSION", "Key": "INSTANCE_TYPE"}, {"Type": "TAG", "Key": tag_key}],
    }


def _client_error(error: Exception, granularity: str) -> UsageError:
    """One-line UsageError for a botocore failure (code and AWS message only, never credentials)."""
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return UsageError(SOURCE, "no AWS credentials found",
                          fix="configure the standard chain: AWS_PROFILE / aws sso login, environment "
                              "variables or an instance role")
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        code, message = err.get("Code", "Error"), str(err.get("Message", "")).splitlines()[0:1]
        text = f"{code}: {message[0]}" if message else code
        fix = "check the period and the account's Cost Explorer settings"
        if "AccessDenied" in code or "UnauthorizedOperation" in code:
            fix = "grant ce:GetCostAndUsage to the credentials in use"
        elif granularity == "HOURLY" and ("hourly" in text.lower() or "granularity" in text.lower()):
            fix = ("enable hourly granularity in Cost Explorer preferences (last 14 days only) or use "
                   "DAILY granularity")
        elif "DataUnavailable" in code:
            fix = "Cost Explorer has no data for that period yet; pick an earlier period"
        return UsageError(SOURCE, f"GetCostAndUsage failed ({text})", fix=fix)
    return UsageError(SOURCE, f"cannot reach Cost Explorer ({type(error).__name__})",
                      fix="check the network connection and try again")


def fetch_cost_explorer(start: str, end: str, *, tag_key: str = "team", granularity: str = "HOURLY",
                        instance_gpus: Mapping[str, tuple[str, float]], client=None, session=None,
                        progress: Callable[[str], None] | None = None,
                        known_gpu_types: set[str] | None = None) -> tuple[pd.DataFrame, IngestReport]:
    """Fetch GPU instance usage from Cost Explorer as a validated canonical usage frame.

    Args:
        start: first day (DAILY) or hour (HOURLY) to fetch, inclusive, e.g. ``2025-01-01``.
        end: end of the period, exclusive.
        tag_key: cost-allocation tag holding the team (must be activated in the Billing console).
        granularity: ``HOURLY`` (needs hourly granularity enabled; last 14 days) or ``DAILY``.
        instance_gpus: instance_type -> (gpu_model, GPUs per instance).
        client: a boto3 ``ce`` client (tests pass a stubbed one).
        session: a boto3 session to create the client from; default ``boto3.Session()``.
        progress: called with a short message after each page.
        known_gpu_types: GPU models the catalog offers (passed to validation).

    Returns:
        (usage frame, report); ``rows_read`` counts the (period, instance type, tag) groups returned.

    Raises:
        UsageError: bad period or granularity, no credentials, an API error, or no GPU usage.
    """
    granularity = str(granularity).upper()
    if granularity not in GRANULARITIES:
        raise UsageError(SOURCE, f"granularity '{granularity}' is not supported", column="granularity",
                         fix="use HOURLY or DAILY")
    if not instance_gpus:
        raise ValueError("instance_gpus is required; pass Catalog.instance_gpus()")
    start_ts, start_text = _period(start, granularity, "start")
    end_ts, end_text = _period(end, granularity, "end")
    if end_ts <= start_ts:
        raise UsageError(SOURCE, f"end {end_text} is not after start {start_text}", column="end",
                         fix="give an end after the start (the end is exclusive)")
    types = gpu_instance_types(instance_gpus)
    if not types:
        raise ValueError("instance_gpus holds no AWS GPU instance types")

    from botocore.exceptions import BotoCoreError, ClientError

    if client is None:
        import boto3

        session = session if session is not None else boto3.Session()
        client = session.client("ce", region_name=CE_REGION)

    request = build_request(start_text, end_text, tag_key=tag_key, granularity=granularity,
                            instance_types=types)
    records: list[tuple[str, str, str, float, float]] = []
    estimated = False
    token = None
    page = 0
    while True:
        kwargs = dict(request)
        if token:
            kwargs["NextPageToken"] = token
        try:
            response = client.get_cost_and_usage(**kwargs)
        except (ClientError, BotoCoreError) as error:
            raise _client_error(error, granularity) from None
        page += 1
        for result in response.get("ResultsByTime", []):
            period_start = result["TimePeriod"]["Start"]
            estimated = estimated or bool(result.get("Estimated"))
            for group in result.get("Groups", []):
                keys = group.get("Keys", [])
                itype = keys[0] if keys else ""
                tag = keys[1] if len(keys) > 1 else ""
                team = tag.split("$", 1)[1].strip() if "$" in tag else ""
                metrics = group.get("Metrics", {})
                qty = float(metrics.get("UsageQuantity", {}).get("Amount", 0.0))
                cost = float(metrics.get("UnblendedCost", {}).get("Amount", 0.0))
                records.append((period_start, itype, team, qty, cost))
        token = response.get("NextPageToken")
        if progress is not None:
            progress(f"Cost Explorer page {page}: {len(records):,} groups so far")
        if not token:
            break

    source = f"{SOURCE} {start_text}..{end_text} ({granularity})"
    rows_read = len(records)
    frame = pd.DataFrame(records, columns=["period", "instance_type", "team", "qty", "cost"])
    spec = frame["instance_type"].map(lambda t: instance_gpus.get(t) or (None, 0.0))
    frame["gpu_model"] = spec.str[0]
    frame["gpu_count"] = spec.map(lambda s: float(s[1] or 0.0))
    frame = frame[frame["gpu_model"].notna() & (frame["gpu_count"] > 0)].copy()
    if frame.empty:
        raise UsageError(source, f"no GPU instance usage returned ({rows_read} groups)",
                         fix="pick a period with GPU instance usage, or check the account and tag key")
    frame["untagged"] = frame["team"] == ""
    frame.loc[frame["untagged"], "team"] = UNALLOCATED_TEAM
    frame["gpu_hours"] = frame["qty"] * frame["gpu_count"]
    frame["hour"] = pd.to_datetime(frame["period"], utc=True).dt.tz_localize(None).dt.floor("h")
    notes = [f"GroupBy INSTANCE_TYPE and tag '{tag_key}'; filter {EC2_COMPUTE}, {RUNNING_HOURS}"]
    if granularity == "DAILY":
        frame = frame.loc[frame.index.repeat(24)].reset_index(drop=True)
        frame["hour"] = frame["hour"] + pd.to_timedelta(np.tile(np.arange(24), len(frame) // 24), unit="h")
        frame["gpu_hours"] = frame["gpu_hours"] / 24.0
        frame["cost"] = frame["cost"] / 24.0
        notes.append("DAILY data: each day's GPU-hours were spread evenly over its 24 hours "
                     "(gpus = GPU-hours / 24)")
    if estimated:
        notes.append("Cost Explorer marked some periods as estimated (the month is not closed)")
    notes.append("purchase option is not available from this query (Cost Explorer allows two group-bys)")

    untagged_hours = float(frame.loc[frame["untagged"], "gpu_hours"].sum())
    keys = ["hour", "team", "gpu_model"]
    grouped = frame.groupby(keys, as_index=False, sort=False).agg(gpus=("gpu_hours", "sum"),
                                                                  cost=("cost", "sum"))
    top = (frame.groupby([*keys, "instance_type"], as_index=False, sort=False)["gpu_hours"].sum()
           .sort_values("gpu_hours", kind="stable").drop_duplicates(keys, keep="last"))
    grouped = grouped.merge(top[[*keys, "instance_type"]], on=keys, how="left")
    usage = pd.DataFrame({TIMESTAMP: grouped["hour"].astype("datetime64[ns]"), TEAM: grouped["team"],
                          GPU_TYPE: grouped["gpu_model"], GPUS: grouped["gpus"].clip(lower=0.0),
                          INSTANCE_TYPE: grouped["instance_type"], COST_USD: grouped["cost"]})
    if untagged_hours > 0 and untagged_hours >= float(frame["gpu_hours"].sum()) - 1e-9:
        notes.append(f"no GPU usage carries tag '{tag_key}': check that it is an activated cost "
                     "allocation tag")
    usage, validation = validate_usage(usage, source, known_gpu_types=known_gpu_types)
    kept = len(frame) // (24 if granularity == "DAILY" else 1)
    report = usage_report(source, "cost_explorer", rows_read, kept, usage, validation,
                          untagged_gpu_hours=untagged_hours, notes=notes)
    return usage, report
