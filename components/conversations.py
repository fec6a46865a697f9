"""Sidebar list of saved conversations: switch, new, delete, download, share read-only."""

from __future__ import annotations

import streamlit as st

from streamchat import export, export_page
from streamchat.replies import flusher

from .identity import listed_owner, may_open
from .share import share_links

QUERY_KEY = "c"
LIST_LIMIT = 50


def current_conversation_id(store) -> str | None:
    """The open conversation: this session's choice, else the one in the URL (survives reload)."""
    state = st.session_state
    if "conversation_id" not in state:
        from_url = st.query_params.get(QUERY_KEY)
        state.conversation_id = from_url if from_url and may_open(store.get_conversation(from_url)) else None
    if state.conversation_id and store.get_conversation(state.conversation_id) is None:
        st.toast("This chat was deleted (in another tab).", icon="ℹ️")
        open_conversation(None)
    if state.conversation_id and st.query_params.get(QUERY_KEY) != state.conversation_id:
        st.query_params[QUERY_KEY] = state.conversation_id
    return state.conversation_id


def open_conversation(conversation_id: str | None) -> None:
    st.session_state.conversation_id = conversation_id
    if conversation_id:
        st.query_params[QUERY_KEY] = conversation_id
    elif QUERY_KEY in st.query_params:
        del st.query_params[QUERY_KEY]


def _delete(store, conversation_id: str) -> None:
    """Delete works also while a reply streams into the chat (from this tab or another): the
    reply is stopped first."""
    st.session_state.get("active_replies", {}).pop(conversation_id, None)
    live = [
        reply
        for m in store.conversation_messages(conversation_id)
        if (reply := flusher.live(m["id"])) is not None
    ]
    for reply in live:
        reply.generation.stop()
    for reply in live:
        reply.saved.wait(2)  # its final save must not land after the delete
    store.delete_conversation(conversation_id)
    if st.session_state.get("conversation_id") == conversation_id:
        open_conversation(None)


def busy_conversations() -> set[str]:
    return {
        cid
        for cid, reply in st.session_state.get("active_replies", {}).items()
        if not reply.generation.is_finished
    }


class ConversationList:
    """The list is drawn once per run (its buttons are widgets: drawing them twice in a run is an
    error), so which chats are busy is marked by a style rule in a slot of its own that can be
    redrawn the moment a reply ends, instead of in the button labels."""

    def __init__(self, store, container) -> None:
        self._store = store
        self._container = container
        self._marks = container.container(key="conv-marks").empty()  # hidden by shell.BASE_CSS
        self._marked: frozenset[str] | None = None

    def draw(self) -> None:
        store = self._store
        current = current_conversation_id(store)
        with self._container:
            st.divider()
            head, new = st.columns([3, 2], vertical_alignment="center")
            head.markdown("**Conversations**")
            new.button("New chat", key="conv_new", on_click=open_conversation, args=(None,), width="stretch")
            for conv in store.list_conversations(owner=listed_owner())[:LIST_LIMIT]:
                title = conv["title"] or "New chat"
                label = title[:40] + ("…" if len(title) > 40 else "")
                st.button(
                    label,
                    key=f"conv_{conv['id']}",
                    on_click=open_conversation,
                    args=(conv["id"],),
                    width="stretch",
                    type="primary" if conv["id"] == current else "tertiary",
                )
            exists = bool(current and store.get_conversation(current))
            # Drawn (disabled) also with no chat open: the browser loads the button's code with
            # the page, not as a grey skeleton in the middle of the first reply.
            self._downloads(current if exists else None)
            if exists:
                st.button(
                    "🗑 Delete this chat",
                    key="conv_delete",
                    on_click=_delete,
                    args=(store, current),
                    help="Deletes this conversation; a reply still coming is stopped first.",
                )
        self.mark_busy()

    def _downloads(self, current: str | None) -> None:
        store = self._store

        def export_as(render):
            # Built when clicked, not when the sidebar is drawn: a reply that finishes later
            # in the same run is in the file.
            if current is None:
                return ""
            return lambda: render(store.get_conversation(current), store.conversation_messages(current))

        name = f"chat-{(current or 'none')[:8]}"
        md, js = st.columns(2)
        md.download_button(
            "⬇ Markdown",
            export_as(export.conversation_markdown),
            file_name=f"{name}.md",
            mime="text/markdown",
            on_click="ignore",
            key="dl_md",
            disabled=current is None,
        )
        js.download_button(
            "⬇ JSON",
            export_as(export.conversation_json),
            file_name=f"{name}.json",
            mime="application/json",
            on_click="ignore",
            key="dl_json",
            disabled=current is None,
        )
        page, share = st.columns(2)
        page.download_button(
            "⬇ Page",
            (lambda: export_page.conversation_page_from_store(store, current)) if current else "",
            file_name=f"{name}.html",
            mime="text/html",
            on_click="ignore",
            key="dl_page",
            disabled=current is None,
            help="One HTML file that replays this chat at its recorded pace, offline (for mail).",
        )
        with share.popover("🔗 Share", key="share-menu", disabled=current is None, width="stretch"):
            if current is not None:
                share_links(store, current)

    def mark_busy(self) -> None:
        """▶ before every conversation with a reply in progress; cheap to call every frame."""
        busy = frozenset(busy_conversations())
        if busy == self._marked:
            return
        self._marked = busy
        if not busy:
            self._marks.empty()
            return
        selectors = ", ".join(f".st-key-conv_{cid} button p::before" for cid in sorted(busy))
        # Not style-only: that would go to Streamlit's event container, outside this slot.
        self._marks.html(f"<style>{selectors} {{ content: '▶ '; }}</style><span></span>")
