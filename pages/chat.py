"""Chat: history, live streaming reply with Stop, live metrics in the sidebar.

The page holds widgets only; what a click does (send, regenerate, continue, edit, trim) is in
streamchat/chat.py."""

from __future__ import annotations

import time
from collections.abc import Callable

import streamlit as st

from components import visible_ttft
from components.context import context
from components.conversations import current_conversation_id, open_conversation
from components.frames import run_frames
from components.identity import session_owner
from components.live_reply import CaptionSlot, LiveReply
from components.message_view import (
    HISTORY_KEY,
    STALE_GUARD,
    MessageSlots,
    mark_history_drawn,
    render_message,
    render_outcome,
    rule_note,
    shown_content,
)
from components.metrics_panel import status_text
from components.replay_view import active_replays, play_replays, replay_menu
from components.shell import follow_background_replies
from components.thinking_view import LiveThinking
from streamchat import metrics
from streamchat.chat import ChatSession
from streamchat.inputs import MAX_MESSAGE_CHARS
from streamchat.kinds import ErrorKind, MessageState
from streamchat.messages import figures
from streamchat.presets import EXAMPLE_PROMPTS
from streamchat.replies import ActiveReply

# Buttons that come and go with each reply use stable keys: Streamlit keeps the callback of
# every key it has seen for the whole session, and a per-reply key would keep each reply alive.
UNSENT_PREVIEW = 2_000  # characters of a message that was not sent, shown above its download

ctx = context()
store, options, state = ctx.store, ctx.options, st.session_state
chat = ChatSession(
    store,
    ctx.runner,
    session_owner(),
    state.setdefault("active_replies", {}),
    state.setdefault("trimmed_messages", {}),
    # the visible-TTFT probe times the reply a click or Enter started
    on_start=lambda reply: state.__setitem__("seen_target", reply.message_id),
)


def queue_prompt(text: str) -> None:
    state.pending_prompt = text


def send(conversation_id: str | None, text: str) -> str | None:
    """Send the user's message; returns the conversation it went to."""
    sent = chat.send(conversation_id, text, options)
    if sent.notice:
        st.toast(sent.notice, icon="⚠️" if sent.unsent else "ℹ️")
    if sent.unsent:
        state.unsent = sent.unsent
    else:
        state.pop("unsent", None)
    if sent.conversation_id != conversation_id:
        open_conversation(sent.conversation_id)
    return sent.conversation_id


def send_edit(conversation_id: str, message: dict) -> None:
    state.editing = None
    problem = chat.send_edit(conversation_id, message, state.get(f"edit-text-{message['id']}"), options)
    if problem:
        st.toast(problem, icon="⚠️")


def start_editing(message_id: str | None) -> None:
    state.editing = message_id


def version_switcher(conversation_id: str, message: dict) -> None:
    """‹ 2/3 › between the versions of a message; the rest of the chat follows the choice."""
    siblings, i = message["siblings"], message["version"] - 1
    if len(siblings) < 2:
        return
    row = st.container(
        horizontal=True, vertical_alignment="center", gap="small", key=f"versions-{message['id']}"
    )
    row.button(
        "‹",
        key=f"prev-{message['id']}",
        disabled=i == 0,
        help="Previous version",
        on_click=chat.switch_version,
        args=(conversation_id, siblings[i - 1]),
    )
    row.markdown(f"**{i + 1}/{len(siblings)}**", width="content")
    row.button(
        "›",
        key=f"next-{message['id']}",
        disabled=i == len(siblings) - 1,
        help="Next version",
        on_click=chat.switch_version,
        args=(conversation_id, siblings[min(i + 1, len(siblings) - 1)]),
    )


def message_actions(conversation_id: str, message: dict, is_last: bool, recorded: bool = False) -> None:
    """Under a message: its versions, Edit (user), 🔁 Replay (a recorded reply), Regenerate /
    Continue / Retry (last reply)."""
    version_switcher(conversation_id, message)
    if recorded:
        replay_menu(store, key=f"msg-{message['id']}", message_id=message["id"])
    if message["role"] == "user":
        if state.get("editing") == message["id"]:
            st.text_area(
                "Edit message",
                value=message["content"],
                key=f"edit-text-{message['id']}",
                label_visibility="collapsed",
            )
            row = st.container(horizontal=True, gap="small")
            row.button(
                "Send edited",
                key=f"edit-send-{message['id']}",
                type="primary",
                on_click=send_edit,
                args=(conversation_id, message),
            )
            row.button("Cancel", key=f"edit-cancel-{message['id']}", on_click=start_editing, args=(None,))
        else:
            st.button(
                "✏️ Edit",
                key=f"edit-{message['id']}",
                type="tertiary",
                on_click=start_editing,
                args=(message["id"],),
                help="Change this message and resend from here; the old version stays.",
            )
        if is_last:  # a user message with no reply (e.g. the app stopped): offer one
            st.button(
                "🔁 Retry", key="retry-last", on_click=chat.reply_again, args=(conversation_id, options)
            )
        return
    if not is_last:
        return
    saved = figures(message)
    cut_off = message["state"] == MessageState.STOPPED or saved.get("finish_reason") == "length"
    row = st.container(horizontal=True, gap="small")
    label = (
        "🔁 Retry" if message["state"] in (MessageState.FAILED, MessageState.STREAMING) else "🔁 Regenerate"
    )
    row.button(
        label,
        key="retry-last",
        on_click=chat.reply_again,
        args=(conversation_id, options),
        help="Ask again for the last user message; this reply stays as a version.",
    )
    if cut_off and message["content"]:
        row.button(
            "▶ Continue",
            key="continue-last",
            on_click=chat.continue_reply,
            args=(conversation_id, message, options),
            help="The model carries on from where this reply stopped.",
        )
    if saved.get("error_kind") == ErrorKind.CONTEXT_LENGTH and chat.can_trim(conversation_id):
        row.button(
            "✂️ Trim oldest messages and retry",
            key="trim-last",
            on_click=chat.trim_and_retry,
            args=(conversation_id, options),
            help="Leave the oldest half of the earlier messages out of what is sent.",
        )


def keep_seen(seen: visible_ttft.Seen) -> str | None:
    """The browser's visible TTFT for a reply: kept with it and its run, shown under the metrics."""
    return visible_ttft.saved_line(chat.keep_visible_ttft(seen.target, seen.seconds))


def near_miss_text(g) -> str:
    """Live moderation hint: which stop rule the partial reply is getting close to."""
    if g.rules is None or g.t_sent is None or g.is_finished:
        return ""
    near = [
        n
        for n in g.rules.near_misses(
            g.text,
            elapsed=time.perf_counter() - g.t_sent,
            tokens=g.content_chunk_count,
            reasoning=g.reasoning,
            thinking_tokens=g.reasoning_chunk_count,
        )
        if n.progress >= 0.5
    ]
    return "🟠 " + " · ".join(n.describe() for n in near) if near else ""


def show_live(reply: ActiveReply, draw_history: Callable[[], None] = lambda: None) -> None:
    """Render frames until the generation ends; the runner keeps it going between runs. The
    reply takes the same slots as a saved message, so the next run redraws it in place.
    `draw_history` redraws the earlier messages once the first words are out (or the reply has
    ended): the browser handles a run's updates in order, and a long chat's would come first."""
    g = reply.generation
    slots = MessageSlots("assistant", "live-reply")
    thinking = LiveThinking(slots.thinking)
    live = LiveReply(slots.body, allow_images=options.allow_images)
    with slots.live_status.container():
        waiting = CaptionSlot(st)
        near_slot = CaptionSlot(st)
        st.container(key="stale-guard").html(STALE_GUARD)
    if g.is_active:
        slots.actions.button(
            "Stop",
            key="stop-live",
            on_click=g.stop,
            type="primary",
            help="Stop the reply: the connection is closed and the server stops generating.",
        )
    panel = ctx.metrics_panel()
    shown = [(False, False), True, g.answer_restarts]  # (thinking, answer) on screen, history due

    def words_now() -> tuple[bool, bool]:
        return bool(g.reasoning), bool(g.text)

    def frame(finished: bool) -> None:
        # One snapshot for the chat's timer and the panel's, so they agree; computed only when
        # one of them shows it (it costs time that grows with the reply).
        waiting_shown = not g.token_times and not finished
        snapshot = metrics.current(g) if waiting_shown or panel.due(g) else None
        thinking.render(g)
        if g.answer_restarts != shown[2]:  # text before a late </think> was thinking
            shown[2] = g.answer_restarts
            live.reset()
        live.render(reply.text, growing=not finished)
        shown[0] = words_now()
        if shown[1] and (any(shown[0]) or finished):
            shown[1] = False
            draw_history()
        waiting.show(status_text(g, snapshot) if waiting_shown else "")
        near_slot.show(near_miss_text(g))
        if snapshot is not None:
            panel.update(g, snapshot)

    # The first text (of the thinking, of the answer) goes out at once, not at the next frame:
    # that is the visible TTFT.
    run_frames(frame, lambda: g.is_finished, urgent=lambda: words_now() != shown[0])
    slots.live_status.empty()
    reply.saved.wait(5)
    save_note = None
    if not reply.saved.is_set() or reply.save_problem:
        save_note = reply.save_problem or (
            "Saving this reply is taking long (the database is "
            "busy). It stays here and is saved as soon as the "
            "database can be written."
        )
    saved = store.get_message(reply.message_id) or {}
    if g.rule_hit is not None and options.hide_matches and saved:
        live.replace(shown_content(saved, hide_matches=True))
    with slots.outcome.container():
        render_outcome(
            g.state,
            g.error.message if g.error else None,
            saved.get("summary") or metrics.summary_line(metrics.final_metrics(g)),
            note=rule_note(g.rule_hit.describe(), options.hide_matches) if g.rule_hit else None,
            cut_off=g.finish_reason == "length",
        )
        if save_note:
            st.warning(save_note, icon="💾")
    panel.update(g)
    state.last_generation = g
    last = chat.finished(reply)
    ctx.conversations.mark_busy()
    # The finished reply gets its actions in place, without a re-run that would re-send the chat.
    if last is not None:
        with slots.actions.container():
            message_actions(
                reply.conversation_id, last, True, recorded=last["id"] in chat.recorded(reply.conversation_id)
            )
    else:  # the chat moved on in another tab, or was deleted there: the next run redraws it
        slots.actions.empty()


# A new message is taken before anything is drawn, so this run shows it, starts its reply and
# streams it: no re-run between Enter and the first frame of the reply.
prompt = st.chat_input("Message StreamChat", key="chat_input")
prompt = prompt or state.pop("pending_prompt", None)
conversation_id = current_conversation_id(store)
if prompt:
    conversation_id = send(conversation_id, prompt)
ctx.conversations.draw()

messages = store.conversation_path(conversation_id) if conversation_id else []
active = chat.live_reply(conversation_id, messages)

st.caption(f"Model: **{options.model_label}**")
if n_left_out := chat.left_out(conversation_id, messages) if conversation_id else 0:
    st.caption(
        f"✂️ The {n_left_out} oldest messages are left out of what is sent "
        "to the model (they were too long for its context)."
    )


recorded = chat.recorded(conversation_id)
replaying: list[tuple] = []  # (replay, slots, key) of a reply being replayed in its place


def draw_messages(shown: list[dict]) -> None:
    for message in shown:
        key = f"msg-{message['id']}"
        if (replays := active_replays(key)) is not None:
            replaying.append((replays[0], MessageSlots("assistant", f"replayed-{message['id']}"), key))
            continue
        is_last = message is messages[-1]
        render_message(
            message,
            interrupted=chat.is_interrupted(message),
            hide_matches=options.hide_matches,
            allow_images=options.allow_images,
            actions=lambda m=message, last=is_last: message_actions(
                conversation_id, m, last, recorded=m["id"] in recorded
            ),
        )


shown_messages = [m for m in messages if active is None or m["id"] != active.message_id]
# Two boxes, the same in every run: the earlier messages, then the last exchange (the last user
# message and its reply). While a reply streams, the earlier messages are drawn only after its
# first words: the browser handles a run's updates in order.
last_user = max((i for i, m in enumerate(shown_messages) if m["role"] == "user"), default=0)
history_box = st.container(key=HISTORY_KEY)
recent_box = st.container()


def draw_history() -> None:
    with history_box:
        mark_history_drawn()
        draw_messages(shown_messages[:last_user])


with recent_box:
    draw_messages(shown_messages[last_user:])
if active is None:
    draw_history()

if state.get("unsent"):
    unsent_text, unsent_problem = state.unsent
    st.error(unsent_problem, icon="⚠️")
    st.code(
        unsent_text[:UNSENT_PREVIEW] + ("\n…" if len(unsent_text) > UNSENT_PREVIEW else ""),
        language=None,
        wrap_lines=True,
    )
    row = st.container(horizontal=True, gap="small")
    if len(unsent_text) <= MAX_MESSAGE_CHARS:
        row.button("Send again", key="send-unsent", on_click=queue_prompt, args=(unsent_text,))
    row.download_button(
        "⬇ Your message as a file",
        unsent_text,
        file_name="message.txt",
        mime="text/plain",
        on_click="ignore",
        key="unsent-download",
    )
    row.button("Discard", key="discard-unsent", on_click=state.pop, args=("unsent", None))

if not messages:
    st.markdown("#### Try one of these")
    columns = st.columns(2)
    for i, example in enumerate(EXAMPLE_PROMPTS):
        columns[i % 2].button(
            example, key=f"example-{i}", on_click=queue_prompt, args=(example,), width="stretch"
        )

if active is not None:
    with recent_box:
        show_live(active, draw_history)
elif replaying:  # ▶ Replay: the recorded reply plays in its place, the panel shows its figures
    replay, slots, key = replaying[0]
    play_replays([(replay, slots, ctx.metrics_panel())], key=key, allow_images=options.allow_images)
elif state.get("last_generation") is not None:
    ctx.metrics_panel().update(state.last_generation)
else:
    ctx.metrics_panel().show_idle()
follow_background_replies()  # a reply in another chat of this session may still be running
visible_ttft.probe(ctx.seen_slot, page="chat", target=state.get("seen_target"), on_seen=keep_seen)
