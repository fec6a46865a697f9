"""Messages in the chat: one fixed layout for a reply whether it is live or redrawn from the store.

Streamlit matches the elements of a new run to the old ones by position, and shows an old
element (faded) until the new run replaces it or ends. A reply that finished live and is then
redrawn from the store therefore has exactly the same slots in the same order; anything left
over is hidden while the next reply streams (see STALE_GUARD).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import streamlit as st

from streamchat import metrics as metrics_mod
from streamchat.kinds import Source
from streamchat.markdown_safety import Piece, escape_markdown, message_pieces
from streamchat.messages import figures
from streamchat.stop_rules import HIDDEN

from . import visible_ttft

STATE_MARKS = {"stopped": "⏹ stopped", "failed": "⚠️ failed", "streaming": "… in progress elsewhere"}
INTERRUPTED = "⚠️ interrupted (the app stopped before this reply finished)"
CUT_OFF = "✂️ cut off at the max tokens limit — ▶ Continue carries on"
# While a reply streams, elements of the previous run that this run did not redraw are hidden
# instead of shown faded (Streamlit only removes them when the run ends). The rule holds only
# while the guard itself belongs to the running run: when the next run starts, the guard is stale
# too and the page is not blanked while that run redraws it. (Not style-only HTML: that would
# go to Streamlit's event container and outlive its slot. Its slot is hidden by shell.BASE_CSS.)
# The earlier messages are drawn again after the reply's first words (chat.py, HISTORY_KEY):
# until then (while the mark drawn first in their box is stale) the browser keeps showing them
# as they were, neither hidden nor faded; after that, what was not drawn again is a leftover.
HISTORY_KEY = "chat-history"
HISTORY_MARK_KEY = "chat-history-drawn"
_WAITING_HISTORY = f'.st-key-{HISTORY_KEY}:has(.st-key-{HISTORY_MARK_KEY} [data-stale="true"])'
STALE_GUARD = f"""<style>
body:has(.st-key-stale-guard [data-stale="false"]) [data-testid="stMainBlockContainer"]
    [data-stale="true"]:not({_WAITING_HISTORY} [data-stale="true"]) {{
  display: none !important;
}}
{_WAITING_HISTORY} [data-stale="true"] {{ opacity: 1 !important; }}
</style><span></span>"""


def mark_history_drawn() -> None:
    """First in the history's box, each time it is drawn (see STALE_GUARD)."""
    st.container(key=HISTORY_MARK_KEY).html("<span></span>")


class MessageSlots:
    """The places of one message: body, a live status line, the outcome line, the actions."""

    def __init__(self, role: str, body_key: str) -> None:
        with st.chat_message(role):
            self.thinking = st.empty()  # a thinking model's thinking (thinking_view)
            self.body = st.container(key=body_key)
            self.live_status = st.empty()  # waiting timer and the stop-rule hint while streaming
            self.outcome = st.empty()  # error, one-line figures, why it ended
            self.actions = st.empty()  # Stop while streaming; versions, Edit, Regenerate…


def shown_content(message: dict, hide_matches: bool) -> str:
    """The text to show: with the part a stop rule matched hidden, if the user asked for that."""
    rule = figures(message).get("stop_rule")
    text = message["content"]
    if hide_matches and rule and rule["end"] > rule["start"]:
        return text[: rule["start"]] + HIDDEN + text[rule["end"] :]
    return text


def rule_note(describe: str | None, hide_matches: bool) -> str | None:
    """Why a stop rule ended the reply, without quoting the matched words when they are hidden."""
    if describe is None or not hide_matches:
        return describe
    return re.sub(r'"[^"]*"|/.*/', HIDDEN, describe)


def render_piece(target, piece: Piece) -> None:
    """One piece of a message (see streamchat.markdown_safety) as one element in `target`."""
    if piece.kind == "markdown":
        target.markdown(piece.text, unsafe_allow_html=False)
    elif piece.kind == "code":
        target.code(piece.text, language=piece.language)
    elif piece.kind == "plain":  # st.text: no parsing at all, and far cheaper for the browser than st.code
        target.text(piece.text, width="stretch")
    else:  # "note": why the next piece is shown as it is
        target.caption(piece.text)


def render_pieces(target, pieces: list[Piece]) -> None:
    for piece in pieces:
        render_piece(target, piece)


def render_message(
    message: dict,
    *,
    interrupted: bool = False,
    hide_matches: bool = False,
    actions: Callable[[], None] | None = None,
    allow_images: bool = False,
) -> None:
    """`actions` draws the message's controls (versions, edit, regenerate) in its actions slot.
    The text is rendered safely (streamchat.markdown_safety): remote images as links unless
    `allow_images`, code blocks with st.code, blocks nested too deep or too long as plain text."""
    slots = MessageSlots(message["role"], f"msg-{message['id']}")
    with slots.body:
        # Two slots, like the live reply's finished blocks and growing tail.
        if message["content"]:
            render_pieces(
                st.container(),
                message_pieces(shown_content(message, hide_matches), allow_images=allow_images),
            )
        else:
            st.empty()
        st.empty()
    if message["role"] == "assistant":
        render_saved_thinking(slots.thinking, message)
        metrics = figures(message)
        rule = metrics.get("stop_rule")
        with slots.outcome.container():
            summary = " · ".join(p for p in (message.get("summary"), visible_ttft.footer_part(metrics)) if p)
            render_outcome(
                message.get("state"),
                message.get("error"),
                summary,
                interrupted=interrupted,
                note=rule_note(rule["describe"], hide_matches) if rule else None,
                cut_off=metrics.get("finish_reason") == "length",
            )
    if actions is not None:
        with slots.actions.container():
            actions()


def render_outcome(
    state: str | None,
    error: str | None,
    summary: str | None,
    *,
    interrupted: bool = False,
    note: str | None = None,
    cut_off: bool = False,
) -> None:
    """`note` says why the reply ended when a stop rule ended it. The error is shown as plain
    text: it may quote the server, and Markdown there could load an image or fake a link."""
    if error:
        st.error(escape_markdown(error), icon="⚠️")
    if interrupted:
        mark = INTERRUPTED
    elif note:
        mark = f"⏹ {note}"
    elif cut_off and state == "done":
        mark = CUT_OFF
    else:
        mark = STATE_MARKS.get(state or "", "")
    line = " · ".join(p for p in (summary, mark) if p)
    if line:
        st.caption(line)


def folded_label(
    seconds: float | None, tokens: float | None, source: str | None = None, *, stopped: bool = False
) -> str:
    parts = [f"Thought for {metrics_mod.format_seconds(seconds)}" if seconds is not None else "Thought"]
    if tokens:
        count = f"{tokens:.0f} tokens"
        parts.append(metrics_mod.shown(metrics_mod.Value(tokens, Source(source)), count) if source else count)
    if stopped:
        parts.append("stopped while thinking")
    return "💭 " + " · ".join(parts)


def render_folded(slot, text: str, label: str) -> None:
    """A thinking model's thinking, folded under `label` (it can be opened), in `slot` (an
    expander in place of what was there: a block of another kind inherits none of its elements)."""
    with slot.expander(label, expanded=False, type="compact"):
        render_pieces(st.container(), message_pieces(text))


def render_saved_thinking(slot, message: dict) -> None:
    """The thinking of a saved reply, folded; nothing (an empty slot) for a reply without."""
    reasoning = message.get("reasoning") or ""
    if not reasoning:
        slot.empty()
        return
    saved = figures(message)
    tokens = saved.get("reasoning_tokens") or {}
    label = folded_label(
        (saved.get("thinking_s") or {}).get("value"),
        tokens.get("value"),
        tokens.get("source"),
        stopped=message.get("state") == "stopped" and not message["content"],
    )
    render_folded(slot, reasoning, label)
