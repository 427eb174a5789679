"""Sign-in settings, the launcher's --host rule and the app's sign-in gate (issue 18 item 1).

Settings discovery and the private secrets file are checked on real files; the --host rule on a real
``gpuplan app`` subprocess (it must refuse before starting Streamlit); the gate with ``AppTest`` (``at.secrets``
switches sign-in on, ``at.user`` is the provider's identity). The full OIDC round trip in Chromium is in
tests/test_auth_browser.py.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.auth import ENV, AuthSettingsError, find_auth, needs_sign_in, streamlit_secret_args

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app" / "streamlit_app.py")
AUTH = {"redirect_uri": "https://gpuplan.example.com/oauth2callback", "cookie_secret": "c" * 40,
        "client_id": "gpuplan", "client_secret": "s3cr3t", "server_metadata_url":
        "https://login.example.com/.well-known/openid-configuration"}
SECRETS_TOML = "[auth]\n" + "".join(f'{k} = "{v}"\n' for k, v in AUTH.items())


def write_secrets(folder: Path, text: str) -> Path:
    path = folder / ".streamlit" / "secrets.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- settings discovery -------------------------------------------------------------------------------------

def test_no_settings_means_sign_in_off(tmp_path: Path) -> None:
    write_secrets(tmp_path / "home", 'other = "x"\n')  # a secrets file without [auth] does not switch it on
    assert find_auth({}, cwd=tmp_path / "cwd", home=tmp_path / "home") is None


def test_secrets_file_in_the_working_folder_wins_over_home(tmp_path: Path) -> None:
    write_secrets(tmp_path / "home", SECRETS_TOML)
    cwd_file = write_secrets(tmp_path / "cwd", SECRETS_TOML)
    source = find_auth({}, cwd=tmp_path / "cwd", home=tmp_path / "home")
    assert source is not None and source.where == str(cwd_file) and source.providers == ("",)
    assert source.secrets_toml is None  # Streamlit reads that file itself


def test_named_providers_are_listed(tmp_path: Path) -> None:
    text = ('[auth]\nredirect_uri = "https://x/oauth2callback"\ncookie_secret = "k"\n'
            '[auth.okta]\nclient_id = "a"\nclient_secret = "b"\nserver_metadata_url = "https://okta/.well-known"\n'
            '[auth.entra]\nclient_id = "a"\nclient_secret = "b"\nserver_metadata_url = "https://entra/.well-known"\n')
    write_secrets(tmp_path, text)
    assert find_auth({}, cwd=tmp_path, home=tmp_path / "h").providers == ("okta", "entra")


@pytest.mark.parametrize(("text", "message"), [
    (SECRETS_TOML.replace('cookie_secret = "' + "c" * 40 + '"\n', ""), "[auth] has no cookie_secret"),
    (SECRETS_TOML.replace('client_secret = "s3cr3t"\n', ""), "[auth] has no client_secret"),
    ('[auth]\nredirect_uri = "https://x/oauth2callback"\ncookie_secret = "k"\n', "[auth] names no provider"),
    ('[auth]\nredirect_uri = "https://x/oauth2callback"\ncookie_secret = "k"\n[auth.okta]\nclient_id = "a"\n',
     "[auth.okta] has no client_secret, server_metadata_url"),
    ("[auth\n", "not a valid TOML file"),
])
def test_unusable_secrets_file_is_named_with_the_fix(tmp_path: Path, text: str, message: str) -> None:
    path = write_secrets(tmp_path, text)
    with pytest.raises(AuthSettingsError) as info:
        find_auth({}, cwd=tmp_path, home=tmp_path / "h")
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)


def test_environment_route_round_trips_every_character(tmp_path: Path) -> None:
    tricky = 'a"b\\c\u00e9\U0001f600\n\tz'
    env = {ENV[k]: v for k, v in AUTH.items()} | {ENV["client_secret"]: tricky}
    write_secrets(tmp_path, SECRETS_TOML.replace("gpuplan", "other"))
    source = find_auth(env, cwd=tmp_path, home=tmp_path / "h")
    assert source is not None and source.where == "the environment" and source.providers == ("",)
    assert tomllib.loads(source.secrets_toml)["auth"] == AUTH | {"client_secret": tricky}


def test_partial_environment_names_the_missing_variables() -> None:
    with pytest.raises(AuthSettingsError, match="not GPUPLAN_AUTH_COOKIE_SECRET, GPUPLAN_AUTH_CLIENT_SECRET;"):
        find_auth({ENV[k]: v for k, v in AUTH.items() if k not in ("cookie_secret", "client_secret")})


def test_private_secrets_file_is_owner_only_listed_last_and_removed(tmp_path: Path) -> None:
    source = find_auth({ENV[k]: v for k, v in AUTH.items()}, cwd=tmp_path, home=tmp_path / "h")
    with streamlit_secret_args(source, cwd=tmp_path, home=tmp_path / "h") as args:
        files = args[1::2]
        assert args[::2] == ["--secrets.files"] * 3
        assert files[:2] == [str(tmp_path / "h" / ".streamlit" / "secrets.toml"),
                             str(tmp_path / ".streamlit" / "secrets.toml")]  # Streamlit's own two stay readable
        private = Path(files[2])
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
        assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700
        assert not private.is_relative_to(ROOT)
        assert tomllib.loads(private.read_text())["auth"] == AUTH
    assert not private.parent.exists()
    with streamlit_secret_args(None) as none:
        assert none == []


@pytest.mark.parametrize(("host", "needed"), [
    ("127.0.0.1", False), ("localhost", False), ("LOCALHOST", False), ("::1", False), ("[::1]", False),
    ("0.0.0.0", True), ("::", True), ("10.0.0.5", True), ("gpuplan.internal", True), ("127.0.0.2", True),
])
def test_only_loopback_hosts_run_without_sign_in(host: str, needed: bool) -> None:
    assert needs_sign_in(host) is needed


# --- the launcher's --host rule (a real gpuplan app process; it must refuse before starting Streamlit) --------

def run_app_cmd(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GPUPLAN_AUTH_")}
    (tmp_path / "home").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "app.cli", "app", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env=base | {"PYTHONPATH": str(ROOT), "HOME": str(tmp_path / "home"),
                                                              **(env or {})})


def test_non_local_host_without_settings_refuses_in_one_line(tmp_path: Path) -> None:
    res = run_app_cmd(tmp_path, "--host", "0.0.0.0", "--port", "1")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --host 0.0.0.0 serves the planner beyond this machine")
    assert ".streamlit/secrets.toml" in lines[0] and "GPUPLAN_AUTH_*" in lines[0]
    assert "Traceback" not in res.stderr and "GPU Cost Planner on" not in res.stdout


def test_bad_settings_refuse_even_on_localhost(tmp_path: Path) -> None:
    path = write_secrets(tmp_path, "[auth]\nredirect_uri = 1\n")
    res = run_app_cmd(tmp_path, "--port", "1")
    assert res.returncode == 2 and res.stderr.strip() == (f"error: {path}: [auth] has no cookie_secret; add it "
                                                          "(see README, 'Deploy for your organisation')")
    res = run_app_cmd(tmp_path, "--port", "1", env={ENV["client_id"]: "x"})
    assert res.returncode == 2 and res.stderr.startswith("error: the environment sets some sign-in settings")
    assert len(res.stderr.strip().splitlines()) == 1


# --- the gate in the app (AppTest) --------------------------------------------------------------------------

def app_with(user: dict, auth: dict | None = AUTH) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    if auth is not None:
        at.secrets["auth"] = auth
    at.user = user
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_anonymous_visitor_sees_only_the_sign_in_button() -> None:
    at = app_with({"is_logged_in": False})
    assert [b.label for b in at.button] == ["Sign in"]
    assert [t.value for t in at.title] == ["GPU Cost Planner"]
    assert not at.metric and not at.dataframe and not at.get("vega_lite_chart")  # no figures, tables or charts
    assert not at.selectbox and not at.sidebar.text and not at.sidebar.button  # no data source picker, no sidebar


def test_named_providers_get_one_button_each() -> None:
    auth = {"redirect_uri": AUTH["redirect_uri"], "cookie_secret": AUTH["cookie_secret"],
            "okta": {k: AUTH[k] for k in ("client_id", "client_secret", "server_metadata_url")},
            "entra": {k: AUTH[k] for k in ("client_id", "client_secret", "server_metadata_url")}}
    at = app_with({"is_logged_in": False}, auth)
    assert [b.label for b in at.button] == ["Sign in with okta", "Sign in with entra"]


def identity_script() -> None:
    import streamlit as st

    from app import auth

    identity = auth.gate()
    st.text(f"identity={identity!r}")


@pytest.mark.parametrize(("user", "auth", "want"), [
    ({"is_logged_in": True, "email": "ed@example.com", "name": "Ed", "groups": ["eng", "vc1"], "sub": "1"}, AUTH,
     "identity=Identity(email='ed@example.com', name='Ed', groups=('eng', 'vc1'))"),
    ({"is_logged_in": True, "email": "fi@example.com", "groups": "finance", "sub": "2"}, AUTH,
     "identity=Identity(email='fi@example.com', name='fi@example.com', groups=('finance',))"),
    ({"is_logged_in": True, "sub": "3"}, AUTH, "identity=Identity(email='', name='3', groups=())"),
    ({"email": "test@example.com"}, None, "identity=None"),  # sign-in off: local use, full access
])
def test_current_identity_from_the_id_token_claims(user: dict, auth: dict | None, want: str) -> None:
    at = AppTest.from_function(identity_script, default_timeout=60)
    if auth is not None:
        at.secrets["auth"] = auth
    at.user = user
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.text if t.value.startswith("identity=")] == [want]
    sidebar = [t.value for t in at.sidebar.text]
    if auth is None:
        assert sidebar == [] and not at.sidebar.button
    else:
        assert sidebar[0].startswith("Signed in as ") and [b.label for b in at.sidebar.button] == ["Sign out"]


def test_current_identity_stops_the_run_for_an_anonymous_visitor() -> None:
    at = AppTest.from_function(identity_script, default_timeout=60)
    at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception
    assert [t.value for t in at.text] == [] and [b.label for b in at.button] == ["Sign in"]

