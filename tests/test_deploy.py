"""The deployable unit (issue 18 item 4): deploy/k8s.yaml and deploy/gpuplan.service, checked as files and run.

Structure: the Kubernetes manifest parses into a Deployment and a Service whose probes hit Streamlit's
``/_stcore/health`` on the container port, runs non-root, reads GPUPLAN_STORE and the sign-in settings from
Secrets and holds no secret itself; the systemd unit passes ``systemd-analyze verify`` and runs the same command.
Behaviour: the manifest's own command line (port swapped for a free one), started in a folder laid out as the pod
mounts it (``.streamlit/secrets.toml`` from the Secret), answers the manifest's probe with 200.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s.yaml"
UNIT = ROOT / "deploy" / "gpuplan.service"
COMMAND = ["gpuplan", "app", "--host", "0.0.0.0", "--port", "8501"]
SECRET_TEXT = re.compile(r"(cookie_secret|client_secret|password)\s*[=:]|postgresql://[^:@\s]+:(?!\.\.\.@)[^@\s]+@"
                         r"|BEGIN [A-Z ]*PRIVATE KEY", re.IGNORECASE)
"""A secret written out: a sign-in secret or password set to a value, a database URL with a real password."""


def manifest() -> tuple[dict, dict]:
    docs = [d for d in yaml.safe_load_all(K8S.read_text()) if d]
    assert [(d["apiVersion"], d["kind"]) for d in docs] == [("apps/v1", "Deployment"), ("v1", "Service")]
    return docs[0], docs[1]


def container(deployment: dict) -> dict:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def unit_settings() -> dict[str, list[str]]:
    """``Key=value`` lines of the unit (keys may repeat), comments and section headers left out."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_k8s_probes_hit_the_health_endpoint_on_the_container_port() -> None:
    deployment, service = manifest()
    c = container(deployment)
    assert c["args"] == COMMAND
    (port,) = c["ports"]
    assert port["containerPort"] == 8501
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/_stcore/health", "port": 8501}, probe
    assert c["livenessProbe"]["initialDelaySeconds"] >= c["readinessProbe"]["initialDelaySeconds"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels and service["spec"]["selector"] == labels
    (sport,) = service["spec"]["ports"]
    assert sport["targetPort"] in (port["name"], port["containerPort"])


def test_k8s_runs_non_root_and_reads_secrets_only_from_secrets() -> None:
    deployment, _ = manifest()
    pod = deployment["spec"]["template"]["spec"]
    c = container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    env = {e["name"]: e for e in c["env"]}
    assert env["GPUPLAN_STORE"] == {"name": "GPUPLAN_STORE",
                                    "valueFrom": {"secretKeyRef": {"name": "gpuplan-store", "key": "url"}}}
    assert not any(n.startswith("GPUPLAN_AUTH_") and "value" in e for n, e in env.items())
    # the auth Secret is mounted as the working folder's .streamlit/secrets.toml, read-only, not world-readable
    volumes = {v["name"]: v for v in pod["volumes"]}
    (mount,) = [m for m in c["volumeMounts"] if "secret" in volumes[m["name"]]]
    assert mount["mountPath"] == f"{c['workingDir']}/.streamlit" and mount["readOnly"] is True
    secret = volumes[mount["name"]]["secret"]
    assert secret["items"] == [{"key": "secrets.toml", "path": "secrets.toml"}]
    assert secret["defaultMode"] & 0o007 == 0
    # nothing secret inline: no Secret object, no secret-looking text anywhere (comments included)
    assert "kind: Secret" not in K8S.read_text()
    assert SECRET_TEXT.findall(K8S.read_text()) == []


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (Debian package systemd)")
def test_systemd_unit_verifies_and_runs_the_same_command(tmp_path: Path) -> None:
    settings = unit_settings()
    (exec_start,) = settings["ExecStart"]
    binary, *args = shlex.split(exec_start)
    assert [Path(binary).name, *args] == COMMAND
    assert settings["User"] != ["root"] and settings["KillSignal"] == ["SIGTERM"]
    assert "2" in settings["RestartPreventExitStatus"][0].split()  # a settings mistake is not retried
    assert SECRET_TEXT.findall(UNIT.read_text()) == []
    assert not any(v.startswith("GPUPLAN_AUTH_") for v in settings.get("Environment", []))
    # systemd's own check, with ExecStart pointing at this environment's gpuplan (the unit's path is an install's)
    gpuplan = Path(sys.executable).with_name("gpuplan")
    if not gpuplan.exists():
        pytest.skip(f"no gpuplan script next to {sys.executable}")
    copy = tmp_path / "gpuplan.service"
    copy.write_text(UNIT.read_text().replace(binary, str(gpuplan)))
    res = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert res.returncode == 0 and res.stderr.strip() == "", res.stderr


def test_the_manifest_command_starts_and_its_probe_answers_200(tmp_path: Path) -> None:
    deployment, _ = manifest()
    c = container(deployment)
    probe = c["readinessProbe"]["httpGet"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [str(port) if a == str(probe["port"]) else a for a in c["args"][1:]]  # the same command on a free port
    # the folder as the pod mounts it: <workingDir>/.streamlit/secrets.toml from the gpuplan-auth Secret
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(
        f'[auth]\nredirect_uri = "http://127.0.0.1:{port}/oauth2callback"\ncookie_secret = "{"k" * 40}"\n'
        'client_id = "gpuplan"\nclient_secret = "x"\n'
        'server_metadata_url = "http://127.0.0.1:9/.well-known/openid-configuration"\n')  # never the internet
    (tmp_path / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUPLAN_AUTH_")}
    env |= {"PYTHONPATH": str(ROOT), "HOME": str(tmp_path / "home"), "GPUPLAN_STORE": str(tmp_path / "s.duckdb"),
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    log = tmp_path / "app.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", *args], cwd=tmp_path, env=env, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline, status = time.monotonic() + 90, None
            while status != 200:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{probe['path']}", timeout=2) as r:
                        status, body = r.status, r.read()
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
                    time.sleep(0.3)
            assert body == b"ok"
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
    path = tmp_path / ".streamlit" / "secrets.toml"
    assert f"GPU Cost Planner on http://0.0.0.0:{port} (sign-in on, settings from {path})" in log.read_text()


def test_readme_deploy_section_is_ten_lines_or_fewer_and_names_the_files() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Deploy for your organisation\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.strip()]
    assert 1 + len(lines) <= 10, len(lines)  # the heading included
    for needed in ("--host 0.0.0.0", "deploy/gpuplan.service", "deploy/k8s.yaml", "/_stcore/health",
                   ".streamlit/secrets.toml", "GPUPLAN_AUTH_", "cookie_secret"):
        assert needed in section, needed
