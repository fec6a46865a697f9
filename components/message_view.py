"""Finished messages: Markdown with HTML disabled, state marks and the one-line metrics summary."""
from __future__ import annotations

from typing import Callable

import streamlit as st

STATE_MARKS = {"stopped": "⏹ stopped", "failed": "⚠️ failed", "streaming": "… in progress elsewhere"}


def render_message(message: dict, *, interrupted: bool = False,
                   footer: Callable[[], None] | None = None) -> None:
    """`footer` draws the message's controls (versions, edit, regenerate) inside its bubble."""
    with st.chat_message(message["role"]):
        with st.container(key=f"msg-{message['id']}"):
            if message["content"]:
                st.markdown(message["content"], unsafe_allow_html=False)
            if message["role"] == "assistant":
                render_outcome(message.get("state"), message.get("error"), message.get("summary"),
                               interrupted=interrupted)
        if footer is not None:
            footer()


def render_outcome(state: str | None, error: str | None, summary: str | None, *,
                   interrupted: bool = False) -> None:
    if error:
        st.error(error, icon="⚠️")
    mark = "⚠️ interrupted (the app stopped before this reply finished)" if interrupted \
        else STATE_MARKS.get(state or "")
    line = " · ".join(p for p in (summary, mark) if p)
    if line:
        st.caption(line)
