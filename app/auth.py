"""Who is signed in: the identity the app reads from Streamlit's ``st.user`` (OpenID Connect via ``st.login``).

Minimal stand-in with the shared contract (``Identity``, ``current_identity``); the sign-in gate and its settings
belong to the sign-in work (issue 18 item 1), whose version of this module replaces this one.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st


@dataclass(frozen=True)
class Identity:
    """A signed-in user.

    Attributes:
        email: the ``email`` claim ("" when the provider sent none).
        name: the ``name`` claim ("" when absent).
        groups: the ``groups`` claim when the provider sends one, else empty.
    """

    email: str
    name: str
    groups: tuple[str, ...]


def _auth_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all: sign-in is off
        return False


def current_identity() -> Identity | None:
    """The signed-in user, or None when sign-in is off (local use: no ``[auth]`` settings and nobody logged in).

    With sign-in configured but nobody logged in, an empty identity is returned (it maps to no access), never None.
    """
    if st.user.get("is_logged_in") is True:
        groups = st.user.get("groups") or ()
        if isinstance(groups, str):
            groups = (groups,)
        return Identity(str(st.user.get("email") or ""), str(st.user.get("name") or ""),
                        tuple(str(g) for g in groups))
    if _auth_configured():
        return Identity("", "", ())
    return None
