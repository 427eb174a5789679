"""The roles file and the access rules of :mod:`app.roles` (pure: no Streamlit run).

Real YAML files in a temporary folder; the per-team filters run on the real operate results of the synthetic
sample (budget alerts, chargeback under the shipped plan, guardrail checks).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from app import roles as R
from app.auth import Identity
from forecasting.samples import data_dir, load_sample
from operate.chargeback import allocate
from operate.costing import on_demand_rates, priced
from operate.policy import check_usage, load_policy
from optimizer.catalog import load_catalog
from optimizer.plan import Plan
from usage import schema as S

ROLES = """\
# who sees what
users:
  Ana@Example.com: finance
  raj@example.com: {role: engineer, teams: [speech, doc-ai]}
  lee@example.com: leadership
groups:
  gpu-platform: platform
  speech-team: {role: engineer, teams: [speech]}
  vision-team: {role: engineer, teams: [vision-research]}
  execs: leadership
"""


def write(tmp_path: Path, text: str, name: str = "roles.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def who(email: str, *groups: str) -> Identity:
    return Identity(email, email.split("@")[0], tuple(groups))


@pytest.fixture
def roles(tmp_path: Path) -> R.Roles:
    return R.load_roles(write(tmp_path, ROLES))


def test_users_and_groups_map_to_roles(roles: R.Roles) -> None:
    assert R.access_for(who("ana@example.com"), roles) == R.Access("ana@example.com", "finance", None)
    assert R.access_for(who("ANA@example.com"), roles).role == "finance"  # e-mail case does not matter
    assert R.access_for(who("raj@example.com"), roles) == R.Access("raj@example.com", "engineer",
                                                                   frozenset({"speech", "doc-ai"}))
    assert R.access_for(who("lee@example.com"), roles).teams is None
    # groups: engineers' teams are united; any every-team role wins, the widest first
    both = R.access_for(who("kim@example.com", "speech-team", "vision-team"), roles)
    assert both == R.Access("kim@example.com", "engineer", frozenset({"speech", "vision-research"}))
    assert R.access_for(who("kim@example.com", "speech-team", "execs"), roles).role == "leadership"
    assert R.access_for(who("kim@example.com", "execs", "gpu-platform"), roles).role == "platform"
    # a user's own entry wins over their groups
    assert R.access_for(who("raj@example.com", "gpu-platform"), roles).role == "engineer"


def test_unknown_user_gets_nothing_and_sign_in_off_gets_everything(roles: R.Roles, tmp_path: Path) -> None:
    nobody = R.access_for(who("eve@example.com", "unknown-group"), roles)
    assert nobody == R.Access("eve@example.com", R.NO_ACCESS, frozenset())
    frame = pd.DataFrame({"team": ["speech", "doc-ai"], "usd": [1.0, 2.0]})
    assert R.visible_rows(frame, nobody).empty
    assert not R.can_save(nobody)
    assert R.access_for(None, roles) == R.LOCAL == R.Access("local", "platform", None)
    access, problem = R.resolve(who("eve@example.com"), write(tmp_path, ROLES))
    assert access.role == R.NO_ACCESS and "eve@example.com has no role in" in problem
    assert R.resolve(None, tmp_path / "missing.yaml") == (R.LOCAL, None)  # sign-in off never reads the file


def test_a_missing_or_bad_roles_file_gives_no_data_and_one_line(tmp_path: Path) -> None:
    access, problem = R.resolve(who("ana@example.com"), tmp_path / "nope.yaml")
    assert access.teams == frozenset() and access.role == R.NO_ACCESS
    assert problem.startswith("error: ") and "nope.yaml" in problem and "\n" not in problem


@pytest.mark.parametrize(("text", "expected"), [
    ("users:\n  ana@example.com: admin\n", "line 2, key 'users.ana@example.com': unknown role 'admin' (fix: use one "
                                           "of finance, platform, leadership, engineer)"),
    ("users:\n  a@example.com: finance\n  raj@example.com: {role: engineer}\n",
     "line 3, key 'users.raj@example.com': an engineer entry needs a list of its teams"),
    ("groups:\n  g: {role: finance, teams: [speech]}\n", "line 2, key 'groups.g.teams': role 'finance' sees every "
                                                         "team: 'teams' is only for engineers"),
    ("users:\n  ana: finance\n", "line 2, key 'users.ana': 'ana' is not an e-mail address"),
    ("users:\n  Ana@example.com: finance\n  ana@example.com: leadership\n",
     "line 3, key 'users.ana@example.com': 'ana@example.com' is listed twice"),
    ("people:\n  ana@example.com: finance\n", "line 1, key 'people': unknown section 'people'"),
    ("users:\n  ana@example.com: {role: engineer, teams: [a], team: b}\n",
     "line 2, key 'users.ana@example.com.team': unknown key 'team'"),
    ("users: [ana@example.com]\n", "line 1, key 'users': 'users' must be a mapping"),
    ("users:\n  ana@example.com: finance\n bad indent: x\n", "line 3: not valid YAML"),
    ("", "expected a mapping with 'users' and/or 'groups'"),
])
def test_bad_roles_file_is_one_line_naming_file_line_key_and_fix(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(S.UsageError) as err:
        R.load_roles(path)
    line = str(err.value)
    assert line.startswith(str(path)) and expected in line and "\n" not in line and "(fix: " in line


def test_roles_file_is_plain_data_never_code(tmp_path: Path) -> None:
    path = write(tmp_path, "users:\n  ana@example.com: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(S.UsageError, match="not valid YAML"):
        R.load_roles(path)


def test_env_names_the_roles_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(R.ROLES_ENV, raising=False)
    assert R.roles_path() == Path(".streamlit/roles.yaml")
    monkeypatch.setenv(R.ROLES_ENV, str(tmp_path / "r.yaml"))
    assert R.roles_path() == tmp_path / "r.yaml"


def test_only_platform_saves() -> None:
    assert [R.can_save(R.Access("x@y.z", role, None)) for role in R.ROLES] == [False, True, False, False]
    assert R.can_save(R.LOCAL)


def test_visible_rows_teams_and_hidden_names() -> None:
    eng = R.Access("raj@example.com", "engineer", frozenset({"speech"}))
    frame = pd.DataFrame({"team": ["speech", "speech-asr", "central", "unallocated"], "usd": [1.0, 2.0, 3.0, 4.0]})
    assert R.visible_rows(frame, eng)["usd"].tolist() == [1.0]
    assert R.visible_rows(frame, R.LOCAL) is frame
    assert R.visible_teams(["doc-ai", "speech"], eng) == ["speech"]
    hidden = R.hidden_teams(frame["team"], eng)
    assert hidden == {"speech-asr", "central", "unallocated"}
    assert R.names_hidden("speech-asr ran p5 without approval", hidden)
    assert not R.names_hidden("speech ran p5 without approval", frozenset({"speech-asr"}))  # whole names only
    assert R.visible_lines(["a note on speech", "a note on speech-asr"], hidden) == ("a note on speech",)
    findings = pd.DataFrame({"scope": ["speech", "x"], "message": ["ok", "speech-asr has no tag"]})
    assert R.without_hidden(findings, hidden)["scope"].tolist() == ["speech"]


def test_operate_results_keep_only_the_teams_rows_and_the_organisation_totals() -> None:
    usage = load_sample("synthetic")
    teams = sorted(usage[S.TEAM].unique())
    eng = R.Access("raj@example.com", "engineer", frozenset({"llm-finetune", "speech"}))
    cb = allocate(usage, Plan.read(data_dir() / "operate" / "plan_2025-11.json"), "proportional")
    mine = R.chargeback_for(cb, eng, teams)
    assert set(mine.table["team"]) == {"llm-finetune", "speech"}
    assert set(mine.idle["team"]) <= {"llm-finetune", "speech"} and not mine.idle.empty
    assert set(mine.detail["team"]) == {"llm-finetune", "speech"}
    assert mine.reconciliation()["bill_total_usd"] == cb.reconciliation()["bill_total_usd"]  # the org's bill
    expected = cb.table.set_index("team").loc[["llm-finetune", "speech"], "total_usd"].sum()
    assert mine.table["total_usd"].sum() == pytest.approx(expected)
    costed = priced(usage, on_demand_rates(load_catalog(), set(usage[S.GPU_TYPE])))
    policy = load_policy(data_dir() / "operate" / "policy.yaml", set(teams))
    report = check_usage(costed, policy)
    shown = R.checks_for(report, eng, teams)
    hidden = R.hidden_teams(teams, eng)
    assert not report.idle.empty and shown.idle.empty  # the idle rule covers ml-platform and data-science only
    for frame in (shown.violations, shown.idle):
        for col in frame.select_dtypes(include="object"):
            assert not any(R.names_hidden(v, hidden) for v in frame[col].astype(str))


def test_the_shipped_example_roles_file_loads() -> None:
    example = Path(__file__).resolve().parents[1] / R.EXAMPLE
    roles = R.load_roles(example)
    assert R.access_for(who("raj@example.com"), roles).teams == {"llm-pretrain", "llm-finetune"}
    assert R.access_for(who("someone@example.com", "speech-team"), roles).teams == {"speech"}
    assert R.access_for(who("someone@example.com", "gpu-platform"), roles) == R.Access("someone@example.com",
                                                                                        "platform", None)
