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


def current_identity() -> Identity | None:
    """The signed-in user, or None when sign-in is off (local use).

    Streamlit sets ``st.user.is_logged_in`` only when sign-in is configured (an ``[auth]`` section in the secrets):
    True for a signed-in user, False for nobody yet. Without it (sign-in off) there is no such key: None. Signed out
    with sign-in on gives an empty identity (no access), never None.
    """
    logged_in = st.user.get("is_logged_in")
    if logged_in is True:
        groups = st.user.get("groups") or ()
        if isinstance(groups, str):
            groups = (groups,)
        return Identity(str(st.user.get("email") or ""), str(st.user.get("name") or ""),
                        tuple(str(g) for g in groups))
    return None if logged_in is None else Identity("", "", ())
