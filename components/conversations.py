"""Sidebar list of saved conversations: switch, new, delete, download."""
from __future__ import annotations

import re
import uuid

import streamlit as st

from streamchat import export

QUERY_KEY = "c"
OWNER_KEY = "u"
_TOKEN = re.compile(r"[0-9a-f]{32}")


def session_owner() -> str:
    """Who this browser session is: a random token kept in the URL, so a reload (or a bookmark)
    finds its conversations again while other sessions never list them."""
    state = st.session_state
    if "owner" not in state:
        from_url = st.query_params.get(OWNER_KEY, "")
        state.owner = from_url if _TOKEN.fullmatch(from_url) else uuid.uuid4().hex
    if st.query_params.get(OWNER_KEY) != state.owner:
        st.query_params[OWNER_KEY] = state.owner
    return state.owner


def owns(conversation: dict | None) -> bool:
    return conversation is not None and conversation.get("owner") in (None, session_owner())


def current_conversation_id(store) -> str | None:
    """The open conversation: this session's choice, else the one in the URL (survives reload)."""
    state = st.session_state
    if "conversation_id" not in state:
        from_url = st.query_params.get(QUERY_KEY)
        state.conversation_id = from_url if from_url and owns(store.get_conversation(from_url)) \
            else None
    return state.conversation_id


def open_conversation(conversation_id: str | None) -> None:
    st.session_state.conversation_id = conversation_id
    if conversation_id:
        st.query_params[QUERY_KEY] = conversation_id
    elif QUERY_KEY in st.query_params:
        del st.query_params[QUERY_KEY]


def conversations_sidebar(store, container, busy_ids: set[str]) -> None:
    current = current_conversation_id(store)
    with container:
        st.divider()
        head, new = st.columns([3, 2], vertical_alignment="center")
        head.markdown("**Conversations**")
        new.button("New chat", key="conv_new", on_click=open_conversation, args=(None,),
                   width="stretch")
        conversations = store.list_conversations(owner=session_owner())
        for conv in conversations[:50]:
            title = conv["title"] or "New chat"
            label = ("▶ " if conv["id"] in busy_ids else "") + (title[:40] + ("…" if len(title) > 40 else ""))
            st.button(label, key=f"conv_{conv['id']}", on_click=open_conversation, args=(conv["id"],),
                      type="primary" if conv["id"] == current else "tertiary", width="stretch")
        if current and store.get_conversation(current):
            def export_as(render):
                # Built when clicked, not when the sidebar is drawn: a reply that finishes later
                # in the same run is in the file.
                return lambda: render(store.get_conversation(current),
                                      store.conversation_messages(current))
            md, js = st.columns(2)
            md.download_button("⬇ Markdown", export_as(export.conversation_markdown),
                               file_name=f"chat-{current[:8]}.md", mime="text/markdown",
                               on_click="ignore", key="dl_md")
            js.download_button("⬇ JSON", export_as(export.conversation_json),
                               file_name=f"chat-{current[:8]}.json", mime="application/json",
                               on_click="ignore", key="dl_json")
            if st.button("🗑 Delete this chat", key="conv_delete", disabled=current in busy_ids):
                store.delete_conversation(current)
                open_conversation(None)
                st.rerun()
