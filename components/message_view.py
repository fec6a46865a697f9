"""Finished messages: Markdown with HTML disabled, state marks and the one-line metrics summary."""
from __future__ import annotations

from typing import Callable

import streamlit as st

from streamchat.stop_rules import HIDDEN

STATE_MARKS = {"stopped": "⏹ stopped", "failed": "⚠️ failed", "streaming": "… in progress elsewhere"}


def shown_content(message: dict, hide_matches: bool) -> str:
    """The text to show: with the part a stop rule matched hidden, if the user asked for that."""
    rule = (message.get("metrics") or {}).get("stop_rule")
    text = message["content"]
    if hide_matches and rule and rule["end"] > rule["start"]:
        return text[:rule["start"]] + HIDDEN + text[rule["end"]:]
    return text


def render_message(message: dict, *, interrupted: bool = False, hide_matches: bool = False,
                   footer: Callable[[], None] | None = None) -> None:
    """`footer` draws the message's controls (versions, edit, regenerate) inside its bubble."""
    with st.chat_message(message["role"]):
        with st.container(key=f"msg-{message['id']}"):
            if message["content"]:
                st.markdown(shown_content(message, hide_matches), unsafe_allow_html=False)
            if message["role"] == "assistant":
                rule = (message.get("metrics") or {}).get("stop_rule")
                render_outcome(message.get("state"), message.get("error"), message.get("summary"),
                               interrupted=interrupted, note=rule["describe"] if rule else None)
        if footer is not None:
            footer()


def render_outcome(state: str | None, error: str | None, summary: str | None, *,
                   interrupted: bool = False, note: str | None = None) -> None:
    """`note` says why the reply ended when a stop rule ended it."""
    if error:
        st.error(error, icon="⚠️")
    mark = "⚠️ interrupted (the app stopped before this reply finished)" if interrupted \
        else f"⏹ {note}" if note else STATE_MARKS.get(state or "")
    line = " · ".join(p for p in (summary, mark) if p)
    if line:
        st.caption(line)
