"""Read-only share links (streamchat.store: shares): make, show and revoke them."""

from __future__ import annotations

from urllib.parse import urlsplit

import streamlit as st

from streamchat.markdown_safety import escape_markdown

from .identity import listed_owner


def share_link(token: str) -> str:
    """The app's own address with `?share=<token>` (the shared page needs no other path)."""
    parts = urlsplit(st.context.url or "")
    base_path = (st.get_option("server.baseUrlPath") or "").strip("/")
    root = f"{parts.scheme}://{parts.netloc}/" if parts.netloc else "/"
    return f"{root}{base_path + '/' if base_path else ''}?share={token}"


def share_links(store, conversation_id: str) -> None:
    """Make a read-only link to this chat; see every link of yours (this chat's first), what it
    shows, and revoke it."""
    owner = listed_owner()  # None for a single user: every local chat is theirs
    st.caption(
        "Whoever has a link sees this chat read-only (no input, no settings, nothing else of "
        "yours) and can replay its replies. Revoke a link to close it."
    )
    st.button(
        "Make a link",
        key="share-make",
        on_click=_make_share,
        args=(store, owner, conversation_id),
    )
    links = store.list_shares(owner, include_revoked=False)
    links.sort(key=lambda s: s.get("conversation_id") != conversation_id)  # this chat's first
    for i, shared in enumerate(links):
        st.caption(_what(store, shared, conversation_id))
        st.code(share_link(shared["token"]), language=None, wrap_lines=True)
        st.button(
            "Revoke", key=f"share-revoke-{i}", on_click=store.revoke_share, args=(shared["token"], owner)
        )


def _what(store, shared: dict, current: str) -> str:
    if shared.get("run_id") is not None:
        return f"Compare run {shared['run_id']}"
    if shared.get("conversation_id") == current:
        return "This chat"
    conversation = store.get_conversation(shared.get("conversation_id") or "") or {}
    return f"Chat: {escape_markdown(conversation.get('title') or 'deleted')}"


def _make_share(store, owner: str | None, conversation_id: str) -> None:
    try:
        store.create_share(owner, conversation_id=conversation_id)
    except (KeyError, PermissionError):  # deleted meanwhile, or not this browser's chat
        st.toast("This chat cannot be shared from here.", icon="🔒")
