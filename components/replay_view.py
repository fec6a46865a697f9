"""▶ Replay: a recorded reply played again in the live reply's slots, with the live metrics panel.

A replay (streamchat.replay.Replay) is a Generation, so it is drawn by the same pieces as a live
reply — LiveReply for the text, LiveThinking for the thinking, MetricsPanel for the figures —
and looks exactly like the original: first words at the recorded TTFT, the same pace, the same
figures at the end. It is marked "🔁 replay of <date>, <model>" so nobody takes it for live, and
Stop stops it. Like a live reply it lives in session state, so a click elsewhere re-attaches.

Three calls (the pages wire them; nothing here draws unless called):
  replay_controls(store, key=…, message_id=… | run_id=…)  speed choice + ▶ (under a reply / a run)
  play_replays([(replay, slots, panel)], key=…)           the frames, until done or stopped
  replay_message(store, message, metrics_slot=…)          both for one saved reply, in place
  replay_compare_run(store, run_id, key=…)                a Compare pair side by side
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from streamchat import metrics, replay
from streamchat.markdown_safety import escape_markdown
from streamchat.replay import Replay

from .frames import run_frames
from .live_reply import CaptionSlot, LiveReply
from .message_view import MessageSlots, render_message
from .metrics_panel import MetricsPanel, status_text
from .thinking_view import LiveThinking

SPEED_OPTIONS = list(replay.SPEEDS)  # "1×", "2×", "5×", "instant"
STATE_KEY = "replays"  # session state: key -> the replays playing there


def _playing() -> dict[str, list[Replay]]:
    return st.session_state.setdefault(STATE_KEY, {})


def active_replays(key: str) -> list[Replay] | None:
    """The replays started under `key` that are still playing (a re-run re-attaches to them)."""
    replays = _playing().get(key)
    if replays and not all(r.is_finished for r in replays):
        return replays
    return None


def _start(key: str, recordings: list, speed_label: str) -> None:
    for old in _playing().get(key) or []:
        old.stop()
    # The clock starts at the click (this callback runs first thing in the run it causes): the
    # first words come at the recorded TTFT after ▶, while the page is drawn meanwhile.
    _playing()[key] = replay.start_together(recordings, replay.SPEEDS.get(speed_label, 1.0))


def _stop(key: str) -> None:
    for r in _playing().get(key) or []:
        r.stop()


def mark(r: Replay) -> str:
    return f"🔁 {r.label} · {replay.speed_label(r.speed)}"


def replay_controls(
    store,
    *,
    key: str,
    message_id: str | None = None,
    run_id: int | None = None,
    group: bool = False,
    container=None,
) -> bool:
    """The speed choice and ▶ Replay for a recorded reply (or run; `group`: its Compare pair),
    or a "no recording" note. True when a replay is playing under `key` (just started, or
    still going): the caller then draws it with play_replays."""
    target = container if container is not None else st
    if group and run_id is not None:
        recordings = replay.load_group(store, run_id)
    else:
        rec = replay.load(store, message_id=message_id, run_id=run_id)
        recordings = [rec] if rec is not None else []
    if not recordings:
        target.caption(f"🔁 {replay.NO_RECORDING}")
        return False
    row = target.container(
        horizontal=True, vertical_alignment="center", gap="small", key=f"replay-controls-{key}"
    )
    speed = speed_choice(row, key)
    row.button(
        "▶ Replay",
        key=f"replay-start-{key}",
        on_click=_start,
        args=(key, recordings, speed),
        help="Play this reply again as it streamed: first words at its recorded TTFT, "
        "the same pace, the same figures. No model is asked.",
    )
    return active_replays(key) is not None


def speed_choice(container, key: str) -> str:
    """1×, 2×, 5× or instant; 1× unless changed."""
    chosen = container.segmented_control(
        "Replay speed",
        SPEED_OPTIONS,
        default=SPEED_OPTIONS[0],
        key=f"replay-speed-{key}",
        label_visibility="collapsed",
    )
    return chosen or SPEED_OPTIONS[0]


def replay_menu(store, *, key: str, message_id: str | None = None, run_id: int | None = None) -> None:
    """🔁 Replay under a recorded reply: a small menu with the speed and ▶ Play. The recording
    is read when ▶ is clicked, not each time the chat is drawn."""
    menu = st.popover(
        "🔁 Replay",
        type="tertiary",
        key=f"replay-menu-{key}",
        help="Play this reply again as it streamed: first words at its recorded TTFT, the same "
        "pace, the same figures. No model is asked.",
    )
    speed = speed_choice(menu, key)
    menu.button(
        "▶ Play",
        key=f"replay-start-{key}",
        type="primary",
        on_click=_start_recorded,
        args=(store, key, message_id, run_id, speed),
    )


def _start_recorded(store, key: str, message_id: str | None, run_id: int | None, speed: str) -> None:
    recording = replay.load(store, message_id=message_id, run_id=run_id)
    if recording is None:
        st.toast(replay.NO_RECORDING, icon="🔁")
        return
    _start(key, [recording], speed)


def play_replays(
    items: list[tuple[Replay, Any, MetricsPanel]], *, key: str, allow_images: bool = False
) -> None:
    """Draw replays frame by frame until they end or Stop is clicked. Each item: the replay,
    the message slots it fills (components.message_view.MessageSlots, or anything with
    thinking/body/live_status/outcome/actions) and its metrics panel."""
    drawn = []
    for r, slots, panel in items:
        slots.thinking.empty()
        thinking = LiveThinking(slots.thinking)
        live = LiveReply(slots.body, allow_images=allow_images)
        with slots.live_status.container():
            st.caption(mark(r))
            waiting = CaptionSlot(st)
        drawn.append((r, slots, panel, thinking, live, waiting))
    first_slots = items[0][1]
    if any(r.is_active for r, _, _ in items):
        first_slots.actions.button(
            "⏹ Stop replay",
            key=f"replay-stop-{key}",
            on_click=_stop,
            args=(key,),
            type="primary",
            help="Stop the replay.",
        )
    shown: dict[int, bool] = {}

    def words_changed() -> bool:
        return any(bool(r.text or r.reasoning) != shown.get(id(r), False) for r, *_ in drawn)

    def frame(finished: bool) -> None:
        for r, _slots, panel, thinking, live, waiting in drawn:
            waiting_shown = not r.token_times and not r.is_finished
            figures = metrics.current(r) if waiting_shown or panel.due(r) else None
            thinking.render(r)
            live.render(r.full_text, growing=not r.is_finished)
            shown[id(r)] = bool(r.text or r.reasoning)
            waiting.show(status_text(r, figures) if waiting_shown and figures else "")
            if figures is not None:
                panel.update(r, figures)

    run_frames(frame, lambda: all(r.is_finished for r, *_ in drawn), urgent=words_changed)
    for r, slots, panel, thinking, _live, waiting in drawn:
        waiting.show("")
        thinking.fold(r)
        panel.update(r)
        m = metrics.final_metrics(r)
        end = "⏹ replay stopped" if r.state == "stopped" and r.recording.state != "stopped" else ""
        slots.outcome.caption(" · ".join(p for p in (metrics.summary_line(m), end) if p))
    first_slots.actions.empty()


def replay_message(
    store,
    message: dict,
    *,
    metrics_slot,
    wide: bool = False,
    allow_images: bool = False,
    key: str | None = None,
) -> None:
    """A saved reply with ▶ Replay under it: drawn from the store as usual, or — while its
    replay plays — replayed in the same place, the figures in `metrics_slot`'s panel."""
    key = key or f"msg-{message['id']}"
    if active_replays(key) is None:

        def controls() -> None:
            replay_controls(store, key=key, message_id=message["id"])

        render_message(
            message, allow_images=allow_images, actions=controls if message["role"] == "assistant" else None
        )
        return  # (▶'s callback starts the replay before the next run, which plays it here)
    slots = MessageSlots("assistant", f"replay-{message['id']}")
    replays = _playing()[key]
    play_replays(
        [(replays[0], slots, MetricsPanel(metrics_slot, wide=wide))], key=key, allow_images=allow_images
    )


def replay_compare_run(store, run_id: int, *, key: str | None = None) -> None:
    """A comparison's round, its lanes side by side, one ▶ for all at their original timing."""
    key = key or f"run-{run_id}"
    recordings = replay.load_group(store, run_id)
    if not recordings:
        st.caption(f"🔁 {replay.NO_RECORDING}")
        return
    if recordings[0].prompt:
        with st.chat_message("user"):
            st.text(recordings[0].prompt)
    playing = replay_controls(store, key=key, run_id=run_id, group=True)
    columns = st.columns(len(recordings))
    items = []
    for column, rec in zip(columns, recordings, strict=True):
        with column:
            st.markdown(f"**{escape_markdown(rec.heading)}**")  # names come from servers
            panel = MetricsPanel(st.container(), wide=False)
            slots = MessageSlots("assistant", f"replay-{key}-{rec.side}-{id(rec)}")
        items.append((rec, slots, panel))
    if playing:
        replays = _playing()[key]
        play_replays(
            [(r, slots, panel) for r, (_, slots, panel) in zip(replays, items, strict=True)], key=key
        )
        return
    for rec, slots, panel in items:  # not playing: the reply as recorded, its final figures
        r = replay.Replay(rec, replay.INSTANT).start()
        r.wait(2)
        with slots.body:
            st.text(rec.prefix + rec.text, width="stretch")
        panel.update(r)
        slots.outcome.caption(metrics.summary_line(metrics.final_metrics(r)))
