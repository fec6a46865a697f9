"""The frame loop of a live page (the chat's reply, Compare's two sides): draw at most FRAME_S
apart, not once per token, until the work is finished."""

from __future__ import annotations

import time
from collections.abc import Callable

import streamlit as st

FRAME_S = 1 / 15  # render rate: frames, not tokens
POLL_S = 0.01  # how often a pending click or urgent change is noticed between frames


def run_frames(
    draw: Callable[[bool], None], is_finished: Callable[[], bool], urgent: Callable[[], bool] = lambda: False
) -> None:
    """Call `draw(finished)` once per frame, at once when `urgent()` (e.g. the first words
    arrived), and a last time when `is_finished()`."""
    next_frame = 0.0
    while True:
        finished = is_finished()
        if finished or urgent() or time.perf_counter() >= next_frame:
            next_frame = time.perf_counter() + FRAME_S
            draw(finished)
        if finished:
            return
        time.sleep(POLL_S)
        # Reading session state is a Streamlit yield point: a click (Stop) ends this run here at
        # once, and its callback runs first thing in the next run, without a frame's worth of wait.
        st.session_state.get("_yield_point")
