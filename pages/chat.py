"""Chat: history, live streaming reply with Stop, live metrics in the sidebar."""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import streamlit as st

from components import visible_ttft
from components.context import context
from components.conversations import create_conversation, current_conversation_id
from components.live_reply import CaptionSlot, LiveReply
from components.message_view import (HISTORY_KEY, STALE_GUARD, MessageSlots, mark_history_drawn,
                                     render_message, render_outcome, rule_note, shown_content)
from components.metrics_panel import status_text
from components.shell import follow_background_replies
from components.thinking_view import LiveThinking
from streamchat import metrics
from streamchat.generation import GenerationRequest
from streamchat.inputs import MAX_MESSAGE_CHARS, clean_user_message
from streamchat.presets import EXAMPLE_PROMPTS
from streamchat.replies import (flusher, history_for_request, left_out, start_reply, trim_more,
                                up_to_last_user_message)
from streamchat.store import APPEND

# Buttons that come and go with each reply use stable keys: Streamlit keeps the callback of
# every key it has seen for the whole session, and a per-reply key would keep each reply alive.
FRAME_S = 1 / 15   # render rate: frames, not tokens
POLL_S = 0.01     # how often a pending click is noticed between frames
UNSENT_PREVIEW = 2_000   # characters of a message that was not sent, shown above its download

ctx = context()
store, options, state = ctx.store, ctx.options, st.session_state
replies: dict = state.setdefault("active_replies", {})
trimmed: dict = state.setdefault("trimmed_messages", {})   # conversation id -> messages left out


def queue_prompt(text: str) -> None:
    state.pending_prompt = text


def send(conversation_id: str | None, text: str) -> str | None:
    """Save the user's message and start the reply; returns the conversation it went to."""
    typed = text
    text, problem = clean_user_message(text)
    if problem:
        st.toast(problem, icon="⚠️")
        if not text:
            if typed.strip():   # too long: the chat input is cleared, so keep what was typed
                state.unsent = (typed, problem)
            return conversation_id
    if conversation_id is not None and store.get_conversation(conversation_id) is None:
        st.toast("That chat was deleted (in another tab): your message starts a new chat.",
                 icon="ℹ️")
        conversation_id = None
    try:
        if conversation_id is None:
            conversation_id = create_conversation(store)
        message_id = store.add_message(conversation_id, "user", text)
    except sqlite3.Error as exc:   # e.g. locked by another program for longer than we wait
        state.unsent = (text, f"Your message could not be saved ({exc}), so it was not sent. "
                              "It is kept below: send it again when the database is free.")
        return conversation_id
    state.pop("unsent", None)
    # The branch up to this very message: another tab may have added to the chat meanwhile.
    start_generation(conversation_id, store.conversation_path(conversation_id, up_to=message_id),
                     parent_id=message_id)
    return conversation_id


def start_generation(conversation_id: str, base: list[dict], **reply_args) -> None:
    """Send `base` (a branch of the conversation) and fill a reply with the answer."""
    previous = replies.get(conversation_id)
    if previous is not None:
        previous.generation.stop()   # a new request supersedes a reply still in progress
        previous.saved.wait(2)       # so its partial text is saved before we build on it
    if options.endpoint is None:
        store.add_message(conversation_id, "assistant", "", state="failed", error=options.problem,
                          **({"parent_id": base[-1]["id"]} if base else {}))
        return
    history = history_for_request(base, options.system_prompt,
                                  skip_oldest=trimmed.get(conversation_id, 0))
    request = GenerationRequest(history, stream=options.stream, params=options.params,
                                timeouts=options.timeouts, stop_rules=options.stop_rules)
    replies[conversation_id] = start_reply(ctx.runner, store, conversation_id, request,
                                           options.endpoint, **reply_args)
    state.seen_target = replies[conversation_id].message_id   # the probe times this reply


def reply_to_last_user_message(conversation_id: str) -> None:
    """A new version of the reply to the branch's last user message (send, Retry, Regenerate):
    an earlier reply there stays as a sibling version."""
    base = up_to_last_user_message(store.conversation_path(conversation_id))
    start_generation(conversation_id, base, parent_id=base[-1]["id"] if base else APPEND)


def continue_reply(conversation_id: str, message: dict) -> None:
    """The model carries on from the partial reply, which stays; the new text is appended."""
    path = store.conversation_path(conversation_id)
    base = path[:[m["id"] for m in path].index(message["id"]) + 1]
    start_generation(conversation_id, base, continue_message=message)


def send_edit(conversation_id: str, message: dict) -> None:
    """The edited text becomes a new version of the user message, answered afresh."""
    text, problem = clean_user_message(state.get(f"edit-text-{message['id']}"))
    state.editing = None
    if problem:
        st.toast(problem, icon="⚠️")
        return
    store.add_message(conversation_id, "user", text, parent_id=message["parent_id"])
    reply_to_last_user_message(conversation_id)


def trim_and_retry(conversation_id: str) -> None:
    """Leave about half of the earlier messages out of the context (they stay on screen)."""
    base = up_to_last_user_message(store.conversation_path(conversation_id))
    trimmed[conversation_id] = trim_more(base, trimmed.get(conversation_id, 0))
    reply_to_last_user_message(conversation_id)


def version_switcher(conversation_id: str, message: dict) -> None:
    """‹ 2/3 › between the versions of a message; the rest of the chat follows the choice."""
    siblings, i = message["siblings"], message["version"] - 1
    if len(siblings) < 2:
        return
    row = st.container(horizontal=True, vertical_alignment="center", gap="small",
                       key=f"versions-{message['id']}")
    row.button("‹", key=f"prev-{message['id']}", disabled=i == 0,
               help="Previous version", on_click=store.switch_branch,
               args=(conversation_id, siblings[i - 1]))
    row.markdown(f"**{i + 1}/{len(siblings)}**", width="content")
    row.button("›", key=f"next-{message['id']}", disabled=i == len(siblings) - 1,
               help="Next version", on_click=store.switch_branch,
               args=(conversation_id, siblings[min(i + 1, len(siblings) - 1)]))


def start_editing(message_id: str | None) -> None:
    state.editing = message_id


def message_actions(conversation_id: str, message: dict, is_last: bool) -> None:
    """Under a message: its versions, Edit (user), Regenerate / Continue / Retry (last reply)."""
    version_switcher(conversation_id, message)
    if message["role"] == "user":
        if state.get("editing") == message["id"]:
            st.text_area("Edit message", value=message["content"], key=f"edit-text-{message['id']}",
                         label_visibility="collapsed")
            row = st.container(horizontal=True, gap="small")
            row.button("Send edited", key=f"edit-send-{message['id']}", type="primary",
                       on_click=send_edit, args=(conversation_id, message))
            row.button("Cancel", key=f"edit-cancel-{message['id']}", on_click=start_editing,
                       args=(None,))
        else:
            st.button("✏️ Edit", key=f"edit-{message['id']}", type="tertiary",
                      on_click=start_editing, args=(message["id"],),
                      help="Change this message and resend from here; the old version stays.")
        if is_last:   # a user message with no reply (e.g. the app stopped): offer one
            st.button("🔁 Retry", key="retry-last", on_click=reply_to_last_user_message,
                      args=(conversation_id,))
        return
    if not is_last:
        return
    cut_off = message["state"] == "stopped" or (message.get("metrics") or {}).get(
        "finish_reason") == "length"
    row = st.container(horizontal=True, gap="small")
    label = "🔁 Retry" if message["state"] in ("failed", "streaming") else "🔁 Regenerate"
    row.button(label, key="retry-last", on_click=reply_to_last_user_message,
               args=(conversation_id,),
               help="Ask again for the last user message; this reply stays as a version.")
    if cut_off and message["content"]:
        row.button("▶ Continue", key="continue-last", on_click=continue_reply,
                   args=(conversation_id, message),
                   help="The model carries on from where this reply stopped.")
    if (message.get("metrics") or {}).get("error_kind") != "context_length":
        return
    base = up_to_last_user_message(store.conversation_path(conversation_id))
    already = trimmed.get(conversation_id, 0)
    if trim_more(base, already) > already:
        row.button("✂️ Trim oldest messages and retry", key="trim-last",
                   on_click=trim_and_retry, args=(conversation_id,),
                   help="Leave the oldest half of the earlier messages out of what is sent.")


def keep_seen(seen: visible_ttft.Seen) -> str | None:
    """The browser's visible TTFT for a reply: saved with it and its run, shown under the metrics."""
    store.record_visible_ttft(seen.target, seen.seconds)
    message = store.get_message(seen.target)
    return visible_ttft.saved_line((message or {}).get("metrics") or {})


def near_miss_text(g) -> str:
    """Live moderation hint: which stop rule the partial reply is getting close to."""
    if g.rules is None or g.t_sent is None or g.is_finished:
        return ""
    near = [n for n in g.rules.near_misses(g.text, elapsed=time.perf_counter() - g.t_sent,
                                           tokens=g.content_chunk_count, reasoning=g.reasoning,
                                           thinking_tokens=g.reasoning_chunk_count)
            if n.progress >= 0.5]
    return "🟠 " + " · ".join(n.describe() for n in near) if near else ""


def show_live(reply, draw_history: Callable[[], None] = lambda: None) -> None:
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
        slots.actions.button("Stop", key="stop-live", on_click=g.stop, type="primary",
                             help="Stop the reply: the connection is closed and the server "
                                  "stops generating.")
    panel = ctx.metrics_panel()
    shown = (False, False)   # (thinking, answer) already on screen
    history_pending = True
    restarts = g.answer_restarts
    next_frame = 0.0
    while True:
        finished = g.is_finished
        # The first text (of the thinking, of the answer) goes out at once, not at the next
        # frame: that is the visible TTFT.
        if finished or (bool(g.reasoning), bool(g.text)) != shown \
                or time.perf_counter() >= next_frame:
            next_frame = time.perf_counter() + FRAME_S
            # One snapshot for the chat's timer and the panel's, so they agree; computed only
            # when one of them shows it (it costs time that grows with the reply).
            waiting_shown = not g.token_times and not finished
            figures = metrics.current(g) if waiting_shown or panel.due(g) else None
            thinking.render(g)
            if g.answer_restarts != restarts:   # text before a late </think> was thinking
                restarts = g.answer_restarts
                live.reset()
            live.render(reply.text, growing=not finished)
            shown = (bool(g.reasoning), bool(g.text))
            if history_pending and (any(shown) or finished):
                history_pending = False
                draw_history()
            waiting.show(status_text(g, figures) if waiting_shown else "")
            near_slot.show(near_miss_text(g))
            if figures is not None:
                panel.update(g, figures)
        if finished:
            break
        time.sleep(POLL_S)
        # Reading session state is a Streamlit yield point: a click (Stop) ends this run here at
        # once, and its callback runs first thing in the next run, without a frame's worth of wait.
        state.get("_yield_point")
    slots.live_status.empty()
    reply.saved.wait(5)
    save_note = None
    if not reply.saved.is_set() or reply.save_problem:
        save_note = reply.save_problem or ("Saving this reply is taking long (the database is "
                                           "busy). It stays here and is saved as soon as the "
                                           "database can be written.")
    saved = store.get_message(reply.message_id) or {}
    if g.rule_hit is not None and options.hide_matches and saved:
        live.replace(shown_content(saved, hide_matches=True))
    with slots.outcome.container():
        render_outcome(g.state, g.error.message if g.error else None,
                       saved.get("summary") or metrics.summary_line(metrics.final_metrics(g)),
                       note=rule_note(g.rule_hit.describe(), options.hide_matches)
                       if g.rule_hit else None,
                       cut_off=g.finish_reason == "length")
        if save_note:
            st.warning(save_note, icon="💾")
    panel.update(g)
    state.last_generation = g
    replies.pop(reply.conversation_id, None)
    ctx.conversations.mark_busy()
    # The finished reply gets its actions in place, without a re-run that would re-send the chat.
    path = store.conversation_path(reply.conversation_id)
    if path and path[-1]["id"] == reply.message_id:
        with slots.actions.container():
            message_actions(reply.conversation_id, path[-1], True)
    else:   # the chat moved on in another tab, or was deleted there: the next run redraws it
        slots.actions.empty()


# A new message is taken before anything is drawn, so this run shows it, starts its reply and
# streams it: no re-run between Enter and the first frame of the reply.
prompt = st.chat_input("Message StreamChat", key="chat_input")
prompt = prompt or state.pop("pending_prompt", None)
conversation_id = current_conversation_id(store)
if prompt:
    conversation_id = send(conversation_id, prompt)
ctx.conversations.draw()

active = replies.get(conversation_id) if conversation_id else None
messages = store.conversation_path(conversation_id) if conversation_id else []
if active is None and messages and messages[-1]["state"] == "streaming":
    # Still streaming in this process (the page was reloaded mid-reply): show it live again.
    active = flusher.live(messages[-1]["id"])
    if active is not None:
        replies[conversation_id] = active

st.caption(f"Model: **{options.model_label}**")
if trimmed.get(conversation_id):
    n_left_out = left_out(messages, trimmed[conversation_id])
    st.caption(f"✂️ The {n_left_out} oldest messages are left out of what is sent "
               "to the model (they were too long for its context).")


def draw_messages(shown: list[dict]) -> None:
    for message in shown:
        is_last = message is messages[-1]
        interrupted = message["state"] == "streaming" and flusher.live(message["id"]) is None
        render_message(message, interrupted=interrupted, hide_matches=options.hide_matches,
                       allow_images=options.allow_images,
                       actions=lambda m=message, last=is_last: message_actions(conversation_id, m, last))


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
    st.code(unsent_text[:UNSENT_PREVIEW] + ("\n…" if len(unsent_text) > UNSENT_PREVIEW else ""),
            language=None, wrap_lines=True)
    row = st.container(horizontal=True, gap="small")
    if len(unsent_text) <= MAX_MESSAGE_CHARS:
        row.button("Send again", key="send-unsent", on_click=queue_prompt, args=(unsent_text,))
    row.download_button("⬇ Your message as a file", unsent_text, file_name="message.txt",
                        mime="text/plain", on_click="ignore", key="unsent-download")
    row.button("Discard", key="discard-unsent", on_click=state.pop, args=("unsent", None))

if not messages:
    st.markdown("#### Try one of these")
    columns = st.columns(2)
    for i, example in enumerate(EXAMPLE_PROMPTS):
        columns[i % 2].button(example, key=f"example-{i}", on_click=queue_prompt, args=(example,),
                              width="stretch")

if active is not None:
    with recent_box:
        show_live(active, draw_history)
elif state.get("last_generation") is not None:
    ctx.metrics_panel().update(state.last_generation)
else:
    ctx.metrics_panel().show_idle()
follow_background_replies()   # a reply in another chat of this session may still be running
visible_ttft.probe(ctx.seen_slot, page="chat", target=state.get("seen_target"), on_seen=keep_seen)
