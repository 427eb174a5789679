"""gpuplan policy export (operate/policy_export.py): each artefact passes its structural check, says what the policy
says (checked by evaluating the SCP conditions and the Kyverno JMESPath expressions on example launches), and bad
input is one line. ``custodian validate`` runs when Cloud Custodian is installed (``GPUPLAN_CUSTODIAN`` or
``custodian`` on PATH), else that test is skipped."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jmespath
import pytest
import yaml

from operate.policy import load_policy
from operate.policy_export import (
    SCP_MAX_CHARS,
    ExportConfig,
    PolicyExportError,
    config_from_catalog,
    documents,
    export,
    validate,
)
from optimizer.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data_samples" / "operate" / "policy.yaml"


def _gpuplan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from app.cli import main; main()", *args], capture_output=True,
                          text=True, cwd=ROOT)


def _cfg() -> ExportConfig:
    return config_from_catalog(load_catalog())


def _policy(tmp_path: Path, text: str):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return load_policy(path)


# --- a tiny evaluator of the SCP's Deny statements for RunInstances (IAM semantics of the operators used) ----------
def _denied(doc: dict, instance_type: str, tags: dict[str, str]) -> bool:
    ctx = {"ec2:InstanceType": instance_type, **{f"aws:RequestTag/{k}": v for k, v in tags.items()}}

    def holds(op: str, key: str, values) -> bool:
        values = values if isinstance(values, list) else [values]
        if op == "Null":
            return (key not in ctx) == (values[0] == "true")
        if key not in ctx:
            return op.startswith("StringNot")     # negated operators match a missing key
        v = ctx[key]
        return {"StringEquals": v in values, "StringNotEquals": v not in values,
                "StringLike": any(fnmatch.fnmatchcase(v, p) for p in values)}[op]

    return any(st["Effect"] == "Deny" and st["Action"] == "ec2:RunInstances"
               and all(holds(op, k, vals) for op, kv in st["Condition"].items() for k, vals in kv.items())
               for st in doc["Statement"])


def test_scp_denies_what_the_sample_policy_says(tmp_path):
    written = export(load_policy(SAMPLE), "aws-scp", tmp_path / "out", _cfg())
    assert [p.name for p in written] == ["gpuplan-scp.json"]
    doc = json.loads(written[0].read_text())
    validate("aws-scp", [doc])
    assert doc["Version"] == "2012-10-17" and len(json.dumps(doc, separators=(",", ":"))) <= SCP_MAX_CHARS
    tagged = {"team": "llm-pretrain", "project": "foundation"}
    # p4de.24xlarge needs an approval; p5.48xlarge is approved organisation-wide in the sample (as gpuplan check
    # reads it)
    assert _denied(doc, "p4de.24xlarge", tagged)
    assert not _denied(doc, "p4de.24xlarge", {**tagged, "gpuplan-approval": "CHG-1234"})
    assert not _denied(doc, "p5.48xlarge", tagged)
    # every GPU launch needs both required tags; a CPU launch is not this policy's business
    for itype in ("p5.48xlarge", "p5e.48xlarge", "g6.xlarge", "p6-b200.48xlarge"):
        assert _denied(doc, itype, {"team": "a"}) and _denied(doc, itype, {"project": "b"}), itype
    assert not _denied(doc, "m7i.large", {})
    assert not _denied(doc, "g6.xlarge", tagged)


def test_team_approvals_let_that_team_launch_without_the_approval_tag(tmp_path):
    pol = _policy(tmp_path, "approval_required:\n  instance_types: [p5.48xlarge, p4de.24xlarge]\n  approved:\n"
                            "    - {team: llm-pretrain, instance_type: p5.48xlarge}\n")
    files = documents(pol, "aws-scp", _cfg())
    doc = files["gpuplan-scp.json"][0]
    assert len(doc["Statement"]) == 2     # p4de (no team approved) and p5 (llm-pretrain approved) differ
    assert not _denied(doc, "p5.48xlarge", {"team": "llm-pretrain"})
    assert _denied(doc, "p5.48xlarge", {"team": "research"}) and _denied(doc, "p5.48xlarge", {})
    assert not _denied(doc, "p5.48xlarge", {"team": "research", "gpuplan-approval": "yes"})
    assert _denied(doc, "p4de.24xlarge", {"team": "llm-pretrain"})


def test_scp_splits_into_documents_under_the_size_limit(tmp_path):
    many = ", ".join(f"x{k}.48xlarge" for k in range(600))
    pol = _policy(tmp_path, "required_tags: [team]\napproval_required:\n  instance_types: [" + many + "]\n"
                            "  approved:\n" + "".join(f"    - {{team: t{k}, instance_type: x{k}.48xlarge}}\n"
                                                      for k in range(600)))
    files = documents(pol, "aws-scp", _cfg())
    assert len(files) > 1 and list(files)[0] == "gpuplan-scp-1.json"
    sizes = [len(json.dumps(d[0], separators=(",", ":"))) for d in files.values()]
    assert max(sizes) <= SCP_MAX_CHARS
    statements = [s for d in files.values() for s in d[0]["Statement"]]
    assert len(statements) == 601     # 600 single-team groups + the team tag; none lost in the split


def test_tag_policy_names_the_required_keys(tmp_path):
    doc = documents(load_policy(SAMPLE), "aws-tag-policy", _cfg())["gpuplan-tag-policy.json"][0]
    assert doc == {"tags": {"team": {"tag_key": {"@@assign": "team"}, "enforced_for": {"@@assign": ["ec2:instance"]}},
                            "project": {"tag_key": {"@@assign": "project"},
                                        "enforced_for": {"@@assign": ["ec2:instance"]}}}}


# --- Kyverno: evaluate the rules' JMESPath and operators on example admission requests ------------------------------
def _expr(text: str, ctx: dict):
    inner = text.strip()
    assert inner.startswith("{{") and inner.endswith("}}")
    return jmespath.search(inner[2:-2].strip(), ctx)


def _op(op: str, key, value) -> bool:
    if op == "Equals":
        return str(key) == str(value)
    if op == "GreaterThan":
        return float(key) > float(value)
    if op == "GreaterThanOrEquals":
        return float(key) >= float(value)
    if op == "AnyIn":
        keys = key if isinstance(key, list) else [key]
        return any(k in value for k in keys)
    if op == "AnyNotIn":
        keys = key if isinstance(key, list) else [key]
        return any(k not in value for k in keys)
    raise AssertionError(op)


def _admit(policies: list[dict], pod: dict) -> bool:
    """True when every rule lets the pod in (preconditions, pattern on labels, foreach deny)."""
    req = {"request": {"object": pod}}
    for pol in policies:
        for rule in pol["spec"]["rules"]:
            pre = (rule.get("preconditions") or {}).get("all", [])
            if not all(_op(c["operator"], _expr(c["key"], req), c["value"]) for c in pre):
                continue
            v = rule["validate"]
            if "pattern" in v:
                labels = pod["metadata"].get("labels", {})
                if any(not labels.get(k) for k in v["pattern"]["metadata"]["labels"]):
                    return False
            for each in v.get("foreach", []):
                for element in jmespath.search(each["list"], req):
                    ctx = {**req, "element": element}
                    if any(_op(c["operator"], _expr(c["key"], ctx), c["value"])
                           for c in each["deny"]["conditions"]["any"]):
                        return False
    return True


def _pod(gpus: int | None, labels: dict | None = None, node_type: str | None = None) -> dict:
    res = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus is not None else {"limits": {"cpu": "2"}}
    spec = {"containers": [{"name": "main", "image": "x", "resources": res}]}
    if node_type:
        spec["nodeSelector"] = {"node.kubernetes.io/instance-type": node_type}
    return {"metadata": {"name": "p", "labels": labels or {}}, "spec": spec}


def test_kyverno_rules_admit_and_block_the_right_pods(tmp_path):
    written = export(load_policy(SAMPLE), "kyverno", tmp_path / "k8s", _cfg())
    docs = list(yaml.safe_load_all(written[0].read_text()))
    validate("kyverno", docs)
    assert [d["metadata"]["name"] for d in docs] == ["gpuplan-require-gpu-labels", "gpuplan-approve-large-gpu-requests"]
    labelled = {"team": "llm-pretrain", "project": "foundation"}
    assert _admit(docs, _pod(1, labelled))
    assert not _admit(docs, _pod(1, {"team": "llm-pretrain"}))          # project label missing on a GPU pod
    assert _admit(docs, _pod(None, {}))                                 # CPU pods are not this policy's business
    # p4de.24xlarge (8 GPUs) needs approval: 8 GPUs in a container or pinning the type, without the approval label
    assert not _admit(docs, _pod(8, labelled))
    assert _admit(docs, _pod(8, {**labelled, "gpuplan-approval": "CHG-1"}))
    assert not _admit(docs, _pod(1, labelled, node_type="p4de.24xlarge"))
    assert _admit(docs, _pod(4, labelled, node_type="p5.48xlarge"))


def test_kyverno_team_approval_admits_that_team(tmp_path):
    pol = _policy(tmp_path, "required_tags: [team]\napproval_required:\n  instance_types: [p5.48xlarge]\n"
                            "  approved:\n    - {team: llm-pretrain, instance_type: p5.48xlarge}\n")
    docs = documents(pol, "kyverno", _cfg())["gpuplan-kyverno.yaml"]
    assert _admit(docs, _pod(8, {"team": "llm-pretrain"}))
    assert not _admit(docs, _pod(8, {"team": "research"}))


def test_custodian_policy_structure(tmp_path):
    doc = documents(load_policy(SAMPLE), "custodian", _cfg())["gpuplan-custodian.yaml"][0]
    (p,) = doc["policies"]
    assert p["resource"] == "aws.ec2" and p["actions"] == ["stop"] and p["mode"]["type"] == "periodic"
    metric = next(f for f in p["filters"] if isinstance(f, dict) and f.get("type") == "metrics")
    # idle_gpu: below 20% for 2 hours -> the maximum over one 2-hour period below 20 (percent)
    assert (metric["value"], metric["period"], metric["days"], metric["statistics"]) == (20.0, 7200, 0.083333,
                                                                                        "Maximum")
    not_prod = next(f for f in p["filters"] if isinstance(f, dict) and "not" in f)
    assert not_prod["not"][0]["key"] == "tag:env" and "prod" in not_prod["not"][0]["value"]
    teams = next(f for f in p["filters"] if isinstance(f, dict) and f.get("key") == "tag:team")
    assert teams["value"] == ["ml-platform", "data-science"]


def _custodian() -> str | None:
    return os.environ.get("GPUPLAN_CUSTODIAN") or shutil.which("custodian")


@pytest.mark.skipif(_custodian() is None, reason="Cloud Custodian (pip install c7n) is not installed")
def test_custodian_cli_validates_the_export(tmp_path):
    written = export(load_policy(SAMPLE), "custodian", tmp_path / "c7n", _cfg())
    proc = subprocess.run([_custodian(), "validate", str(written[0])], capture_output=True, text=True,
                          env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"})
    assert proc.returncode == 0, proc.stderr
    assert "Configuration valid" in proc.stderr + proc.stdout


def test_validators_reject_broken_artefacts():
    bad_scp = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "ec2:RunInstances",
                                                       "Principal": "*", "Resource": "*"}]}
    with pytest.raises(PolicyExportError, match="Principal"):
        validate("aws-scp", [bad_scp])
    with pytest.raises(PolicyExportError, match="5,120"):
        validate("aws-scp", [{"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Action": "ec2:RunInstances", "Resource": "x" * 5200}]}])
    kyv = {"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "p"}, "spec": {"rules": [
        {"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
         "validate": {"message": "m", "deny": {"conditions": {"any": [{"key": "{{ request.object.[ }}",
                                                                       "operator": "Equals", "value": ""}]}}}}]}}
    with pytest.raises(PolicyExportError, match="not JMESPath"):
        validate("kyverno", [kyv])
    with pytest.raises(PolicyExportError, match="periodic|schedule|role"):
        validate("custodian", [{"policies": [{"name": "x", "resource": "aws.ec2", "mode": {"type": "periodic"},
                                              "filters": [{}], "actions": ["stop"]}]}])


def test_cli_writes_atomically_and_bad_input_is_one_line(tmp_path):
    out = tmp_path / "artefacts"
    proc = _gpuplan("policy", "export", "--policy", str(SAMPLE), "--target", "kyverno", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (out / "gpuplan-kyverno.yaml").exists() and "kubectl apply -f" in proc.stdout
    no_idle = tmp_path / "policy.yaml"
    no_idle.write_text("required_tags: [team]\n")
    cases = [(("--policy", str(no_idle), "--target", "custodian", "--out", str(tmp_path / "c")), "idle_gpu"),
             (("--policy", str(SAMPLE), "--target", "terraform", "--out", str(tmp_path / "t")), "aws-scp"),
             (("--policy", str(tmp_path), "--target", "aws-scp", "--out", str(tmp_path / "inside")), "input")]
    for args, expect in cases:
        proc = _gpuplan("policy", "export", *args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
        assert expect in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "c").exists() and not (tmp_path / "t").exists()
