"""gpuplan watch: one cron-friendly run from watch.yaml, dated run records, notifications de-duplicated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from operate.watch import load_watch
from tests.test_operate_notify import Hook
from usage.schema import UsageError

ROOT = Path(__file__).resolve().parents[1]
OPS = ROOT / "data_samples" / "operate"


def watch(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from app.cli import main; main()", "watch", "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=900, env={**os.environ, **env})


def test_watch_runs_once_writes_dated_records_and_notifies_each_item_once(tmp_path):
    hook = Hook()
    try:
        config = tmp_path / "watch.yaml"
        config.write_text(yaml.safe_dump({
            "usage": str(ROOT / "data_samples" / "synthetic_org.parquet"), "budgets": str(OPS / "budgets.csv"),
            "policy": str(OPS / "policy.yaml"), "plan": str(OPS / "plan_2025-11.json"),
            "anomalies": {"lookback_days": 28, "threshold": 1.0}, "alerts": {"threshold": 0.5, "paths": 50},
            "channels": {"webhooks": [{"url_env": "TEST_HOOK_URL", "format": "json"}]},
            "state": "state/notify.json", "runs_dir": "runs"}))
        runs = [watch(config, {"TEST_HOOK_URL": hook.url}) for _ in range(2)]
        assert [r.returncode for r in runs] == [1, 1], runs[0].stderr
        records = sorted((tmp_path / "runs").glob("run-*.json"))
        assert len(records) == 2
        first, second = (json.loads(p.read_text()) for p in records)
        assert first["schema"] == "gpuplan.watch-run/v1" and first["as_of"] == "2025-12-01T00:00:00Z"
        opened = {k: v["open"] for k, v in first["sections"].items()}
        assert set(opened) == {"anomalies", "alerts", "check"} and all(n >= 1 for n in opened.values())
        assert first["open"] == sum(opened.values())
        assert len(hook.bodies) == first["open"]   # one message per open item, none on the second run
        assert {k: v["sent"] for k, v in second["notifications"].items()} == {k: 0 for k in opened}
        assert {k: v["held"] for k, v in second["notifications"].items()} == opened
        assert {b["source"] for b in hook.bodies} == {"anomalies", "alerts", "check"}
        assert "SECRET" not in config.read_text() + runs[0].stdout + records[0].read_text()
    finally:
        hook.close()


def test_watch_config_errors_are_one_line(tmp_path):
    config = tmp_path / "watch.yaml"
    config.write_text("usage: missing.parquet\nchannels:\n  webhooks:\n    - url_env: NOT_SET_ANYWHERE\n")
    r = watch(config, {})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error:") and "watch.yaml" in line and "NOT_SET_ANYWHERE is not set" in line
    config.write_text("usage: missing.parquet\nthreshold: 2\n")
    r = watch(config, {})
    assert r.returncode == 2 and "unknown setting 'threshold'" in r.stderr
    config.write_text("usage: missing.parquet\nanomalies: {min_impact_usd: -5}\n")
    r = watch(config, {})
    assert r.returncode == 2 and "anomalies.min_impact_usd must be 0 or more" in r.stderr
    config.write_text("usage: missing.parquet\nanomalies: {min_impact_usd: 250}\n")
    assert load_watch(config).anomaly_min_impact_usd == 250.0
    config.write_text("usage: missing.parquet\n")
    assert load_watch(config).usage == tmp_path / "missing.parquet"
    assert load_watch(config).anomaly_min_impact_usd == 0.0
    r = watch(config, {})
    assert r.returncode == 2 and "missing.parquet" in r.stderr and "file not found" in r.stderr
    (record,) = (tmp_path / "runs").glob("run-*.json")
    doc = json.loads(record.read_text())
    assert doc["exit_code"] == 2 and "file not found" in doc["errors"][0]


def test_the_shipped_cronjob_manifest_runs_watch_with_a_config_it_accepts(tmp_path):
    cron, config_map = yaml.safe_load_all((ROOT / "deploy" / "gpuplan-watch-cronjob.yaml").read_text())
    assert (cron["apiVersion"], cron["kind"]) == ("batch/v1", "CronJob")
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid" and len(spec["schedule"].split()) == 5
    (container,) = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["gpuplan", "watch", "--config", "/config/watch.yaml"]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/config", "/exports", "/state"}
    secret_env = {e["name"] for e in container["env"] if "valueFrom" in e}
    assert {"SLACK_WEBHOOK_URL", "GPUPLAN_SMTP_PASSWORD"} <= secret_env
    watch_yaml = tmp_path / "watch.yaml"
    watch_yaml.write_text(config_map["data"]["watch.yaml"])
    cfg = load_watch(watch_yaml, env={"SLACK_WEBHOOK_URL": "https://hooks.example.com/x"})
    assert cfg.usage == Path("/exports/usage.parquet") and cfg.budgets == tmp_path / "budgets.csv"
    assert cfg.webhooks == (("https://hooks.example.com/x", "slack"),) and cfg.email
    assert cfg.state == Path("/state/notify-state.json") and cfg.runs_dir == Path("/state/runs")


def test_watch_with_the_planned_events_expects_the_end_of_a_planned_run(tmp_path):
    """watch.yaml's `events` file reaches the anomalies: a run that ends in the window is an anomaly without it
    and expected with it (the record says how many events were read)."""
    import pandas as pd

    from operate.costing import on_demand_rates
    from operate.watch import run_watch
    from optimizer.catalog import load_catalog
    from usage import schema as S

    usage = S.validate_usage(pd.read_parquet(ROOT / "data_samples" / "synthetic_org.parquet"))[0]
    part = usage[usage[S.TEAM].isin(["speech", "fraud-ml"]) & (usage[S.TIMESTAMP] >= "2025-08-01")].copy()
    run = (part[S.TEAM] == "fraud-ml") & part[S.TIMESTAMP].between("2025-10-20", "2025-11-19 23:00")
    part.loc[run, S.GPUS] += 12.0
    (tmp_path / "planned.yaml").write_text("events:\n  - {team: fraud-ml, gpu_type: NVIDIA A10G, kind: add, gpus: 12,"
                                           " start: 2025-10-20, end: 2025-11-20}\n")
    cat = load_catalog()
    rates = on_demand_rates(cat, set(part[S.GPU_TYPE]))
    opened = {}
    for name, extra in (("plain", {}), ("planned", {"events": "planned.yaml"})):
        config = tmp_path / f"watch-{name}.yaml"
        config.write_text(yaml.safe_dump({"usage": "usage.parquet", "runs_dir": f"runs-{name}", **extra}))
        cfg = load_watch(config)
        assert cfg.events == (tmp_path / "planned.yaml" if extra else None)
        rec = run_watch(cfg, part, rates, instance_gpus=cat.instance_gpus()).record
        opened[name] = [a for a in rec["sections"]["anomalies"]["anomalies"] if a["team"] == "fraud-ml"]
        assert rec.get("events", {}).get("count") == (1 if extra else None)
    assert any(a["kind"] in ("level_shift", "drop") for a in opened["plain"]) and opened["planned"] == []
    (tmp_path / "planned.yaml").write_text("events:\n  - {team: fraud-ml, kind: add, gpus: 12, start: 2025-10-20}\n")
    with pytest.raises(UsageError, match="planned.yaml, item 1, field 'gpu_type': missing gpu_type"):
        run_watch(cfg, part, rates, instance_gpus=cat.instance_gpus())   # a bad events file: one line
