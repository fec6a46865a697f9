"""A read-only share link: `?share=<token>` shows one conversation (or one Compare run) and
nothing else — no input, no settings, no other conversations, nothing of the owner's session —
with ▶ Replay under every recorded reply and a download of the page that replays it offline.

Runs without the shell (app.py routes a `?share=` URL here alone): it reads the settings and the
store itself and never calls components.context.
"""

from __future__ import annotations

import streamlit as st

from components.context import shared_store
from components.message_view import MessageSlots, render_message
from components.metrics_panel import MetricsPanel
from components.replay_view import active_replays, play_replays, replay_compare_run, replay_message
from streamchat import export_page, replay
from streamchat.config import load_settings
from streamchat.store import ShareStatus

SHARE_PARAM = "share"
MESSAGES = {
    ShareStatus.UNKNOWN: "This link does not work: there is no shared conversation with this "
    "token. Check that the whole link was copied.",
    ShareStatus.REVOKED: "This link was revoked by the person who shared it.",
    ShareStatus.GONE: "What this link showed was deleted by the person who shared it.",
}
READ_ONLY_CSS = "<style>[data-testid='stSidebarNav'], [data-testid='stChatInput'] { display: none; }</style>"


def shared_view() -> None:
    st.html(READ_ONLY_CSS)
    settings = load_settings()
    store = shared_store(str(settings.data_dir))
    lookup = store.resolve_share(st.query_params.get(SHARE_PARAM))
    if not lookup.ok or lookup.share is None:
        st.title("🔗 Shared conversation")
        st.error(MESSAGES.get(lookup.status, MESSAGES[ShareStatus.UNKNOWN]), icon="🔒")
        return
    share = lookup.share
    if share["run_id"] is not None:
        st.title("⚖️ Shared Compare run")
        st.caption("Read-only · ▶ Replay plays both sides at their recorded timing; no model is asked.")
        replay_compare_run(store, int(share["run_id"]), key=f"shared-run-{share['run_id']}")
        recordings = replay.load_group(store, int(share["run_id"]))
        if recordings:
            st.download_button(
                "⬇ Download as a page",
                export_page.compare_page(recordings),
                file_name="streamchat-compare.html",
                mime="text/html",
                on_click="ignore",
                key="shared-download",
            )
        return
    conversation = store.get_conversation(share["conversation_id"]) or {}
    messages = store.conversation_path(share["conversation_id"])
    st.title(conversation.get("title") or "Shared conversation")
    st.caption("Read-only · ▶ Replay plays a reply as it streamed, at its recorded pace; no model is asked.")
    metrics_slot = st.sidebar.container()
    recorded = store.recorded_messages(share["conversation_id"])
    playing = []  # a reply being replayed plays in its place, after the rest is drawn
    for message in messages:
        key = f"msg-{message['id']}"
        if (replays := active_replays(key)) is not None:
            playing.append(
                (
                    [
                        (
                            replays[0],
                            MessageSlots("assistant", f"replayed-{message['id']}"),
                            MetricsPanel(metrics_slot),
                        )
                    ],
                    key,
                )
            )
        elif message["role"] == "assistant" and message["id"] in recorded:
            replay_message(store, message, metrics_slot=metrics_slot, key=key)
        else:
            render_message(message)
    recordings = {mid: rec for mid in recorded if (rec := replay.load(store, message_id=mid)) is not None}
    st.download_button(
        "⬇ Download as a page",
        export_page.conversation_page({"title": conversation.get("title")}, messages, recordings),
        file_name="streamchat-conversation.html",
        mime="text/html",
        on_click="ignore",
        key="shared-download",
    )
    for items, key in playing[:1]:
        play_replays(items, key=key)


shared_view()
