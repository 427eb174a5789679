"""Sign-in through OpenID Connect with Streamlit's own ``st.login`` / ``st.user`` / ``st.logout`` (issue 18 item 1).

Sign-in is on when sign-in settings are found, off otherwise (local use on 127.0.0.1 needs none); ``gpuplan app
--host`` with any address other than localhost / 127.0.0.1 / ::1 refuses to start without them. Settings come
from one of two places:

* a Streamlit secrets file: ``.streamlit/secrets.toml`` in the folder ``gpuplan app`` starts in, or
  ``~/.streamlit/secrets.toml``, with an ``[auth]`` section (``redirect_uri``, ``cookie_secret``, and either
  ``client_id``, ``client_secret``, ``server_metadata_url`` in ``[auth]`` itself or one ``[auth.<provider>]``
  section per provider), exactly as Streamlit documents it;
* the environment: ``GPUPLAN_AUTH_REDIRECT_URI``, ``GPUPLAN_AUTH_COOKIE_SECRET``, ``GPUPLAN_AUTH_CLIENT_ID``,
  ``GPUPLAN_AUTH_CLIENT_SECRET``, ``GPUPLAN_AUTH_SERVER_METADATA_URL`` (all five). The launcher writes them into a
  secrets file readable by the owner only (0600) in a private temporary folder (0700), never in the repository,
  hands that file to Streamlit with ``--secrets.files`` and deletes the folder when the app stops. These values
  win over a secrets file's ``[auth]``.

The app side (:func:`current_identity`, :func:`gate`) asks Streamlit's ``st.secrets`` whether an ``[auth]`` section
is present, so both routes switch sign-in on the same way. No units: names, addresses and claims only.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
"""Bind addresses that only this machine reaches; any other ``--host`` needs sign-in settings."""

SHARED_KEYS = ("redirect_uri", "cookie_secret")
"""Keys Streamlit reads from ``[auth]`` for every provider."""

PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")
"""Keys of one provider: in ``[auth]`` (the default provider) or in ``[auth.<provider>]``."""

ENV = {key: f"GPUPLAN_AUTH_{key.upper()}" for key in (*SHARED_KEYS, *PROVIDER_KEYS)}
"""Environment variable of each setting for the environment route."""


class AuthSettingsError(ValueError):
    """Sign-in settings are present but unusable; the message names where and what to fix."""


@dataclass(frozen=True)
class Identity:
    """The signed-in user, as the provider's ID token names them.

    Attributes:
        email: the ``email`` claim ("" when the provider sends none).
        name: the ``name`` claim, else the email, else the subject.
        groups: the ``groups`` claim when the provider sends one (a list or one string), else empty.
    """

    email: str
    name: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class AuthSource:
    """Where the launcher found sign-in settings.

    Attributes:
        where: ``"the environment"`` or the secrets file's path.
        providers: provider names for ``st.login``; ``""`` is the default provider (settings in ``[auth]``).
        secrets_toml: the secrets file text to hand to Streamlit (environment route only), else None.
    """

    where: str
    providers: tuple[str, ...]
    secrets_toml: str | None = None


def providers_in(section: Mapping[str, Any], where: str) -> tuple[str, ...]:
    """The providers an ``[auth]`` section configures, after checking every key Streamlit needs is set.

    Args:
        section: the ``[auth]`` table.
        where: the file it came from, for the error message.

    Returns:
        ``("",)`` when ``[auth]`` holds the provider keys itself, else the names of its ``[auth.<name>]`` tables.

    Raises:
        AuthSettingsError: a shared key or a provider key is missing or empty, or no provider is configured.
    """
    missing = [k for k in SHARED_KEYS if not str(section.get(k) or "").strip()]
    if missing:
        raise AuthSettingsError(f"{where}: [auth] has no {', '.join(missing)}; add it (see README, "
                                "'Deploy for your organisation')")
    named = {name: table for name, table in section.items() if isinstance(table, Mapping)}
    tables = ({"": section} if any(k in section for k in PROVIDER_KEYS) else {}) | named
    if not tables:
        raise AuthSettingsError(f"{where}: [auth] names no provider; add client_id, client_secret and "
                                "server_metadata_url to [auth] or to an [auth.<provider>] table")
    for name, table in tables.items():
        gaps = [k for k in PROVIDER_KEYS if not str(table.get(k) or "").strip()]
        if gaps:
            label = "[auth]" if name == "" else f"[auth.{name}]"
            raise AuthSettingsError(f"{where}: {label} has no {', '.join(gaps)}; add it")
    return tuple(tables)


def secrets_files(cwd: Path | None = None, home: Path | None = None) -> list[Path]:
    """Streamlit's default secrets files, lowest precedence first: ``~/.streamlit`` then the working folder's."""
    home = Path.home() if home is None else home
    cwd = Path.cwd() if cwd is None else cwd
    return [home / ".streamlit" / "secrets.toml", cwd / ".streamlit" / "secrets.toml"]


def _toml_string(value: str) -> str:
    """``value`` as a TOML basic string (JSON's escapes are TOML's for every character JSON escapes here)."""
    return json.dumps(value, ensure_ascii=False)


def find_auth(env: Mapping[str, str] | None = None, cwd: Path | None = None,
              home: Path | None = None) -> AuthSource | None:
    """Find sign-in settings: the environment first, then the secrets files (the working folder's wins).

    Args:
        env: environment variables (default ``os.environ``).
        cwd: the folder the app starts in (default the current one).
        home: the home folder (default the user's).

    Returns:
        Where the settings are, or None when there are none (sign-in off).

    Raises:
        AuthSettingsError: some but not all ``GPUPLAN_AUTH_*`` variables are set, a secrets file is not valid
            TOML, or its ``[auth]`` section lacks a key.
    """
    env = os.environ if env is None else env
    values = {key: env.get(var, "").strip() for key, var in ENV.items()}
    if any(values.values()):
        missing = [ENV[k] for k, v in values.items() if not v]
        if missing:
            raise AuthSettingsError(f"the environment sets some sign-in settings but not {', '.join(missing)}; "
                                    "set all five GPUPLAN_AUTH_* variables or none")
        body = "".join(f"{key} = {_toml_string(value)}\n" for key, value in values.items())
        return AuthSource("the environment", ("",), "[auth]\n" + body)
    for path in reversed(secrets_files(cwd, home)):
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise AuthSettingsError(f"{path}: not a valid TOML file ({exc}); fix the file") from None
        except OSError as exc:
            raise AuthSettingsError(f"{path}: cannot be read ({exc.strerror}); fix its permissions") from None
        section = data.get("auth")
        if isinstance(section, Mapping):
            return AuthSource(str(path), providers_in(section, str(path)))
    return None


def needs_sign_in(host: str) -> bool:
    """Whether binding to ``host`` exposes the app beyond this machine (so sign-in is required)."""
    return host.strip().strip("[]").lower() not in LOCAL_HOSTS


@contextmanager
def streamlit_secret_args(source: AuthSource | None, cwd: Path | None = None,
                          home: Path | None = None) -> Iterator[list[str]]:
    """``streamlit run`` options that make Streamlit read the environment route's settings; empty otherwise.

    For the environment route the settings are written to ``secrets.toml`` (mode 0600) inside a fresh private
    temporary folder (mode 0700), listed after Streamlit's own two secrets files so it wins; the folder is
    removed when the context ends. Nothing is logged.
    """
    if source is None or source.secrets_toml is None:
        yield []
        return
    folder = Path(tempfile.mkdtemp(prefix="gpuplan-auth-"))  # mkdtemp creates it 0700
    try:
        path = folder / "secrets.toml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(source.secrets_toml)
        args: list[str] = []
        for file in [*secrets_files(cwd, home), path]:
            args += ["--secrets.files", str(file)]
        yield args
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------------
# In the app (these import streamlit; the launcher part above does not).


def _auth_section() -> Mapping[str, Any] | None:
    """The ``[auth]`` section Streamlit sees, or None (no secrets file or no section)."""
    import streamlit as st

    try:
        section = st.secrets.get("auth")
    except (FileNotFoundError, KeyError):
        return None
    return section if isinstance(section, Mapping) else None


def sign_in_enabled() -> bool:
    """Whether this app run requires sign-in (Streamlit sees an ``[auth]`` section)."""
    return _auth_section() is not None


def _groups(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list | tuple):
        return tuple(str(g) for g in value if g is not None and str(g))
    return (str(value),)


def _providers() -> tuple[str, ...]:
    section = _auth_section() or {}
    named = tuple(name for name, table in section.items() if isinstance(table, Mapping))
    return ("",) if any(k in section for k in PROVIDER_KEYS) or not named else named


def show_sign_in() -> None:
    """The page an anonymous visitor sees when sign-in is on: a title, one line and the sign-in button(s)."""
    import streamlit as st

    st.title("GPU Cost Planner")
    st.write("Sign in with your organisation account to see the planner.")
    for provider in _providers():
        label = "Sign in" if provider == "" else f"Sign in with {provider}"
        if st.button(label, type="primary", key=f"sign_in_{provider}"):
            st.login(provider or None)


def current_identity() -> Identity | None:
    """The signed-in user, or None when sign-in is off (local use; full access).

    Fails closed: when sign-in is on and nobody is signed in, it shows the sign-in page and stops the script run
    (``st.stop``), so no caller ever renders data for an anonymous visitor.
    """
    import streamlit as st

    if not sign_in_enabled():
        return None
    if not st.user.is_logged_in:
        show_sign_in()
        st.stop()
    email = str(st.user.get("email") or "")
    name = str(st.user.get("name") or email or st.user.get("sub") or "")
    return Identity(email=email, name=name, groups=_groups(st.user.get("groups")))


def gate() -> Identity | None:
    """Run before the navigation: the sign-in page for an anonymous visitor (and nothing else), else the identity.

    With a signed-in user the sidebar shows their name and groups (plain text) and a sign-out button.
    """
    import streamlit as st

    identity = current_identity()
    if identity is not None:
        with st.sidebar:
            st.text(f"Signed in as {identity.name}")
            if identity.groups:
                st.text(f"Groups: {', '.join(identity.groups)}")
            if st.button("Sign out", key="sign_out"):
                st.logout()
    return identity
