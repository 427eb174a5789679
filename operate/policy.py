"""Guardrails from a policy file, checked on usage and on a purchase plan.

Policy file (YAML; every section optional, unknown keys are errors)::

    required_tags: [team, project]          # usage rows must carry these (team 'unallocated' = untagged)
    approval_required:
      instance_types: [p5.48xlarge]         # need an approval to run or buy
      approved:                             # approvals: a team (usage) or the organisation (no team: plans)
        - {team: llm-pretrain, instance_type: p5.48xlarge}
    idle_gpu:
      utilization_below: 0.2                # an hour is idle when utilisation is below this (0-1)
      for_hours: 3                          # auto-shutdown after this many consecutive idle hours
      teams: [ml-platform, data-science]    # optional: only these teams (e.g. dev GPUs)
      lookback_days: 30                     # optional: usage window checked (default 30)
    max_commitment:
      usd: 12000000                         # commitment obligation over the full terms (upfront + recurring)
      gpus: {NVIDIA H100: 200}              # optional: committed GPUs per GPU model
    commitment_utilization:
      below: 0.8                            # an owned RI/SP/CUD used below this share is a violation
      lookback_days: 14                     # over the last days of the billing export (or the usage, for a plan)

Checks on usage: untagged GPU-hours per required tag (with their cost); usage of approval-only instance
types without an approval (needs an ``instance_type`` column); idle runs: consecutive hours of a team and
GPU type with utilisation below the threshold lasting longer than ``for_hours``. Each idle run is an
auto-shutdown recommendation; the money at stake is the cost of the run's hours after the first
``for_hours`` (what shutting down then would have saved), also given per 30 days.
Checks on a plan: approval-only instance types bought or allowed on spot without an organisation-wide
approval; the commitment obligation and committed GPUs against the maximum.
Checks on commitments in use (``commitment_utilization``; :mod:`operate.commitments`): from a billing export
(``gpuplan check --billing``) or a plan with its usage, every commitment used below the threshold over the last
days, with its unused dollars and the teams that could move onto it.

Units: GPU-hours, USD, utilisation 0-1, hours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from operate.commitments import UtilizationRule
from operate.costing import COST
from optimizer.plan import Plan
from optimizer.summary import commitment_obligation_usd
from usage import schema as S
from usage.io import read_text
from usage.schema import UsageError

SECTIONS = {"required_tags": None, "approval_required": {"instance_types", "approved"},
            "idle_gpu": {"utilization_below", "for_hours", "teams", "lookback_days"},
            "max_commitment": {"usd", "gpus"}, "commitment_utilization": {"below", "lookback_days"}}
VIOLATION_COLUMNS = ("check", "target", "scope", "message", "gpu_hours", "usd")
IDLE_COLUMNS = ("team", "gpu_type", "project", "start", "end", "hours", "mean_gpus", "mean_utilization",
                "run_cost_usd", "saving_usd")
MONTH_HOURS = 720


@dataclass(frozen=True)
class IdleRule:
    utilization_below: float
    for_hours: int
    teams: tuple[str, ...] | None = None
    lookback_days: int = 30


@dataclass(frozen=True)
class Policy:
    """A validated guardrails policy (see the module docstring)."""

    required_tags: tuple[str, ...] = ()
    approval_instance_types: tuple[str, ...] = ()
    approved: tuple[tuple[str | None, str], ...] = ()
    idle: IdleRule | None = None
    max_commitment_usd: float | None = None
    max_commitment_gpus: tuple[tuple[str, float], ...] = ()
    source: str = "policy"
    commitment_utilization: UtilizationRule | None = None


@dataclass(frozen=True)
class CheckReport:
    """Violations (``check, target, scope, message, gpu_hours, usd``), idle-shutdown recommendations, notes."""

    violations: pd.DataFrame
    idle: pd.DataFrame
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.violations.empty


def _key_lines(node: Any, prefix: str = "") -> dict[str, int]:
    """YAML key path -> 1-based line, from the composed node tree."""
    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            path = f"{prefix}{k.value}"
            out[path] = k.start_mark.line + 1
            out.update(_key_lines(v, path + "."))
    return out


def load_policy(path: str | Path, known_teams: set[str] | None = None) -> Policy:
    """Read and validate a policy file; every mistake is one line naming the file, line, key and fix."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise UsageError(source, "file not found", fix="check the path")
    text = read_text(path)
    try:
        doc = yaml.safe_load(text)
        lines = _key_lines(yaml.compose(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UsageError(source, f"not valid YAML{where}", fix="check indentation and quoting") from None
    if not isinstance(doc, dict) or not doc:
        raise UsageError(source, "expected a mapping of policy sections",
                         fix=f"use sections {', '.join(SECTIONS)} (see gpuplan check --help)")

    def err(key: str, message: str, fix: str) -> UsageError:
        line = lines.get(key)
        return UsageError(f"{source}, line {line}" if line else source, message, column=key, fix=fix)

    for key, value in doc.items():
        if key not in SECTIONS:
            raise err(key, f"unknown section '{key}'", f"use {', '.join(SECTIONS)}")
        allowed = SECTIONS[key]
        if allowed is not None:
            if not isinstance(value, dict):
                raise err(key, f"'{key}' must be a mapping", f"indent its keys ({', '.join(sorted(allowed))}) below it")
            for sub in value:
                if sub not in allowed:
                    raise err(f"{key}.{sub}", f"unknown key '{sub}' in {key}", f"use {', '.join(sorted(allowed))}")

    def str_list(key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise err(key, f"'{key}' must be a list of names", "write e.g. [team, project]")
        return tuple(v.strip() for v in value)

    def num(key: str, value: Any, lo: float, hi: float | None, fix: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < lo or (
                hi is not None and value > hi):
            rng = f">= {lo:g}" if hi is None else f"between {lo:g} and {hi:g}"
            raise err(key, f"{key} {value!r} must be a number {rng}", fix)
        return float(value)

    tags = str_list("required_tags", doc["required_tags"]) if "required_tags" in doc else ()
    appr = doc.get("approval_required") or {}
    types = str_list("approval_required.instance_types", appr["instance_types"]) if "instance_types" in appr else ()
    approved: list[tuple[str | None, str]] = []
    if not isinstance(appr.get("approved") or [], list):
        raise err("approval_required.approved", "'approved' must be a list of approvals",
                  "write - {team: llm-pretrain, instance_type: p5.48xlarge} entries below it")
    for k, entry in enumerate(appr.get("approved") or [], 1):
        key = "approval_required.approved"
        if not isinstance(entry, dict) or "instance_type" not in entry or set(entry) - {"team", "instance_type"}:
            raise err(key, f"approval {k} must have instance_type and optionally team",
                      "write - {team: llm-pretrain, instance_type: p5.48xlarge}")
        team = entry.get("team")
        if team is not None and known_teams is not None and str(team) not in known_teams:
            raise err(key, f"approval {k} names unknown team '{team}'", "use a team of the usage")
        approved.append((None if team is None else str(team), str(entry["instance_type"])))
    idle = None
    if "idle_gpu" in doc:
        d = doc["idle_gpu"]
        for need in ("utilization_below", "for_hours"):
            if need not in d:
                raise err("idle_gpu", f"idle_gpu needs {need}", "e.g. utilization_below: 0.1 and for_hours: 4")
        below = num("idle_gpu.utilization_below", d["utilization_below"], 0.0, 1.0, "a fraction such as 0.1")
        hours = num("idle_gpu.for_hours", d["for_hours"], 1, None, "whole hours such as 4")
        if hours != int(hours):
            raise err("idle_gpu.for_hours", f"for_hours {hours:g} is not whole hours", "e.g. 4")
        teams = str_list("idle_gpu.teams", d["teams"]) if "teams" in d else None
        if teams and known_teams is not None:
            unknown = [t for t in teams if t not in known_teams]
            if unknown:
                raise err("idle_gpu.teams", f"unknown team '{unknown[0]}'", "use teams of the usage")
        lookback = num("idle_gpu.lookback_days", d.get("lookback_days", 30), 1, None, "days such as 30")
        idle = IdleRule(below, int(hours), teams, int(lookback))
    mc = doc.get("max_commitment") or {}
    max_usd = num("max_commitment.usd", mc["usd"], 0, None, "USD such as 12000000") if "usd" in mc else None
    gpus: list[tuple[str, float]] = []
    if "gpus" in mc:
        if not isinstance(mc["gpus"], dict):
            raise err("max_commitment.gpus", "gpus must map GPU models to counts", "write {NVIDIA H100: 200}")
        for g, v in mc["gpus"].items():
            gpus.append((str(g), num("max_commitment.gpus", v, 0, None, "a GPU count such as 200")))
    rule = None
    if "commitment_utilization" in doc:
        cu = doc["commitment_utilization"] or {}
        below = num("commitment_utilization.below", cu.get("below", 0.8), 0.0, 1.0, "a fraction such as 0.8")
        days = num("commitment_utilization.lookback_days", cu.get("lookback_days", 14), 1, 366, "days such as 14")
        if days != int(days):
            raise err("commitment_utilization.lookback_days", f"lookback_days {days:g} is not whole days", "e.g. 14")
        rule = UtilizationRule(below, int(days))
    return Policy(tags, types, tuple(approved), idle, max_usd, tuple(gpus), source, rule)


def _violation(check: str, target: str, scope: str, message: str, gpu_hours: float = 0.0, usd: float = 0.0) -> dict:
    return {"check": check, "target": target, "scope": scope, "message": message, "gpu_hours": round(gpu_hours, 3),
            "usd": round(usd, 2)}


def idle_runs(priced_usage: pd.DataFrame, rule: IdleRule) -> pd.DataFrame:
    """Idle runs: consecutive idle hours of one team and GPU type lasting longer than ``rule.for_hours``."""
    u = priced_usage
    if rule.teams:
        u = u[u[S.TEAM].isin(rule.teams)]
    u = u.sort_values([S.TEAM, S.GPU_TYPE, S.TIMESTAMP], kind="stable")
    idle = (u[S.GPUS] > 0) & u[S.UTILIZATION].notna() & (u[S.UTILIZATION] < rule.utilization_below)
    u = u[idle.to_numpy()]
    if u.empty:
        return pd.DataFrame(columns=list(IDLE_COLUMNS))
    key = S.series_id(u[S.TEAM], u[S.GPU_TYPE])
    new_run = (key != key.shift()) | (u[S.TIMESTAMP].diff() != pd.Timedelta(hours=1))
    run_id = new_run.cumsum().to_numpy()
    rank = u.groupby(run_id).cumcount().to_numpy()
    frame = u.assign(run=run_id, after_grace=np.where(rank >= rule.for_hours, u[COST], 0.0),
                     project=u[S.PROJECT] if S.PROJECT in u.columns else None)
    runs = frame.groupby("run").agg(team=(S.TEAM, "first"), gpu_type=(S.GPU_TYPE, "first"),
                                    project=("project", "first"), start=(S.TIMESTAMP, "first"),
                                    end=(S.TIMESTAMP, "last"), hours=(S.TIMESTAMP, "size"),
                                    mean_gpus=(S.GPUS, "mean"), mean_utilization=(S.UTILIZATION, "mean"),
                                    run_cost_usd=(COST, "sum"), saving_usd=("after_grace", "sum"))
    runs = runs[runs["hours"] > rule.for_hours].copy()
    runs["end"] = runs["end"] + pd.Timedelta(hours=1)
    return runs.sort_values("saving_usd", ascending=False).reset_index(drop=True)[list(IDLE_COLUMNS)]


def check_usage(priced_usage: pd.DataFrame, policy: Policy) -> CheckReport:
    """Check priced usage (``cost_usd`` from :func:`operate.costing.priced`) against the policy."""
    u = priced_usage[priced_usage[S.GPUS] > 0]
    rows: list[dict] = []
    notes: list[str] = []
    for tag in policy.required_tags:
        if tag not in u.columns:
            rows.append(_violation("required_tag", "usage", tag, f"the usage has no '{tag}' column: all "
                                   f"{u[S.GPUS].sum():,.1f} GPU-hours lack tag '{tag}'", u[S.GPUS].sum(),
                                   u[COST].sum()))
            continue
        values = u[tag]
        missing = values.isna() | (values.astype(str).str.strip() == "")
        if tag == S.TEAM:
            missing |= values == S.UNALLOCATED_TEAM
        for team, part in u[missing].groupby(S.TEAM):
            rows.append(_violation("required_tag", "usage", f"{team}", f"{part[S.GPUS].sum():,.1f} GPU-hours of "
                                   f"{team} have no '{tag}' tag", part[S.GPUS].sum(), part[COST].sum()))
    if policy.approval_instance_types:
        if S.INSTANCE_TYPE not in u.columns:
            notes.append("the usage has no instance_type column: the approval check ran on the plan only")
        else:
            approved = set(policy.approved)
            need = u[u[S.INSTANCE_TYPE].isin(policy.approval_instance_types)]
            for (team, itype), part in need.groupby([S.TEAM, S.INSTANCE_TYPE]):
                if (team, itype) in approved or (None, itype) in approved:
                    continue
                rows.append(_violation("approval", "usage", team, f"{team} ran {itype} without an approval",
                                       part[S.GPUS].sum(), part[COST].sum()))
    runs = pd.DataFrame(columns=list(IDLE_COLUMNS))
    if policy.idle is not None:
        if S.UTILIZATION not in u.columns or u[S.UTILIZATION].isna().all():
            notes.append("the usage has no utilization: the idle-GPU check was skipped (idle cost unavailable)")
        else:
            rule = policy.idle
            recent = priced_usage[priced_usage[S.TIMESTAMP] > priced_usage[S.TIMESTAMP].max()
                                  - pd.Timedelta(days=rule.lookback_days)]
            runs = idle_runs(recent, rule)
            per_month = MONTH_HOURS / (rule.lookback_days * 24)
            for (team, gpu), part in runs.groupby(["team", "gpu_type"], sort=False):
                rows.append(_violation(
                    "idle_gpu", "usage", f"{team} / {gpu}",
                    f"{len(part)} idle run(s) below {rule.utilization_below:.0%} utilisation for > {rule.for_hours} h "
                    f"in the last {rule.lookback_days} days ({part['hours'].sum()} h, "
                    f"longest {part['hours'].max()} h): "
                    f"auto-shutdown after {rule.for_hours} h saves {part['saving_usd'].sum():,.0f} USD "
                    f"(~{part['saving_usd'].sum() * per_month:,.0f} USD per 30 days)",
                    float((part["mean_gpus"] * part["hours"]).sum()), float(part["saving_usd"].sum())))
    return CheckReport(pd.DataFrame(rows, columns=list(VIOLATION_COLUMNS)), runs, tuple(notes))


def check_plan(plan: Plan, policy: Policy) -> CheckReport:
    """Check a purchase plan: approval-only instance types and the maximum commitment."""
    rows: list[dict] = []
    org_approved = {itype for team, itype in policy.approved if team is None}
    for c in plan.commitments:
        if c.instance_type in policy.approval_instance_types and c.instance_type not in org_approved:
            rows.append(_violation("approval", "plan", c.instance_type,
                                   f"the plan commits to {c.count} x {c.instance_type} ({c.purchase_option}), which "
                                   "needs an organisation-wide approval", 0.0,
                                   c.count * c.effective_hourly_usd * c.term_hours))
    for s in plan.spot:
        if s.instance_type in policy.approval_instance_types and s.instance_type not in org_approved:
            rows.append(_violation("approval", "plan", s.instance_type,
                                   f"the plan allows up to {s.max_instances} x {s.instance_type} on spot, which needs "
                                   "an organisation-wide approval"))
    obligation = commitment_obligation_usd(plan)
    if policy.max_commitment_usd is not None and obligation > policy.max_commitment_usd + 0.005:
        rows.append(_violation("max_commitment", "plan", "all commitments",
                               f"commitment obligation {obligation:,.0f} USD over the full terms exceeds the maximum "
                               f"{policy.max_commitment_usd:,.0f} USD", 0.0, obligation - policy.max_commitment_usd))
    for gpu_model, limit in policy.max_commitment_gpus:
        committed = sum(c.gpus for c in plan.commitments if c.gpu_model == gpu_model)
        if committed > limit:
            rows.append(_violation("max_commitment", "plan", gpu_model,
                                   f"the plan commits {committed:g} {gpu_model} GPUs, above the maximum {limit:g}"))
    return CheckReport(pd.DataFrame(rows, columns=list(VIOLATION_COLUMNS)), pd.DataFrame(columns=list(IDLE_COLUMNS)))


def combine(*reports: CheckReport) -> CheckReport:
    frames = [r.violations for r in reports if not r.violations.empty]
    idle = [r.idle for r in reports if not r.idle.empty]
    empty = pd.DataFrame(columns=list(VIOLATION_COLUMNS))
    return CheckReport(pd.concat(frames, ignore_index=True) if frames else empty,
                       pd.concat(idle, ignore_index=True) if idle else pd.DataFrame(columns=list(IDLE_COLUMNS)),
                       tuple(n for r in reports for n in r.notes))


def commitment_violations(findings: pd.DataFrame, target: str) -> pd.DataFrame:
    """Under-used commitments (:data:`operate.commitments.FINDING_COLUMNS`) as violations (``usd`` = unused dollars
    in the window; ``gpu_hours`` = unused GPU-hours when the finding counts them, else 0)."""
    rows = [_violation("commitment_utilization", target, str(f["commitment_id"]), str(f["message"]),
                       0.0 if pd.isna(f["unused_gpu_hours"]) else float(f["unused_gpu_hours"]), float(f["unused_usd"]))
            for _, f in findings.iterrows()]
    return pd.DataFrame(rows, columns=list(VIOLATION_COLUMNS))


def check_commitments(policy: Policy, *, billing: str | Path | None = None, usage: pd.DataFrame | None = None,
                      plan: Plan | None = None, instance_gpus: dict | None = None) -> CheckReport:
    """The ``commitment_utilization`` check: on the commitments of a billing export (``usage`` = its GPU usage, to
    name teams that could move), and on a plan's commitments against ``usage``. Nothing when the policy has no
    such section."""
    from operate.commitments import plan_under_used, read_ledger, under_used

    rule = policy.commitment_utilization
    empty = pd.DataFrame(columns=list(IDLE_COLUMNS))
    if rule is None:
        return CheckReport(pd.DataFrame(columns=list(VIOLATION_COLUMNS)), empty)
    frames, notes = [], []
    if billing is not None:
        frames.append(commitment_violations(under_used(read_ledger(billing), rule, usage, instance_gpus), "billing"))
    if plan is not None and usage is not None:
        findings, plan_notes = plan_under_used(plan, usage, rule)
        frames.append(commitment_violations(findings, "plan"))
        notes += plan_notes
    if billing is None and plan is None:
        notes.append("commitment_utilization: give --billing (a FOCUS or CUR export) or --plan with --usage to check "
                     "commitments in use")
    frames = [f for f in frames if not f.empty]
    violations = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(VIOLATION_COLUMNS))
    return CheckReport(violations, empty, tuple(notes))
