"""Who is using the app, and what they may see.

Two modes (README, "Single user and shared"):
  single user — the app is bound to localhost (as `make run` does): one person, every local
                conversation is theirs; opening the app again lists them all.
  shared      — any other bind address, or STREAMCHAT_SHARED=1: each browser gets a random
                identity kept in a cookie the app sets itself, conversations are strictly
                per identity. A link can never set the identity (a `?u=` in the URL is ignored),
                so nobody can hand a victim a link that files their chats under a known id.

Behind an authenticating proxy (team mode, README "Run for a team"), the identity is the person
the proxy vouches for: STREAMCHAT_TRUSTED_USER_HEADER names the header it sets (honoured only
when set; the proxy must strip it from what browsers send). Where Streamlit's own login (OIDC,
`st.login`, configured in secrets) is set up and the person is signed in, it is their account.
Either way the identity is the same on every replica and in every browser of that person.
"""

from __future__ import annotations

import os
import re
import uuid

import streamlit as st

COOKIE = "streamchat_id"
LOCAL_OWNER = "local"  # the owner of conversations made in single-user mode
_TOKEN = re.compile(r"[0-9a-f]{32}")
_LOCAL_ADDRESSES = {"localhost", "127.0.0.1", "::1", "[::1]"}
_COOKIE_MAX_AGE_S = 400 * 24 * 3600  # the longest browsers keep a cookie

_SET_COOKIE_JS = f"""
export default function(component) {{
  const id = component.data && component.data.id;
  if (id && !document.cookie.split('; ').includes('{COOKIE}=' + id)) {{
    document.cookie = '{COOKIE}=' + id + '; Path=/; Max-Age={_COOKIE_MAX_AGE_S}; SameSite=Strict';
  }}
}}
"""
_set_cookie = st.components.v2.component("streamchat_identity_cookie", js=_SET_COOKIE_JS)


TRUSTED_HEADER_ENV = "STREAMCHAT_TRUSTED_USER_HEADER"
_MAX_USER_CHARS = 200


def trusted_header() -> str | None:
    return os.environ.get(TRUSTED_HEADER_ENV, "").strip() or None


def vouched_user() -> str | None:
    """The owner for a person someone vouches for: "user:<name>" from the trusted header, or
    "oidc:<email or subject>" from st.login; None when nobody does."""
    header = trusted_header()
    if header:
        value = (st.context.headers.get(header) or "").strip()
        if value:
            return "user:" + value[:_MAX_USER_CHARS]
    try:
        user = st.user
        if user.get("is_logged_in"):
            who = user.get("email") or user.get("sub")
            if who:
                return "oidc:" + str(who)[:_MAX_USER_CHARS]
    except Exception:  # no auth configured: st.user has nothing to say
        pass
    return None


def is_shared() -> bool:
    if trusted_header():
        return True  # behind an authenticating proxy: a team, never "single user"
    flag = os.environ.get("STREAMCHAT_SHARED", "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    address = (st.get_option("server.address") or "").strip().lower()
    return address not in _LOCAL_ADDRESSES  # unset means every interface: shared


def session_owner() -> str:
    """The identity conversations are filed under: LOCAL_OWNER in single-user mode; else the
    person a proxy or st.login vouches for; else this browser's cookie (made and set on its
    first visit)."""
    state = st.session_state
    if "owner" not in state:
        vouched = vouched_user() if is_shared() else None
        if not is_shared():
            state.owner = LOCAL_OWNER
        elif vouched is not None:
            state.owner = vouched
        else:
            cookies = st.context.cookies
            from_cookie = str(cookies.get(COOKIE) or "") if cookies else ""
            state.owner = from_cookie if _TOKEN.fullmatch(from_cookie) else uuid.uuid4().hex
            state.owner_needs_cookie = from_cookie != state.owner
    return state.owner


def remember_identity(container) -> None:
    """Set the identity cookie in this browser once (shared mode, first visit)."""
    session_owner()
    if st.session_state.get("owner_needs_cookie"):
        with container:
            _set_cookie(data={"id": st.session_state.owner}, key="identity-cookie", height=0)


def may_open(conversation: dict | None) -> bool:
    """Single user: every local conversation. Shared: only this identity's; a conversation with
    no owner (made before owners existed) is never granted to anyone."""
    if conversation is None:
        return False
    if not is_shared():
        return True
    return conversation.get("owner") is not None and conversation["owner"] == session_owner()


def listed_owner() -> str | None:
    """Whose conversations the sidebar lists: everybody's (None) for a single user."""
    return session_owner() if is_shared() else None
