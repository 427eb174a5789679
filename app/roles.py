"""Roles and per-team views: who sees which teams' rows, and who may save.

A small YAML roles file (named by ``$GPUPLAN_ROLES``, default ``.streamlit/roles.yaml``; example in
``deploy/roles.example.yaml``) maps signed-in users (e-mail, case-insensitive) and identity-provider groups to a role:

- ``finance``: every team; read-only (saving plans and budgets is the platform team's, as issue 18 lists it);
- ``platform``: every team; saves and deletes scenarios, plans and budgets;
- ``leadership``: every team; read-only (no save or delete buttons);
- ``engineer``: only the listed teams' rows (usage, forecast, budgets, chargeback, idle cost, unit costs,
  guardrail findings); organisation totals (one number per metric, computed on all teams) stay visible and are
  the same number for every role.

A user's own entry wins over their groups; several matching groups give the widest access (platform, then finance,
then leadership; engineers' teams are united). A signed-in user the file does not name gets no data, never
everything; with sign-in off (local use) the app is the local planner with full access (``LOCAL``).

Everything here is pure (no streamlit import at module level): :func:`current_access` reads the identity through
:func:`app.auth.current_identity`, imported when called. Units: none (names and sets of team names).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from usage.schema import UsageError

ROLES_ENV = "GPUPLAN_ROLES"
DEFAULT_ROLES_PATH = ".streamlit/roles.yaml"
FINANCE, PLATFORM, LEADERSHIP, ENGINEER = "finance", "platform", "leadership", "engineer"
ROLES = (FINANCE, PLATFORM, LEADERSHIP, ENGINEER)
NO_ACCESS = "none"
"""The role of a signed-in user the roles file does not name (or when the file is missing or wrong): no data."""
WIDEST_FIRST = (PLATFORM, FINANCE, LEADERSHIP, ENGINEER)
SAVERS = frozenset({PLATFORM})
"""Roles that may save or delete scenarios, plans and budgets."""
EXAMPLE = "deploy/roles.example.yaml"


@dataclass(frozen=True)
class Access:
    """What one session may see and do.

    Attributes:
        user: the signed-in e-mail (``local`` with sign-in off).
        role: one of :data:`ROLES`, or :data:`NO_ACCESS`.
        teams: the teams whose rows are shown; None = all teams; empty = none.
    """

    user: str
    role: str
    teams: frozenset[str] | None


LOCAL = Access("local", PLATFORM, None)
"""Sign-in off (local use): full access, as the planner always had."""


@dataclass(frozen=True)
class Grant:
    """One roles-file entry: a role and, for engineers, their teams."""

    role: str
    teams: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Roles:
    """A parsed roles file: e-mail (lower case) -> grant, group -> grant."""

    users: Mapping[str, Grant] = field(default_factory=dict)
    groups: Mapping[str, Grant] = field(default_factory=dict)
    source: str = ""


def roles_path() -> Path:
    """The roles file: ``$GPUPLAN_ROLES`` or ``.streamlit/roles.yaml`` (relative to the working directory)."""
    return Path(os.environ.get(ROLES_ENV) or DEFAULT_ROLES_PATH)


def _key_lines(node: Any, prefix: str = "") -> dict[str, int]:
    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            path = f"{prefix}{k.value}"
            out.setdefault(path, k.start_mark.line + 1)
            out.update(_key_lines(v, path + "."))
    return out


def load_roles(path: str | Path) -> Roles:
    """Read and check a roles file; every mistake is one :class:`UsageError` line naming file, line, key and fix.

    Format (YAML, plain data only, read with ``yaml.safe_load``)::

        users:
          ana@example.com: finance
          raj@example.com: {role: engineer, teams: [llm-pretrain, llm-finetune]}
        groups:
          gpu-platform: platform
          speech-team: {role: engineer, teams: [speech]}
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise UsageError(source, "roles file not found", fix=f"create it (example: {EXAMPLE}) or set {ROLES_ENV}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(source, f"cannot read the roles file ({type(exc).__name__})",
                         fix="save it as UTF-8 text readable by the app") from None
    try:
        doc = yaml.safe_load(text)
        lines = _key_lines(yaml.compose(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = [f"line {mark.line + 1}"] if mark is not None else []
        raise UsageError(source, "not valid YAML", fix="check indentation and quoting",
                         where=where) from None

    def err(key: str, message: str, fix: str) -> UsageError:
        line = lines.get(key)
        return UsageError(source, message, fix=fix, where=([f"line {line}"] if line else []) + [f"key '{key}'"])

    if not isinstance(doc, dict) or not doc:
        raise UsageError(source, "expected a mapping with 'users' and/or 'groups'",
                         fix=f"see {EXAMPLE} for the format")
    for key in doc:
        if key not in ("users", "groups"):
            raise err(str(key), f"unknown section '{key}'", "use 'users' (e-mail: role) and 'groups' (group: role)")

    def grant(key: str, value: Any) -> Grant:
        if isinstance(value, str):
            value = {"role": value}
        if not isinstance(value, dict):
            raise err(key, "an entry must be a role name or a mapping with 'role' (and 'teams' for engineers)",
                      "write e.g. 'finance' or {role: engineer, teams: [speech]}")
        for sub in value:
            if sub not in ("role", "teams"):
                raise err(f"{key}.{sub}", f"unknown key '{sub}'", "use 'role' and, for engineers, 'teams'")
        role = value.get("role")
        if role not in ROLES:
            raise err(key, f"unknown role {role!r}", f"use one of {', '.join(ROLES)}")
        teams = value.get("teams")
        if role != ENGINEER:
            if teams is not None:
                raise err(f"{key}.teams", f"role '{role}' sees every team: 'teams' is only for engineers",
                          "remove 'teams' or make the role engineer")
            return Grant(role)
        if not isinstance(teams, list) or not teams or not all(isinstance(t, str) and t.strip() for t in teams):
            raise err(f"{key}.teams" if teams is not None else key, "an engineer entry needs a list of its teams",
                      "write e.g. {role: engineer, teams: [speech, llm-finetune]}")
        return Grant(ENGINEER, frozenset(t.strip() for t in teams))

    sections: dict[str, dict[str, Grant]] = {}
    for section in ("users", "groups"):
        entries = doc.get(section) or {}
        if not isinstance(entries, dict):
            raise err(section, f"'{section}' must be a mapping of {'e-mail' if section == 'users' else 'group'}: role",
                      f"indent its entries below '{section}:' (see {EXAMPLE})")
        out: dict[str, Grant] = {}
        for name, value in entries.items():
            key = f"{section}.{name}"
            if not isinstance(name, str) or not name.strip():
                raise err(key, f"'{name}' is not a name", "write an e-mail (users) or a group name (groups)")
            norm = name.strip().lower() if section == "users" else name.strip()
            if section == "users" and "@" not in norm:
                raise err(key, f"'{name}' is not an e-mail address", "list users by the e-mail they sign in with")
            if norm in out:
                raise err(key, f"'{name}' is listed twice", "keep one entry per user or group")
            out[norm] = grant(key, value)
        sections[section] = out
    return Roles(sections["users"], sections["groups"], source)


def access_for(identity: Any, roles: Roles) -> Access:
    """The access of ``identity`` (an :class:`app.auth.Identity`, or None = sign-in off -> :data:`LOCAL`)."""
    if identity is None:
        return LOCAL
    email = str(identity.email or "").strip().lower()
    user = email or "unknown"
    grants = [roles.users[email]] if email in roles.users else [
        roles.groups[g] for g in identity.groups if g in roles.groups]
    if not grants:
        return Access(user, NO_ACCESS, frozenset())
    for role in WIDEST_FIRST[:-1]:
        if any(g.role == role for g in grants):
            return Access(user, role, None)
    return Access(user, ENGINEER, frozenset().union(*(g.teams for g in grants)))


def resolve(identity: Any, path: str | Path | None = None) -> tuple[Access, str | None]:
    """``(access, problem)``: the access of ``identity`` under the roles file, and the one-line reason when the
    user gets no data (not named in the file, or the file missing or wrong; then nobody gets data)."""
    if identity is None:
        return LOCAL, None
    user = str(identity.email or "").strip().lower() or "unknown"
    try:
        roles = load_roles(path if path is not None else roles_path())
    except UsageError as exc:
        return Access(user, NO_ACCESS, frozenset()), f"error: {exc}"
    access = access_for(identity, roles)
    if access.role == NO_ACCESS:
        return access, (f"{user} has no role in {roles.source}: no data is shown (fix: ask the platform team to add "
                        "your e-mail or group to the roles file)")
    return access, None


def current_access() -> Access:
    """The current session's access: :func:`app.auth.current_identity` under the roles file (see :func:`resolve`)."""
    from app.auth import current_identity  # the one place that reads st.user
    return resolve(current_identity())[0]


def can_save(access: Access) -> bool:
    """Whether the session may save or delete scenarios, plans and budgets (platform only; local use is platform)."""
    return access.role in SAVERS


def sees_all(access: Access) -> bool:
    return access.teams is None


def visible_rows(df: pd.DataFrame, access: Access, team_col: str = "team") -> pd.DataFrame:
    """The rows of ``df`` the session may see: all with every-team access, else those of its teams (a row without a
    team, e.g. ``central`` or ``unallocated``, is nobody's team and not shown to engineers)."""
    if access.teams is None:
        return df
    return df[df[team_col].astype(str).isin(access.teams).to_numpy()]


def visible_teams(teams: Iterable[str], access: Access) -> list[str]:
    """``teams`` (sorted, as given) limited to those the session may see: what team selectors list."""
    return [t for t in teams if access.teams is None or t in access.teams]


def hidden_teams(teams: Iterable[str], access: Access) -> frozenset[str]:
    """The teams among ``teams`` whose names the session must not see."""
    return frozenset() if access.teams is None else frozenset(str(t) for t in teams) - access.teams


def _pattern(hidden: frozenset[str]) -> re.Pattern[str] | None:
    if not hidden:
        return None
    names = sorted(hidden, key=len, reverse=True)
    return re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(n) for n in names) + r")(?![\w-])")


def names_hidden(text: str, hidden: frozenset[str]) -> bool:
    """Whether ``text`` names a hidden team (a whole name: ``speech`` in ``speech-asr`` does not count)."""
    pat = _pattern(hidden)
    return pat is not None and pat.search(str(text)) is not None


def visible_lines(lines: Iterable[str], hidden: frozenset[str]) -> tuple[str, ...]:
    """Free-text lines (notes, findings) without those that name a hidden team."""
    pat = _pattern(hidden)
    return tuple(line for line in lines if pat is None or pat.search(str(line)) is None)


def without_hidden(df: pd.DataFrame, hidden: frozenset[str]) -> pd.DataFrame:
    """``df`` without the rows any of whose text cells names a hidden team (findings whose team is in a message)."""
    pat = _pattern(hidden)
    if pat is None or df.empty:
        return df
    text = df.select_dtypes(include=["object", "string", "category"])
    mask = pd.Series(False, index=df.index)
    for col in text.columns:
        mask |= text[col].astype(str).str.contains(pat, regex=True, na=False)
    return df[~mask.to_numpy()]


# --- the operate results, as one role sees them ---------------------------------------------------------------
def alerts_for(report: Any, access: Access, all_teams: Iterable[str]) -> Any:
    """An :class:`operate.alerts.AlertReport` with only the session's teams' budgets and notes."""
    if access.teams is None:
        return report
    hidden = hidden_teams(all_teams, access)
    return dataclasses.replace(report, alerts=tuple(a for a in report.alerts if a.team in access.teams),
                               notes=visible_lines(report.notes, hidden))


def chargeback_for(cb: Any, access: Access, all_teams: Iterable[str]) -> Any:
    """An :class:`operate.chargeback.Chargeback` with only the session's teams' rows (table, detail, idle) and notes;
    the bill and the per-GPU-model commitment use stay whole: they are organisation totals."""
    if access.teams is None:
        return cb
    hidden = hidden_teams(all_teams, access)
    return dataclasses.replace(cb, table=visible_rows(cb.table, access).reset_index(drop=True),
                               detail=visible_rows(cb.detail, access).reset_index(drop=True),
                               idle=visible_rows(cb.idle, access).reset_index(drop=True) if not cb.idle.empty
                               else cb.idle, notes=visible_lines(cb.notes, hidden))


def checks_for(report: Any, access: Access, all_teams: Iterable[str]) -> Any:
    """An :class:`operate.policy.CheckReport` without findings, idle runs or notes of other teams (plan findings
    name GPU models and instance types, not teams, and stay)."""
    if access.teams is None:
        return report
    hidden = hidden_teams(all_teams, access)
    idle = visible_rows(report.idle, access) if "team" in report.idle.columns else report.idle
    return dataclasses.replace(report, violations=without_hidden(report.violations, hidden).reset_index(drop=True),
                               idle=without_hidden(idle, hidden).reset_index(drop=True),
                               notes=visible_lines(report.notes, hidden))
