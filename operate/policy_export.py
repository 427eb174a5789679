"""Preventive guardrails: the policy file (:mod:`operate.policy`) as artefacts that enforce it at provisioning.

``gpuplan policy export --policy policy.yaml --target T --out DIR`` writes one target's files into DIR (atomically,
never over an input):

* ``aws-scp`` -> ``gpuplan-scp.json`` (``gpuplan-scp-2.json`` ... when one document would pass the 5,120-character
  limit of a Service Control Policy): denies ``ec2:RunInstances`` of an approval-only instance type unless the
  launch carries the approval tag (or, for team approvals, the ``team`` tag of an approved team), and denies any
  GPU/accelerator launch that lacks a required tag (one ``Null`` condition per tag, so each missing tag is denied).
* ``aws-tag-policy`` -> ``gpuplan-tag-policy.json``: an AWS Organizations tag policy naming the required tag keys
  (their capitalisation) and enforcing them on ``ec2:instance``. A tag policy standardises keys and values; it does
  not require a tag to exist, which is the SCP's job.
* ``kyverno`` -> ``gpuplan-kyverno.yaml``: Kyverno ClusterPolicies: pods requesting ``nvidia.com/gpu`` must carry
  the required labels; pods that pin an approval-only instance type (``node.kubernetes.io/instance-type``) or ask
  for at least as many GPUs per container as the smallest approval-only type has need the approval label (or the
  ``team`` label of an approved team).
* ``custodian`` -> ``gpuplan-custodian.yaml``: Cloud Custodian policies that stop idle non-production GPU instances
  on a schedule: running GPU/accelerator instances whose ``env`` tag is not a production value (and whose ``team``
  tag is one of ``idle_gpu.teams`` when given), with GPU utilisation (CloudWatch agent metric
  ``nvidia_smi_utilization_gpu``, namespace ``CWAgent``, per ``InstanceId``) at most ``utilization_below`` x 100%
  over the last ``for_hours`` hours (the maximum of the hour's samples below the threshold), in ``periodic`` mode.

Approvals mean what they mean to ``gpuplan check`` (:func:`operate.policy.check_usage`): an organisation-wide
approval (no team) approves the type for everyone, so it is not denied; a team approval approves it for that team.

Every artefact is checked against the structure its tool documents before anything is written
(:func:`validate`): JSON Schemas for the SCP (``Version`` 2012-10-17, ``Statement`` keys, condition operators,
5,120 characters), the tag policy (``tags.<key>.tag_key/enforced_for`` with ``@@assign``, 10,000 characters), the
Kyverno ClusterPolicy (``kyverno.io/v1``, ``spec.rules[].match`` and one ``validate`` kind; every ``{{ }}``
expression must parse as JMESPath) and the Custodian file (``policies[].name/resource/filters/actions/mode``; the
``custodian validate`` CLI runs on it in the tests when installed).

Units: GPU counts are GPUs per instance or container; utilisation is percent in CloudWatch, a fraction in the policy;
hours and days as named.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import jmespath
import jsonschema
import yaml

from operate.policy import Policy
from usage.io import write_folder_atomic

TARGETS = ("aws-scp", "aws-tag-policy", "kyverno", "custodian")
SCP_MAX_CHARS = 5120
"""AWS Organizations quota: a Service Control Policy document has at most 5,120 characters."""
TAG_POLICY_MAX_CHARS = 10000
"""AWS Organizations quota: a tag policy document has at most 10,000 characters."""
GPU_RESOURCE = "nvidia.com/gpu"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class PolicyExportError(ValueError):
    """A policy that cannot become the asked artefact (one line with the fix)."""


@dataclass(frozen=True)
class ExportConfig:
    """How the policy's words become cloud and cluster settings.

    Attributes:
        approval_key: tag (AWS) and pod label (Kubernetes) whose presence marks an approved launch.
        team_key: tag/label naming the team, matched against team approvals and ``idle_gpu.teams``.
        env_key: tag that marks production; instances whose value is in ``prod_values`` are never stopped.
        prod_values: production values of ``env_key``.
        schedule: CloudWatch Events schedule expression of the Custodian policy.
        custodian_role: IAM role the Custodian Lambda runs as (``{account_id}`` is filled in by Custodian).
        gpu_families: AWS instance families treated as GPU/accelerator launches (``p5`` -> ``p5.*``).
        gpus_per_type: GPUs per instance of instance types (for the Kyverno "large request" threshold).
    """

    approval_key: str = "gpuplan-approval"
    team_key: str = "team"
    env_key: str = "env"
    prod_values: tuple[str, ...] = ("prod", "production")
    schedule: str = "rate(1 hour)"
    custodian_role: str = "arn:aws:iam::{account_id}:role/gpuplan-custodian"
    gpu_families: tuple[str, ...] = ("p3", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "p6-b200", "p6-b300",
                                     "p6e-gb200", "g4ad", "g4dn", "g5", "g5g", "g6", "g6e", "g6f", "gr6", "gr6f",
                                     "inf1", "inf2", "trn1", "trn1n", "trn2", "dl2q")
    gpus_per_type: tuple[tuple[str, float], ...] = ()


def config_from_catalog(catalog: Any, **overrides: Any) -> ExportConfig:
    """An :class:`ExportConfig` whose GPU families (with the defaults, which name types sold without a catalog price,
    e.g. p5e, trn2, p6e-gb200) and GPUs per type come from a price catalog's AWS rows."""
    t = catalog.table
    aws = t[(t["provider"] == "aws") & (t["gpu_count"] > 0)].drop_duplicates("instance_type")
    families = tuple(sorted({str(i).split(".")[0] for i in aws["instance_type"]} | set(ExportConfig.gpu_families)))
    gpus = tuple(sorted((str(r["instance_type"]), float(r["gpu_count"])) for _, r in aws.iterrows()))
    return ExportConfig(**{"gpu_families": families, "gpus_per_type": gpus, **overrides})


def approval_groups(policy: Policy) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Approval-only instance types that still need an approval, grouped by their approved teams:
    ``[(types, teams), ...]``; types approved organisation-wide are left out (as ``gpuplan check`` reads them)."""
    org = {t for team, t in policy.approved if team is None}
    by_teams: dict[tuple[str, ...], list[str]] = {}
    for itype in policy.approval_instance_types:
        if itype in org:
            continue
        teams = tuple(sorted({team for team, t in policy.approved if t == itype and team is not None}))
        by_teams.setdefault(teams, []).append(itype)
    return [(tuple(types), teams) for teams, types in sorted(by_teams.items())]


def _sid(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", text.title())[:100]


# --- AWS Service Control Policy ------------------------------------------------------------------------------------
def scp_statements(policy: Policy, cfg: ExportConfig) -> list[dict[str, Any]]:
    """The SCP's Deny statements (module docstring)."""
    instance = "arn:aws:ec2:*:*:instance/*"
    out = []
    for k, (types, teams) in enumerate(approval_groups(policy), 1):
        cond: dict[str, Any] = {"StringEquals": {"ec2:InstanceType": list(types)},
                                "Null": {f"aws:RequestTag/{cfg.approval_key}": "true"}}
        if teams:   # approved teams launch without the approval tag
            cond["StringNotEquals"] = {f"aws:RequestTag/{cfg.team_key}": list(teams)}
        out.append({"Sid": f"DenyApprovalOnlyGpuTypes{k}", "Effect": "Deny", "Action": "ec2:RunInstances",
                    "Resource": instance, "Condition": cond})
    patterns = [f"{f}.*" for f in cfg.gpu_families]
    for tag in policy.required_tags:
        out.append({"Sid": _sid(f"deny gpu launch without tag {tag}"), "Effect": "Deny", "Action": "ec2:RunInstances",
                    "Resource": instance,
                    "Condition": {"StringLike": {"ec2:InstanceType": patterns},
                                  "Null": {f"aws:RequestTag/{tag}": "true"}}})
    return out


def _compact(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"))


def scp_documents(policy: Policy, cfg: ExportConfig) -> list[dict[str, Any]]:
    """The statements packed into as few SCP documents as fit 5,120 characters each (compact JSON)."""
    statements = scp_statements(policy, cfg)
    if not statements:
        raise PolicyExportError(f"{policy.source}: nothing to enforce with an SCP: no approval_required types that "
                                "still need an approval and no required_tags (fix: add either section)")
    docs: list[list[dict[str, Any]]] = [[]]
    for st in statements:
        trial = {"Version": "2012-10-17", "Statement": [*docs[-1], st]}
        if docs[-1] and len(_compact(trial)) > SCP_MAX_CHARS:
            docs.append([st])
        else:
            docs[-1].append(st)
    out = [{"Version": "2012-10-17", "Statement": s} for s in docs]
    too_big = [d for d in out if len(_compact(d)) > SCP_MAX_CHARS]
    if too_big:
        raise PolicyExportError(f"{policy.source}: one SCP statement is over {SCP_MAX_CHARS} characters (fix: list "
                                "fewer instance types in approval_required.instance_types)")
    return out


# --- AWS tag policy --------------------------------------------------------------------------------------------------
def tag_policy(policy: Policy, cfg: ExportConfig) -> dict[str, Any]:
    """An AWS Organizations tag policy for the required tag keys, enforced on EC2 instances."""
    if not policy.required_tags:
        raise PolicyExportError(f"{policy.source}: no required_tags to put in a tag policy (fix: add "
                                "required_tags: [team, project])")
    return {"tags": {tag.lower(): {"tag_key": {"@@assign": tag}, "enforced_for": {"@@assign": ["ec2:instance"]}}
                     for tag in policy.required_tags}}


# --- Kyverno ---------------------------------------------------------------------------------------------------------
def _pod_match() -> dict[str, Any]:
    return {"any": [{"resources": {"kinds": ["Pod"]}}]}


def kyverno_policies(policy: Policy, cfg: ExportConfig) -> list[dict[str, Any]]:
    """Kyverno ClusterPolicies (module docstring)."""
    gpus = dict(cfg.gpus_per_type)
    docs = []
    gpu_pod = f"{{{{ request.object.spec.containers[?resources.limits.\"{GPU_RESOURCE}\"] | length(@) }}}}"
    if policy.required_tags:
        labels = ", ".join(policy.required_tags)
        docs.append({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
            "metadata": {"name": "gpuplan-require-gpu-labels",
                         "annotations": {"policies.kyverno.io/title": "Require labels on GPU pods",
                                         "policies.kyverno.io/description":
                                             f"Pods requesting {GPU_RESOURCE} must carry the labels {labels} "
                                             f"(gpuplan policy {Path(policy.source).name})."}},
            "spec": {"validationFailureAction": "Enforce", "background": True, "rules": [{
                "name": "require-labels-on-gpu-pods", "match": _pod_match(),
                "preconditions": {"all": [{"key": gpu_pod, "operator": "GreaterThan", "value": 0}]},
                "validate": {"message": f"GPU pods must carry the labels {labels} (gpuplan policy).",
                             "pattern": {"metadata": {"labels": {t: "?*" for t in policy.required_tags}}}}}]}})
    rules = []
    for k, (types, teams) in enumerate(approval_groups(policy), 1):
        sizes = [gpus[t] for t in types if gpus.get(t, 0) > 0]
        conditions: list[dict[str, Any]] = [{
            "key": f"{{{{ request.object.spec.nodeSelector.\"{INSTANCE_TYPE_LABEL}\" || '' }}}}",
            "operator": "AnyIn", "value": list(types)}]
        if sizes:
            conditions.append({"key": f"{{{{ element.resources.limits.\"{GPU_RESOURCE}\" || '0' }}}}",
                               "operator": "GreaterThanOrEquals", "value": int(min(sizes))})
        pre = [{"key": f"{{{{ request.object.metadata.labels.\"{cfg.approval_key}\" || '' }}}}", "operator": "Equals",
                "value": ""}]
        if teams:
            pre.append({"key": f"{{{{ request.object.metadata.labels.\"{cfg.team_key}\" || '' }}}}",
                        "operator": "AnyNotIn", "value": list(teams)})
        what = (f"at least {int(min(sizes))} GPUs in a container, or the instance types {', '.join(types)}" if sizes
                else f"the instance types {', '.join(types)}")
        rules.append({
            "name": f"approval-for-large-gpu-requests-{k}", "match": _pod_match(), "preconditions": {"all": pre},
            "validate": {"message": f"Pods asking for {what} need the label {cfg.approval_key}"
                                    + (f" or a {cfg.team_key} label of {', '.join(teams)}" if teams else "")
                                    + " (gpuplan policy).",
                         "foreach": [{"list": "request.object.spec.containers",
                                      "deny": {"conditions": {"any": conditions}}}]}})
    if rules:
        docs.append({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
            "metadata": {"name": "gpuplan-approve-large-gpu-requests",
                         "annotations": {"policies.kyverno.io/title": "Approval for large GPU requests",
                                         "policies.kyverno.io/description":
                                             "Approval-only GPU instance types (gpuplan policy "
                                             f"{Path(policy.source).name}) need an approval label."}},
            "spec": {"validationFailureAction": "Enforce", "background": True, "rules": rules}})
    if not docs:
        raise PolicyExportError(f"{policy.source}: nothing to enforce with Kyverno: no required_tags and no "
                                "approval_required types that still need an approval (fix: add either section)")
    return docs


# --- Cloud Custodian -------------------------------------------------------------------------------------------------
def custodian_policies(policy: Policy, cfg: ExportConfig) -> dict[str, Any]:
    """Cloud Custodian policies that stop idle non-production GPU instances (module docstring)."""
    idle = policy.idle
    if idle is None:
        raise PolicyExportError(f"{policy.source}: no idle_gpu section to turn into auto-shutdown (fix: add idle_gpu "
                                "with utilization_below and for_hours)")
    families = "|".join(re.escape(f) for f in cfg.gpu_families)
    filters: list[Any] = [
        {"State.Name": "running"},
        {"type": "value", "key": "InstanceType", "op": "regex", "value": f"^({families})\\..*"},
        {"not": [{"type": "value", "key": f"tag:{cfg.env_key}", "op": "in", "value": list(cfg.prod_values)}]},
    ]
    if idle.teams:
        filters.append({"type": "value", "key": f"tag:{cfg.team_key}", "op": "in", "value": list(idle.teams)})
    filters.append({"type": "metrics", "namespace": "CWAgent", "name": "nvidia_smi_utilization_gpu",
                    "statistics": "Maximum", "days": round(idle.for_hours / 24.0, 6),
                    "period": idle.for_hours * 3600, "value": round(idle.utilization_below * 100.0, 6),
                    "op": "less-than"})
    teams = f" of {', '.join(idle.teams)}" if idle.teams else ""
    return {"policies": [{
        "name": "gpuplan-stop-idle-gpu-nonprod", "resource": "aws.ec2",
        "description": (f"Stop running non-production GPU instances{teams} whose GPU utilisation stayed below "
                        f"{idle.utilization_below:.0%} for {idle.for_hours} hours (gpuplan policy "
                        f"{Path(policy.source).name}, idle_gpu)."),
        "mode": {"type": "periodic", "schedule": cfg.schedule, "role": cfg.custodian_role},
        "filters": filters,
        "actions": ["stop"]}]}


# --- validation ------------------------------------------------------------------------------------------------------
_CONDITION_OPS = ("StringEquals", "StringNotEquals", "StringLike", "StringNotLike", "Null", "ArnLike", "ArnNotLike",
                  "Bool", "NumericEquals", "NumericLessThan", "NumericGreaterThan", "ForAnyValue:StringEquals",
                  "ForAllValues:StringEquals", "ForAnyValue:StringLike", "ForAllValues:StringLike")
SCP_SCHEMA = {
    "type": "object", "required": ["Version", "Statement"], "additionalProperties": False,
    "properties": {
        "Version": {"const": "2012-10-17"},
        "Statement": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["Effect"], "additionalProperties": False,
            "oneOf": [{"required": ["Action"]}, {"required": ["NotAction"]}],
            "properties": {
                "Sid": {"type": "string", "pattern": "^[A-Za-z0-9]*$"},
                "Effect": {"enum": ["Allow", "Deny"]},
                "Action": {"type": ["string", "array"]}, "NotAction": {"type": ["string", "array"]},
                "Resource": {"type": ["string", "array"]}, "NotResource": {"type": ["string", "array"]},
                "Condition": {"type": "object", "propertyNames": {"enum": list(_CONDITION_OPS)},
                              "additionalProperties": {"type": "object", "minProperties": 1, "additionalProperties": {
                                  "type": ["string", "array", "boolean", "number"]}}}}}}}}
"""The SCP grammar AWS documents (``Principal`` is not allowed in SCPs; ``Version`` must be 2012-10-17)."""
TAG_POLICY_SCHEMA = {
    "type": "object", "required": ["tags"], "additionalProperties": False,
    "properties": {"tags": {"type": "object", "minProperties": 1, "additionalProperties": {
        "type": "object", "required": ["tag_key"], "additionalProperties": False,
        "properties": {"tag_key": {"type": "object", "required": ["@@assign"],
                                   "properties": {"@@assign": {"type": "string", "minLength": 1, "maxLength": 128}}},
                       "tag_value": {"type": "object"},
                       "enforced_for": {"type": "object", "required": ["@@assign"], "properties": {
                           "@@assign": {"type": "array", "items": {"type": "string",
                                                                   "pattern": "^[a-z0-9-]+:[A-Za-z0-9-]+$"}}}}}}}}}
KYVERNO_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "kyverno.io/v1"}, "kind": {"const": "ClusterPolicy"},
        "metadata": {"type": "object", "required": ["name"],
                     "properties": {"name": {"type": "string", "maxLength": 63, "pattern": _NAME.pattern}}},
        "spec": {"type": "object", "required": ["rules"], "properties": {
            "validationFailureAction": {"enum": ["Enforce", "Audit"]}, "background": {"type": "boolean"},
            "rules": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["name", "match", "validate"],
                "properties": {
                    "name": {"type": "string", "maxLength": 63, "pattern": _NAME.pattern},
                    "match": {"type": "object", "minProperties": 1, "properties": {
                        "any": {"type": "array", "items": {"type": "object", "required": ["resources"]}},
                        "all": {"type": "array", "items": {"type": "object", "required": ["resources"]}}}},
                    "preconditions": {"type": "object"},
                    "validate": {"type": "object", "required": ["message"],
                                 "oneOf": [{"required": ["pattern"]}, {"required": ["anyPattern"]},
                                           {"required": ["deny"]}, {"required": ["foreach"]}]}}}}}}}}
CUSTODIAN_SCHEMA = {
    "type": "object", "required": ["policies"], "additionalProperties": False,
    "properties": {"policies": {"type": "array", "minItems": 1, "items": {
        "type": "object", "required": ["name", "resource"],
        "properties": {"name": {"type": "string", "pattern": r"^[A-z][A-z0-9]*(-[A-z0-9]*[A-z][A-z0-9]*)*$"},
                       "resource": {"type": "string", "pattern": r"^aws\.[a-z0-9-]+$"},
                       "description": {"type": "string"},
                       "mode": {"type": "object", "required": ["type"], "properties": {
                           "type": {"enum": ["pull", "periodic", "cloudtrail", "ec2-instance-state"]}},
                           "if": {"properties": {"type": {"const": "periodic"}}},
                           "then": {"required": ["schedule", "role"]}},
                       "filters": {"type": "array", "minItems": 1},
                       "actions": {"type": "array", "minItems": 1}}}}}}


def _expressions(node: Any) -> list[str]:
    """Every ``{{ ... }}`` expression in a Kyverno document's strings."""
    if isinstance(node, dict):
        return [e for v in node.values() for e in _expressions(v)]
    if isinstance(node, list):
        return [e for v in node for e in _expressions(v)]
    if isinstance(node, str):
        return [m.strip() for m in re.findall(r"\{\{(.*?)\}\}", node)]
    return []


def validate(target: str, docs: list[Any]) -> None:
    """Check each document of ``target`` against its documented structure; raise :class:`PolicyExportError` (one
    line naming the document, the place and the rule) on the first problem."""
    schema = {"aws-scp": SCP_SCHEMA, "aws-tag-policy": TAG_POLICY_SCHEMA, "kyverno": KYVERNO_SCHEMA,
              "custodian": CUSTODIAN_SCHEMA}[target]
    for i, doc in enumerate(docs, 1):
        try:
            jsonschema.validate(doc, schema)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(top)"
            raise PolicyExportError(f"{target} document {i}, at {where}: {exc.message.splitlines()[0][:200]}") \
                from None
        size = len(_compact(doc))
        limit = {"aws-scp": SCP_MAX_CHARS, "aws-tag-policy": TAG_POLICY_MAX_CHARS}.get(target)
        if limit is not None and size > limit:
            raise PolicyExportError(f"{target} document {i} has {size:,} characters, over the {limit:,} AWS allows")
        if target == "kyverno":
            for expr in _expressions(doc):
                try:
                    jmespath.compile(expr)
                except jmespath.exceptions.ParseError as exc:
                    raise PolicyExportError(f"kyverno document {i}: expression {{{{ {expr} }}}} is not JMESPath "
                                            f"({' '.join(str(exc).split())[:120]})") from None


# --- export ----------------------------------------------------------------------------------------------------------
def documents(policy: Policy, target: str, cfg: ExportConfig) -> dict[str, list[Any]]:
    """File name -> the documents it holds, for one target (validated)."""
    if target not in TARGETS:
        raise PolicyExportError(f"unknown target '{target}' (fix: use one of {', '.join(TARGETS)})")
    if target == "aws-scp":
        docs = scp_documents(policy, cfg)
        names = ["gpuplan-scp.json"] if len(docs) == 1 else [f"gpuplan-scp-{k}.json" for k in range(1, len(docs) + 1)]
        out = {n: [d] for n, d in zip(names, docs, strict=True)}
    elif target == "aws-tag-policy":
        out = {"gpuplan-tag-policy.json": [tag_policy(policy, cfg)]}
    elif target == "kyverno":
        out = {"gpuplan-kyverno.yaml": kyverno_policies(policy, cfg)}
    else:
        out = {"gpuplan-custodian.yaml": [custodian_policies(policy, cfg)]}
    validate(target, [d for docs in out.values() for d in docs])
    return out


def _writer(name: str, docs: list[Any]) -> Callable[[IO[str]], Any]:
    if name.endswith(".json"):
        return lambda fh: (json.dump(docs[0], fh, indent=2), fh.write("\n"))
    return lambda fh: yaml.safe_dump_all(docs, fh, sort_keys=False, width=120)


def export(policy: Policy, target: str, out_dir: str | Path, cfg: ExportConfig | None = None) -> list[Path]:
    """Write one target's artefacts into ``out_dir`` (all files or none; never over an input)."""
    files = documents(policy, target, cfg or ExportConfig())
    return write_folder_atomic(out_dir, {name: _writer(name, docs) for name, docs in files.items()})


APPLY = {
    "aws-scp": "aws organizations create-policy --type SERVICE_CONTROL_POLICY --name gpuplan-gpu-guardrails "
               "--description 'gpuplan policy export' --content file://{file}; then aws organizations attach-policy "
               "--policy-id <id> --target-id <OU or account id>",
    "aws-tag-policy": "aws organizations create-policy --type TAG_POLICY --name gpuplan-tags --description "
                      "'gpuplan policy export' --content file://{file}; then aws organizations attach-policy "
                      "--policy-id <id> --target-id <OU or account id>",
    "kyverno": "kubectl apply -f {file} (Kyverno installed in the cluster)",
    "custodian": "custodian validate {file}; custodian run -s out {file} (deploys the periodic Lambda)",
}
"""How to apply each target's file (printed by the CLI; README shows the same)."""
