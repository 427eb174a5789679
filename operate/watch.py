"""``gpuplan watch``: one scheduled guardrail run (cron or a Kubernetes CronJob) from a YAML config.

A run reads the usage (the data source), finds anomalies, checks the budgets (forecast-based alerts) and the
guardrail policy when the config names them, notifies the channels (de-duplicated through the state file, see
:mod:`operate.notify`) and writes a dated run record ``run-YYYYMMDDTHHMMSSZ.json`` into ``runs_dir`` atomically.
It runs once and exits: 0 nothing needs attention, 1 an anomaly, alert or violation is open, 2 an error (also
recorded when the config could be read).

The config (paths relative to the config file)::

    usage: exports/usage.parquet      # canonical CSV/Parquet, FOCUS or CUR export
    format: auto                       # auto | canonical | focus | cur
    tag_key: team
    region: us-east-1                  # catalog region whose on-demand prices cost the usage
    catalog: null                      # price catalog CSV (default: the shipped snapshot)
    budgets: budgets.csv               # optional: forecast-based budget alerts
    policy: policy.yaml                # optional: guardrails
    plan: plan.json                    # optional: checked against the policy too
    billing: exports/focus.parquet     # optional: FOCUS/CUR export whose commitments the policy's
                                       #   commitment_utilization section checks (a plan's are checked on usage)
    anomalies: {lookback_days: 28, threshold: 1.0, min_impact_usd: 0}   # threshold: score to report (1 = tuned
                                                                        # level); min_impact_usd: USD floor
    events: planned.yaml               # optional: planned events (runs, launches, wind-downs) the anomalies expect
    alerts: {threshold: 0.5, paths: 200}
    channels:
      webhooks:
        - url_env: SLACK_WEBHOOK_URL   # read the secret URL from the environment (or url: ...)
          format: slack                # slack | json
      email: false                     # true: GPUPLAN_SMTP_* from the environment
    state: state/notify-state.json
    runs_dir: runs

Units: as in the modules it calls (USD, GPU-hours, scores); times ISO 8601 UTC.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from usage.io import read_text, write_json_atomic
from usage.schema import UsageError

SCHEMA = "gpuplan.watch-run/v1"
KEYS = {"usage", "format", "tag_key", "region", "catalog", "budgets", "policy", "plan", "anomalies", "alerts",
        "channels", "state", "runs_dir", "billing", "events"}


@dataclass(frozen=True)
class WatchConfig:
    """A parsed watch.yaml (paths resolved against its folder)."""

    source: str
    usage: Path
    format: str = "auto"
    tag_key: str = "team"
    region: str = "us-east-1"
    catalog: Path | None = None
    budgets: Path | None = None
    policy: Path | None = None
    plan: Path | None = None
    events: Path | None = None
    lookback_days: int = 28
    anomaly_threshold: float = 1.0
    anomaly_min_impact_usd: float = 0.0
    alert_threshold: float = 0.5
    alert_paths: int = 200
    webhooks: tuple[tuple[str, str], ...] = ()
    email: bool = False
    state: Path = Path("gpuplan-notify-state.json")
    runs_dir: Path = Path("runs")
    inputs: tuple[Path, ...] = field(default_factory=tuple)
    billing: Path | None = None


def _fail(source: str, key: str, problem: str, fix: str) -> UsageError:
    return UsageError(source, problem, column=key, fix=fix)


def load_watch(path: str | Path, env: Mapping[str, str] | None = None) -> WatchConfig:
    """Read and check a watch.yaml (module docstring); one-line errors naming the file, key and fix."""
    path = Path(path)
    source = str(path)
    env = os.environ if env is None else env
    if not path.exists():
        raise UsageError(source, "file not found", fix="check the path")
    try:
        doc = yaml.safe_load(read_text(path))
    except yaml.YAMLError:
        raise UsageError(source, "not valid YAML", fix="check indentation and quoting") from None
    if not isinstance(doc, dict):
        raise UsageError(source, "expected a mapping of settings", fix="start with 'usage: path/to/usage.parquet'")
    unknown = sorted(set(map(str, doc)) - KEYS)
    if unknown:
        raise _fail(source, unknown[0], f"unknown setting '{unknown[0]}'", f"use one of {', '.join(sorted(KEYS))}")
    base = path.parent

    def file(key: str, required: bool = False) -> Path | None:
        value = doc.get(key)
        if value is None or str(value).strip() == "":
            if required:
                raise _fail(source, key, f"no {key}", f"add '{key}: path/to/file'")
            return None
        p = Path(str(value)).expanduser()
        return p if p.is_absolute() else base / p

    def section(key: str) -> dict:
        value = doc.get(key) or {}
        if not isinstance(value, dict):
            raise _fail(source, key, f"{key} is not a mapping", f"write '{key}:' followed by indented settings")
        return value

    def number(sec: dict, key: str, name: str, default: float, kind=float, zero: bool = False) -> float:
        value = sec.get(key, default)
        try:
            out = kind(value)
        except (TypeError, ValueError):
            raise _fail(source, f"{name}.{key}", f"{name}.{key} {value!r} is not a number",
                        f"e.g. {key}: {default}") from None
        if not (out >= 0 if zero else out > 0):
            raise _fail(source, f"{name}.{key}", f"{name}.{key} must be {'0 or more' if zero else 'positive'}",
                        f"e.g. {key}: {default}")
        return out

    anomalies, alerts, channels = section("anomalies"), section("alerts"), section("channels")
    hooks = []
    for i, h in enumerate(channels.get("webhooks") or [], 1):
        if not isinstance(h, dict):
            raise _fail(source, "channels.webhooks", f"webhook {i} is not a mapping", "write '- url_env: NAME'")
        url = h.get("url")
        if h.get("url_env"):
            url = env.get(str(h["url_env"]))
            if not url:
                raise _fail(source, "channels.webhooks", f"webhook {i}: environment variable {h['url_env']} is not "
                            "set", f"export {h['url_env']}=https://...")
        if not url:
            raise _fail(source, "channels.webhooks", f"webhook {i} has no url or url_env",
                        "add 'url_env: SLACK_WEBHOOK_URL' (keeps the secret out of the file)")
        hooks.append((str(url), str(h.get("format", "slack"))))
    cfg = WatchConfig(
        source=source, usage=file("usage", required=True), format=str(doc.get("format", "auto")),
        tag_key=str(doc.get("tag_key", "team")), region=str(doc.get("region", "us-east-1")),
        catalog=file("catalog"), budgets=file("budgets"), policy=file("policy"), plan=file("plan"),
        events=file("events"), lookback_days=int(number(anomalies, "lookback_days", "anomalies", 28, int)),
        anomaly_threshold=number(anomalies, "threshold", "anomalies", 1.0),
        anomaly_min_impact_usd=number(anomalies, "min_impact_usd", "anomalies", 0.0, zero=True),
        alert_threshold=number(alerts, "threshold", "alerts", 0.5),
        alert_paths=int(number(alerts, "paths", "alerts", 200, int)),
        webhooks=tuple(hooks), email=bool(channels.get("email", False)),
        state=file("state") or base / "gpuplan-notify-state.json", runs_dir=file("runs_dir") or base / "runs",
        billing=file("billing"))
    inputs = tuple(p for p in (path, cfg.usage, cfg.catalog, cfg.budgets, cfg.policy, cfg.plan, cfg.billing,
                               cfg.events) if p is not None)
    return WatchConfig(**{**cfg.__dict__, "inputs": inputs})


@dataclass(frozen=True)
class WatchRun:
    """The run record (JSON-ready) and the exit code."""

    record: dict[str, Any]
    exit_code: int
    path: Path | None = None


def _utc(now: pd.Timestamp | None) -> pd.Timestamp:
    if now is None:
        return pd.Timestamp.now(tz="UTC")
    now = pd.Timestamp(now)
    return now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")


def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_watch(config: WatchConfig, usage: pd.DataFrame, rates, *, as_of: pd.Timestamp | None = None,
              now: pd.Timestamp | None = None, progress: Callable[[str], None] | None = None,
              instance_gpus: Mapping[str, tuple[str, float]] | None = None) -> WatchRun:
    """One run (module docstring) on already loaded usage and its list ``rates``; writes the run record.
    ``instance_gpus`` (the catalog's) names the GPU model of commitments in the billing export."""
    from operate.alerts import compute_alerts, default_as_of, forecast_for_budgets
    from operate.anomalies import AnomalyConfig, detect, to_csv_frame
    from operate.budgets import load_budgets
    from operate.costing import cost_basis, priced
    from operate.files import read_plan
    from operate.notify import (
        Channels,
        Webhook,
        alert_items,
        anomaly_items,
        notify,
        smtp_from_env,
        violation_items,
    )
    from operate.policy import check_commitments, check_plan, check_usage, combine, load_policy
    from usage import schema as S

    started = _utc(now)
    channels = Channels(tuple(Webhook(u, f) for u, f in config.webhooks), smtp_from_env() if config.email else None)
    when = as_of or default_as_of(usage)
    record: dict[str, Any] = {"schema": SCHEMA, "config": config.source, "started": _iso(started),
                              "as_of": _iso(when), "usage": str(config.usage), "sections": {}}
    sections = record["sections"]
    items: dict[str, list] = {}

    events = ()
    if config.events is not None:
        from forecasting.events import load_events

        known = {gpu for gpu, _ in instance_gpus.values()} if instance_gpus else None
        events = load_events(config.events, known_gpu_types=known)
        record["events"] = {"file": str(config.events), "count": len(events)}
    rep = detect(usage, rates.of, when, AnomalyConfig(lookback_days=config.lookback_days,
                                                      sensitivity=config.anomaly_threshold,
                                                      min_impact_usd=config.anomaly_min_impact_usd),
                 events=events, progress=progress)
    table = to_csv_frame(rep.table)
    sections["anomalies"] = {"open": len(table), "window_start": _iso(rep.window_start),
                             "anomalies": table.to_dict(orient="records")}
    items["anomalies"] = anomaly_items(rep.table)
    if config.budgets is not None:
        budgets = load_budgets(config.budgets, set(usage[S.TEAM]))
        long = forecast_for_budgets(usage, budgets, when, 1344, progress=progress)
        report = compute_alerts(usage, budgets, rates, long=long, as_of=when, threshold=config.alert_threshold,
                                n_paths=config.alert_paths, cost_basis=cost_basis(usage, rates))
        sections["alerts"] = {"open": len(report.fired), "alerts": [a.__dict__ for a in report.fired]}
        items["alerts"] = alert_items(report.alerts)
    if config.policy is not None:
        pol = load_policy(config.policy, set(usage[S.TEAM]))
        reports = [check_usage(priced(usage, rates), pol)]
        if config.plan is not None:
            reports.append(check_plan(read_plan(config.plan), pol))
        result = combine(*reports)
        sections["check"] = {"open": len(result.violations),
                             "violations": result.violations.astype(object).to_dict(orient="records")}
        items["check"] = violation_items(result.violations)
        if pol.commitment_utilization is not None:
            plan = read_plan(config.plan) if config.plan is not None else None
            parts = []
            if config.billing is not None:
                parts.append(check_commitments(pol, billing=config.billing, usage=usage,
                                               instance_gpus=dict(instance_gpus or {})))
            if plan is not None:
                parts.append(check_commitments(pol, plan=plan, usage=usage))
            com = combine(*(parts or [check_commitments(pol)]))
            sections["commitments"] = {"open": len(com.violations), "notes": list(com.notes),
                                       "violations": com.violations.astype(object).to_dict(orient="records")}
            items["commitments"] = violation_items(com.violations, source="commitments")
    errors: list[str] = []
    if not channels.empty:
        record["notifications"] = {}
        for source, its in items.items():
            outcome = notify(its, source, channels, config.state, now=started)
            record["notifications"][source] = {"sent": len(outcome.sent), "held": len(outcome.held),
                                               "errors": list(outcome.errors)}
            errors.extend(outcome.errors)
    open_items = sum(s["open"] for s in sections.values())
    record["open"] = open_items
    record["errors"] = errors
    exit_code = 2 if errors else 1 if open_items else 0
    record["exit_code"] = exit_code
    record["finished"] = _iso(pd.Timestamp.now(tz="UTC"))
    path = _record_path(config.runs_dir, started)
    write_json_atomic(_jsonable(record), path)
    return WatchRun(record, exit_code, path)


def record_error(config: WatchConfig, message: str, now: pd.Timestamp | None = None) -> Path:
    """Write a run record of a run that failed with ``message`` (one line)."""
    started = _utc(now)
    path = _record_path(config.runs_dir, started)
    write_json_atomic({"schema": SCHEMA, "config": config.source, "started": _iso(started), "exit_code": 2,
                       "errors": [message]}, path)
    return path


def _record_path(folder: Path, started: pd.Timestamp) -> Path:
    """``run-YYYYMMDDTHHMMSSZ.json``, with ``-2``, ``-3``... when runs start within the same second."""
    stem = f"run-{started:%Y%m%dT%H%M%SZ}"
    path, n = folder / f"{stem}.json", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.json"
    return path


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, pd.Timestamp):
        return _iso(obj)
    if hasattr(obj, "item") and not isinstance(obj, str):   # numpy scalars
        return obj.item()
    if isinstance(obj, float) and obj != obj:
        return None
    return obj
