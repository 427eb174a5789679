"""Notifications that reach people: webhooks and e-mail, each open item sent once and again only when it worsens.

An *item* is one thing to tell people about: a fired budget alert, an anomaly, a guardrail violation. Each has a
source (``alerts``, ``anomalies``, ``check``, ``commitments``), a key (what it is about: a team and budget period,
a team x GPU type and kind, a check and its target), for anomalies the hours it covers, and a severity
(bigger = worse: the projected spend over the budget, the anomaly score, the USD at stake).

De-duplication. A state file (JSON) remembers, per source, the open items already sent and the severity they
were sent at. In a run, an item is sent when no open item of the same source and key is remembered (for
anomalies: none whose hours overlap it, so an anomaly whose start moves by an hour between runs is still the same
anomaly), or when its severity is at least :data:`WORSEN_RATIO` times the remembered one (it worsened); otherwise
it is not sent again. Remembered items of the source that the run no longer reports are closed (forgotten), so
the same problem coming back later is new again. An item whose delivery failed is not remembered: the next run
tries again. The state file is written atomically after the deliveries.

Channels. A webhook gets one HTTP POST per item: Slack-compatible (``{"text": ...}``, also read by Microsoft
Teams and Mattermost incoming webhooks) or a generic JSON body (:func:`json_body`). E-mail sends one message per
run listing the items, through the SMTP server named by environment variables (:func:`smtp_from_env`). Webhook
URLs carry secrets: messages name only their scheme and host. The SMTP password is never printed, and is refused
over an unencrypted connection to anything but this machine.

Units: severities as described above (ratios, scores, USD); times ISO 8601 UTC.
"""

from __future__ import annotations

import json
import os
import smtplib
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from usage.io import read_text, write_json_atomic
from usage.schema import UsageError

STATE_VERSION = 1
WORSEN_RATIO = 1.10
"""An open item is sent again when its severity reaches this multiple of the severity it was last sent at."""
FORMATS = ("slack", "json")
TIMEOUT_S = 10.0
ENV = ("GPUPLAN_SMTP_HOST", "GPUPLAN_SMTP_PORT", "GPUPLAN_SMTP_USER", "GPUPLAN_SMTP_PASSWORD", "GPUPLAN_SMTP_FROM",
       "GPUPLAN_SMTP_TO", "GPUPLAN_SMTP_TLS")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Item:
    """One thing to tell people about (see the module docstring)."""

    source: str
    key: str
    severity: float
    text: str
    start: str | None = None
    end: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Webhook:
    """A webhook URL (http or https) and the body format (``slack`` or ``json``)."""

    url: str
    format: str = "slack"

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"--notify {shown_url(self.url)} is not an http(s) URL "
                             "(fix: e.g. --notify https://hooks.slack.com/services/...)")
        if self.format not in FORMATS:
            raise ValueError(f"notify format {self.format!r} is not one of {', '.join(FORMATS)} "
                             "(fix: --notify-format slack or json)")

    @property
    def label(self) -> str:
        return f"webhook {shown_url(self.url)}"


@dataclass(frozen=True)
class Smtp:
    """SMTP settings (from :func:`smtp_from_env`); ``tls`` is ``starttls``, ``ssl`` or ``none``."""

    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: str = "starttls"

    @property
    def label(self) -> str:
        return f"e-mail via {self.host}:{self.port}"


@dataclass(frozen=True)
class Channels:
    webhooks: tuple[Webhook, ...] = ()
    smtp: Smtp | None = None

    @property
    def empty(self) -> bool:
        return not self.webhooks and self.smtp is None


@dataclass(frozen=True)
class Outcome:
    """What a run sent: ``sent`` (item, reason ``new`` or ``worse``), ``held`` (already sent, not worse), errors
    (one line per failed delivery)."""

    sent: tuple[tuple[Item, str], ...]
    held: tuple[Item, ...]
    errors: tuple[str, ...]

    def summary(self) -> str:
        new = sum(r == "new" for _, r in self.sent)
        return (f"notified {new} new and {len(self.sent) - new} worsened item(s); {len(self.held)} already sent"
                + (f"; {len(self.errors)} delivery error(s)" if self.errors else ""))


def shown_url(url: str) -> str:
    """A URL as printed: scheme and host only (webhook paths and queries are secrets)."""
    parts = urlsplit(str(url))
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme or '?'}://{host}{port}/..."


def smtp_from_env(env: Mapping[str, str] | None = None) -> Smtp:
    """SMTP settings from ``GPUPLAN_SMTP_HOST``, ``_PORT`` (default 587), ``_USER``, ``_PASSWORD``, ``_FROM``,
    ``_TO`` (comma-separated) and ``_TLS`` (``starttls``, ``ssl`` or ``none``; default ``ssl`` on port 465,
    ``starttls`` otherwise); a one-line error naming the variable to set."""
    env = os.environ if env is None else env
    host = env.get("GPUPLAN_SMTP_HOST", "").strip()
    if not host:
        raise ValueError("e-mail needs GPUPLAN_SMTP_HOST (fix: export GPUPLAN_SMTP_HOST=smtp.example.com and "
                         "GPUPLAN_SMTP_FROM, GPUPLAN_SMTP_TO)")
    port_text = env.get("GPUPLAN_SMTP_PORT", "587").strip() or "587"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"GPUPLAN_SMTP_PORT {port_text!r} is not a port number (fix: e.g. 587)")
    port = int(port_text)
    sender = env.get("GPUPLAN_SMTP_FROM", "").strip()
    to = tuple(a.strip() for a in env.get("GPUPLAN_SMTP_TO", "").split(",") if a.strip())
    if not sender or "@" not in sender:
        raise ValueError("e-mail needs GPUPLAN_SMTP_FROM, an address "
                         "(fix: export GPUPLAN_SMTP_FROM=gpuplan@example.com)")
    if not to or not all("@" in a for a in to):
        raise ValueError("e-mail needs GPUPLAN_SMTP_TO, comma-separated addresses "
                         "(fix: export GPUPLAN_SMTP_TO=finops@example.com)")
    tls = env.get("GPUPLAN_SMTP_TLS", "").strip().lower() or ("ssl" if port == 465 else "starttls")
    if tls not in ("starttls", "ssl", "none"):
        raise ValueError(f"GPUPLAN_SMTP_TLS {tls!r} is not starttls, ssl or none (fix: e.g. GPUPLAN_SMTP_TLS=starttls)")
    user = env.get("GPUPLAN_SMTP_USER", "").strip() or None
    password = env.get("GPUPLAN_SMTP_PASSWORD") or None
    if password and tls == "none" and host.lower() not in LOCAL_HOSTS:
        raise ValueError("GPUPLAN_SMTP_PASSWORD would be sent unencrypted (GPUPLAN_SMTP_TLS=none) to "
                         f"{host} (fix: GPUPLAN_SMTP_TLS=starttls or ssl)")
    return Smtp(host, port, sender, to, user, password, tls)


# ---------------------------------------------------------------------------------------------------------- state

def load_state(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The open items remembered per source (empty when the file does not exist yet)."""
    if not path.exists():
        return {}
    try:
        doc = json.loads(read_text(path))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(str(path), "not a gpuplan notification state file (not JSON)",
                         fix="pass the state file gpuplan wrote, or a new path") from None
    if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION or not isinstance(doc.get("open"), dict):
        raise UsageError(str(path), "not a gpuplan notification state file (version 1)",
                         fix="pass the state file gpuplan wrote, or a new path")
    return {str(k): [dict(e) for e in v if isinstance(e, dict)] for k, v in doc["open"].items() if isinstance(v, list)}


def _overlaps(entry: Mapping[str, Any], item: Item) -> bool:
    if item.start is None or entry.get("start") is None:
        return True
    return str(entry["start"]) < str(item.end) and str(item.start) < str(entry["end"])


def plan(items: Sequence[Item], source: str, remembered: Sequence[Mapping[str, Any]]
         ) -> tuple[list[tuple[Item, str]], list[Item], list[dict[str, Any] | None]]:
    """Decide per item: send as ``new``, send as ``worse``, or hold; with the remembered entry each item matched."""
    send, held, matched = [], [], []
    for item in items:
        entry = next((e for e in remembered if e.get("key") == item.key and _overlaps(e, item)), None)
        matched.append(entry)
        if entry is None:
            send.append((item, "new"))
        elif item.severity >= WORSEN_RATIO * float(entry.get("severity", 0.0)) and item.severity > 0:
            send.append((item, "worse"))
        else:
            held.append(item)
    return send, held, matched


def _entry(item: Item, severity: float, sent_at: str) -> dict[str, Any]:
    return {"key": item.key, "start": item.start, "end": item.end, "severity": severity, "sent_at": sent_at}


# ------------------------------------------------------------------------------------------------------ delivery

def slack_text(text: str) -> str:
    """Text as Slack shows it literally: ``&``, ``<`` and ``>`` escaped, so a team named ``<!channel>`` or
    ``<https://x|click>`` is not a mention or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(item: Item, reason: str) -> dict[str, Any]:
    tag = "" if reason == "new" else " (worse)"
    return {"text": slack_text(f"[gpuplan {item.source}]{tag} {item.text}")}


def json_body(item: Item, reason: str) -> dict[str, Any]:
    """The generic JSON body: ``source, reason, key, severity, start, end, message, data``."""
    return {"tool": "gpuplan", "source": item.source, "reason": reason, "key": item.key,
            "severity": item.severity, "start": item.start, "end": item.end, "message": item.text,
            "data": dict(item.data)}


def post(hook: Webhook, body: Mapping[str, Any]) -> None:
    """POST one JSON body; raises OSError naming the webhook by scheme and host only."""
    req = urllib.request.Request(hook.url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "gpuplan"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:   # noqa: S310 (http/https checked)
            resp.read()
    except urllib.error.HTTPError as exc:
        raise OSError(f"{hook.label} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OSError(f"{hook.label} could not be reached ({reason.__class__.__name__})") from None


def send_mail(smtp: Smtp, subject: str, body: str) -> None:
    """Send one plain-text message; raises OSError naming the server (never the password)."""
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = smtp.sender
    msg["To"] = ", ".join(smtp.to)
    msg.set_content(body)
    try:
        cls = smtplib.SMTP_SSL if smtp.tls == "ssl" else smtplib.SMTP
        with cls(smtp.host, smtp.port, timeout=TIMEOUT_S) as server:
            if smtp.tls == "starttls":
                server.starttls()
            if smtp.user:
                server.login(smtp.user, smtp.password or "")
            server.send_message(msg)
    except smtplib.SMTPAuthenticationError:
        raise OSError(f"{smtp.label}: login refused for GPUPLAN_SMTP_USER (fix: check the user and password)") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise OSError(f"{smtp.label} failed ({exc.__class__.__name__})") from None


def notify(items: Sequence[Item], source: str, channels: Channels, state_path: Path,
           now: pd.Timestamp | None = None) -> Outcome:
    """Send what is new or worse (module docstring), remember it in ``state_path`` and return what happened."""
    state = load_state(state_path)
    remembered = state.get(source, [])
    send, held, matched = plan(items, source, remembered)
    now_iso = (now or pd.Timestamp.now(tz="UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
    errors: list[str] = []
    failed: set[int] = set()
    for hook in channels.webhooks:
        for i, (item, reason) in enumerate(send):
            body = slack_body(item, reason) if hook.format == "slack" else json_body(item, reason)
            try:
                post(hook, body)
            except OSError as exc:
                errors.append(str(exc))
                failed.update(range(i, len(send)))   # the hook is down: the rest were not posted either
                break
    if channels.smtp is not None and send:
        lines = [f"- {'(worse) ' if r == 'worse' else ''}{it.text}" for it, r in send]
        subject = f"gpuplan {source}: {len(send)} item(s) need attention"
        try:
            send_mail(channels.smtp, subject, "\n".join(lines) + "\n")
        except OSError as exc:
            errors.append(str(exc))
            failed.update(range(len(send)))
    sent = [(it, r) for i, (it, r) in enumerate(send) if i not in failed]
    keep: list[dict[str, Any]] = []
    sent_keys = {id(it) for it, _ in sent}
    for item, entry in zip(items, matched, strict=True):
        if id(item) in sent_keys:
            keep.append(_entry(item, item.severity, now_iso))
        elif entry is not None:   # held (or failed re-send): remember the severity it was last sent at
            keep.append({**entry, "start": item.start, "end": item.end})
    state[source] = keep
    write_json_atomic({"version": STATE_VERSION, "open": state}, state_path)
    return Outcome(tuple(sent), tuple(held), tuple(errors))


# ------------------------------------------------------------------------------------------- items per source

def anomaly_items(table: pd.DataFrame) -> list[Item]:
    from operate.anomalies import describe

    out = []
    for _, r in table.iterrows():
        start = pd.Timestamp(r["start"]).strftime("%Y-%m-%dT%H:%M:%SZ")
        end = pd.Timestamp(r["end"]).strftime("%Y-%m-%dT%H:%M:%SZ")
        data = {"team": r["team"], "gpu_type": r["gpu_type"], "kind": r["kind"], "start": start, "end": end,
                "expected_gpu_hours": float(r["expected_gpu_hours"]), "actual_gpu_hours": float(r["actual_gpu_hours"]),
                "impact_usd": float(r["impact_usd"]), "score": float(r["score"])}
        out.append(Item("anomalies", f"{r['team']}|{r['gpu_type']}|{r['kind']}", float(r["score"]), describe(r),
                        start, end, data))
    return out


def alert_items(alerts: Sequence[Any]) -> list[Item]:
    """Fired budget alerts; severity = the larger of projected and actual spend over the budget."""
    out = []
    for a in alerts:
        if not a.fired:
            continue
        spend = max(a.projected_usd or 0.0, a.actual_to_date_usd or 0.0)
        severity = spend / a.budget_usd if a.budget_usd > 0 else spend
        out.append(Item("alerts", f"{a.team}|{a.project or ''}|{a.period_start}", float(severity), a.message,
                        data={"team": a.team, "project": a.project, "period_start": a.period_start,
                              "period_end": a.period_end, "status": a.status, "budget_usd": a.budget_usd,
                              "projected_usd": a.projected_usd, "p_overspend": a.p_overspend}))
    return out


def violation_items(violations: pd.DataFrame, source: str = "check") -> list[Item]:
    """Guardrail violations; severity = USD at stake (GPU-hours when no USD)."""
    out = []
    for _, v in violations.iterrows():
        usd = float(v.get("usd", 0.0) or 0.0)
        severity = usd if usd > 0 else float(v.get("gpu_hours", 0.0) or 0.0)
        out.append(Item(source, f"{v['check']}|{v['target']}|{v['scope']}", severity,
                        f"{v['check']} on {v['target']} {v['scope']}: {v['message']}",
                        data={k: (float(x) if isinstance(x, int | float) else str(x)) for k, x in v.items()}))
    return out
