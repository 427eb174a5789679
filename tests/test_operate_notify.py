"""operate/notify.py: webhooks and e-mail against servers started here (never the internet), de-duplication."""

from __future__ import annotations

import json
import socketserver
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.anomaly_detection import load
from operate.notify import Channels, Item, Smtp, Webhook, load_state, notify, smtp_from_env
from usage import schema as S

ROOT = Path(__file__).resolve().parents[1]


class Hook:
    """A local HTTP server recording every POSTed JSON body; ``status`` is what it answers."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                length = int(self.headers["Content-Length"])
                hook.bodies.append(json.loads(self.rfile.read(length)))
                hook.paths.append(self.path)
                self.send_response(hook.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/SECRET"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


class SmtpSink:
    """A local SMTP server speaking the few commands smtplib uses (EHLO/HELO, MAIL, RCPT, DATA, QUIT, RSET, NOOP)."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write((line + "\r\n").encode())

            def handle(self):
                self.reply("220 localhost test SMTP")
                mail = {"rcpt": []}
                while True:
                    raw = self.rfile.readline()
                    if not raw:
                        return
                    cmd = raw.decode().strip()
                    verb = cmd.split(" ", 1)[0].upper()
                    if verb == "EHLO":
                        self.reply("250-localhost")
                        self.reply("250 8BITMIME")
                    elif verb in ("HELO", "RSET", "NOOP"):
                        self.reply("250 OK")
                    elif verb == "MAIL":
                        mail["from"] = cmd
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        mail["rcpt"].append(cmd)
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 end with .")
                        lines = []
                        while (line := self.rfile.readline().decode()) not in (".\r\n", ""):
                            lines.append(line)
                        mail["data"] = "".join(lines)
                        sink.messages.append(mail)
                        mail = {"rcpt": []}
                        self.reply("250 OK")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.port = self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def items(score: float = 2.0) -> list[Item]:
    return [Item("anomalies", "a|NVIDIA A100|spike", score, "a / NVIDIA A100: spike", "2025-01-01T10:00:00Z",
                 "2025-01-01T14:00:00Z", {"impact_usd": 120.0}),
            Item("anomalies", "b|NVIDIA L4|level_shift", 3.0, "b / NVIDIA L4: level shift", "2025-01-02T00:00:00Z",
                 "2025-01-05T00:00:00Z")]


def test_each_open_item_is_sent_once_then_only_when_worse_then_new_after_it_closed(hook, tmp_path):
    state = tmp_path / "state.json"
    channels = Channels((Webhook(hook.url, "slack"),))
    first = notify(items(), "anomalies", channels, state)
    assert [r for _, r in first.sent] == ["new", "new"] and len(hook.bodies) == 2
    assert hook.bodies[0] == {"text": "[gpuplan anomalies] a / NVIDIA A100: spike"}
    second = notify(items(), "anomalies", channels, state)   # same items, same severity: nothing sent
    assert not second.sent and len(second.held) == 2 and len(hook.bodies) == 2
    # the anomaly's start moved by an hour but it overlaps the one sent: still the same one
    moved = [Item(i.source, i.key, i.severity, i.text, "2025-01-01T11:00:00Z", i.end) for i in items()[:1]]
    assert not notify(moved + items()[1:], "anomalies", channels, state).sent
    assert not notify(items(2.19) , "anomalies", channels, state).sent   # < 1.1 x 2.0: not worse enough
    worse = notify(items(2.2), "anomalies", channels, state)
    assert [(i.key, r) for i, r in worse.sent] == [("a|NVIDIA A100|spike", "worse")]
    assert hook.bodies[-1]["text"].startswith("[gpuplan anomalies] (worse) ")
    assert len(hook.bodies) == 3
    notify(items()[1:], "anomalies", channels, state)   # the spike is no longer reported: closed
    assert [e["key"] for e in load_state(state)["anomalies"]] == ["b|NVIDIA L4|level_shift"]
    again = notify(items(), "anomalies", channels, state)
    assert [(i.key, r) for i, r in again.sent] == [("a|NVIDIA A100|spike", "new")] and len(hook.bodies) == 4


def test_failed_delivery_is_retried_on_the_next_run_and_the_url_secret_is_not_printed(hook, tmp_path):
    state = tmp_path / "state.json"
    channels = Channels((Webhook(hook.url, "json"),))
    hook.status = 500
    res = notify(items(), "anomalies", channels, state)
    assert not res.sent and res.errors == (f"webhook http://127.0.0.1:{hook.server.server_address[1]}/... answered "
                                           "HTTP 500",)
    assert "SECRET" not in res.errors[0]
    assert load_state(state)["anomalies"] == []
    hook.status = 200
    res = notify(items(), "anomalies", channels, state)
    assert len(res.sent) == 2
    body = hook.bodies[-2]
    assert body["tool"] == "gpuplan" and body["reason"] == "new" and body["key"] == "a|NVIDIA A100|spike"
    assert body["data"] == {"impact_usd": 120.0} and body["severity"] == 2.0


def test_email_through_a_local_smtp_server(tmp_path):
    sink = SmtpSink()
    try:
        smtp = smtp_from_env({"GPUPLAN_SMTP_HOST": "127.0.0.1", "GPUPLAN_SMTP_PORT": str(sink.port),
                              "GPUPLAN_SMTP_FROM": "gpuplan@example.com",
                              "GPUPLAN_SMTP_TO": "finops@example.com, lead@example.com", "GPUPLAN_SMTP_TLS": "none"})
        state = tmp_path / "state.json"
        res = notify(items(), "anomalies", Channels(smtp=smtp), state)
        assert len(res.sent) == 2 and not res.errors
        assert len(sink.messages) == 1   # one message per run, listing the items
        msg = sink.messages[0]
        assert [r.split(":", 1)[1] for r in msg["rcpt"]] == ["<finops@example.com>", "<lead@example.com>"]
        assert "Subject: gpuplan anomalies: 2 item(s) need attention" in msg["data"]
        assert "- a / NVIDIA A100: spike" in msg["data"] and "- b / NVIDIA L4: level shift" in msg["data"]
        notify(items(), "anomalies", Channels(smtp=smtp), state)
        assert len(sink.messages) == 1
    finally:
        sink.close()


def test_smtp_settings_are_checked_and_the_password_never_shown():
    with pytest.raises(ValueError, match="GPUPLAN_SMTP_HOST"):
        smtp_from_env({})
    base = {"GPUPLAN_SMTP_HOST": "smtp.example.com", "GPUPLAN_SMTP_FROM": "a@example.com",
            "GPUPLAN_SMTP_TO": "b@example.com"}
    assert smtp_from_env(base).tls == "starttls" and smtp_from_env(base).port == 587
    assert smtp_from_env({**base, "GPUPLAN_SMTP_PORT": "465"}).tls == "ssl"
    with pytest.raises(ValueError, match="GPUPLAN_SMTP_PORT 'x'"):
        smtp_from_env({**base, "GPUPLAN_SMTP_PORT": "x"})
    with pytest.raises(ValueError, match="GPUPLAN_SMTP_TO") as exc:
        smtp_from_env({**base, "GPUPLAN_SMTP_TO": "nobody"})
    secret = {**base, "GPUPLAN_SMTP_PASSWORD": "hunter2", "GPUPLAN_SMTP_USER": "u", "GPUPLAN_SMTP_TLS": "none"}
    with pytest.raises(ValueError, match="unencrypted") as exc:
        smtp_from_env(secret)
    assert "hunter2" not in str(exc.value)
    assert "hunter2" not in repr(smtp_from_env({**secret, "GPUPLAN_SMTP_TLS": "starttls"}))
    assert isinstance(smtp_from_env({**secret, "GPUPLAN_SMTP_HOST": "localhost"}), Smtp)


def test_slack_text_cannot_mention_or_link(hook, tmp_path):
    item = Item("check", "k", 1.0, "team <!channel> & <https://evil.example|click>: untagged")
    notify([item], "check", Channels((Webhook(hook.url, "slack"),)), tmp_path / "s.json")
    assert hook.bodies == [{"text": "[gpuplan check] team &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;: "
                                    "untagged"}]


def test_bad_state_file_and_bad_url_are_one_line_errors(tmp_path):
    bad = tmp_path / "state.json"
    bad.write_text("{not json")
    with pytest.raises(S.UsageError, match="state.json.*not JSON"):
        load_state(bad)
    with pytest.raises(ValueError, match="not an http"):
        Webhook("file:///etc/passwd")
    with pytest.raises(ValueError, match="slack or json"):
        Webhook("https://example.com/x", "xml")


def test_cli_webhook_gets_exactly_one_message_per_new_anomaly_across_two_runs(hook, tmp_path):
    usage = load()
    part = usage[(usage[S.TEAM].isin(["speech", "fraud-ml"])) & (usage[S.TIMESTAMP] >= "2025-09-01")].copy()
    spike = (part[S.TEAM] == "fraud-ml") & part[S.TIMESTAMP].between("2025-11-20 10:00", "2025-11-20 13:00")
    part.loc[spike, S.GPUS] += 30.0
    path = tmp_path / "usage.csv"
    part.assign(timestamp=S.format_timestamp(part[S.TIMESTAMP])).to_csv(path, index=False)
    state = tmp_path / "notify.json"
    args = ["anomalies", "--usage", str(path), "--out", str(tmp_path / "a.csv"), "--notify", hook.url,
            "--notify-format", "json", "--notify-state", str(state)]
    runs = [subprocess.run([sys.executable, "-c", "from app.cli import main; main()", *args], capture_output=True,
                           text=True, cwd=ROOT, timeout=600) for _ in range(2)]
    assert [r.returncode for r in runs] == [1, 1], runs[0].stderr
    table = pd.read_csv(tmp_path / "a.csv")
    assert len(table) >= 1
    assert len(hook.bodies) == len(table)   # one per anomaly, none on the second run
    keys = sorted(b["key"] for b in hook.bodies)
    assert keys == sorted(f"{r.team}|{r.gpu_type}|{r.kind}" for r in table.itertuples())
    assert "fraud-ml|NVIDIA A10G|spike" in keys
    assert f"notified {len(table)} new and 0 worsened item(s); 0 already sent" in runs[0].stdout
    assert f"notified 0 new and 0 worsened item(s); {len(table)} already sent" in runs[1].stdout
    assert "SECRET" not in runs[0].stdout + runs[0].stderr


def test_check_and_alerts_notify_once(hook, tmp_path):
    from typer.testing import CliRunner

    from app.cli import app

    usage = str(ROOT / "data_samples" / "synthetic_org.parquet")
    ops = ROOT / "data_samples" / "operate"
    state = tmp_path / "state.json"
    args = ["check", "--usage", usage, "--policy", str(ops / "policy.yaml"), "--plan", str(ops / "plan_2025-11.json"),
            "--out", str(tmp_path / "v.csv"), "--notify", hook.url, "--notify-state", str(state)]
    runner = CliRunner()
    for _ in range(2):
        r = runner.invoke(app, args)
        assert r.exit_code == 1, r.output
    violations = pd.read_csv(tmp_path / "v.csv")
    assert len(hook.bodies) == len(violations) >= 2   # the second run sent nothing
    assert any("max_commitment" in b["text"] for b in hook.bodies)
    first = len(hook.bodies)
    r = runner.invoke(app, ["alerts", "--usage", usage, "--budgets", str(ops / "budgets.csv"), "--out",
                            str(tmp_path / "alerts.json"), "--paths", "50", "--notify", hook.url, "--notify-state",
                            str(state)])
    assert r.exit_code == 1, r.output
    fired = [a for a in json.loads((tmp_path / "alerts.json").read_text())["alerts"] if a["fired"]]
    assert len(hook.bodies) - first == len(fired) >= 1
    assert any(b["text"].startswith("[gpuplan alerts] multimodal is projected") for b in hook.bodies[first:])
    assert set(load_state(state)) == {"check", "alerts"}   # each source keeps its own open items
