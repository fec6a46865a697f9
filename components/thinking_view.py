"""A thinking model's thinking, above its answer: streamed live while it thinks, then folded into
"Thought for 1.52 s · 60 tokens", which can be opened again (also when redrawn from the store)."""

from __future__ import annotations

import time

from streamchat import metrics
from streamchat.generation import Generation

from .live_reply import CaptionSlot, LiveReply
from .message_view import folded_label, render_folded


class LiveThinking:
    """Fills the message's thinking slot frame by frame, with the answer's renderer (finished
    blocks sent once, the growing tail per frame), and folds it when the answer starts."""

    def __init__(self, slot) -> None:
        self._slot = slot
        self._header: CaptionSlot | None = None
        self._live: LiveReply | None = None
        self._folded = False

    def render(self, g: Generation) -> None:
        if self._folded or not g.reasoning:
            return
        if g.text or g.is_finished:  # the answer began (or the reply ended): fold it away
            self.fold(g)
            return
        if self._live is None:
            box = self._slot.container()
            self._header = CaptionSlot(box)
            self._live = LiveReply(box.container())
        seconds = time.perf_counter() - (g.t_first_reasoning or time.perf_counter())
        if self._header is not None:
            self._header.show(f"💭 Thinking… {seconds:.1f} s")
        self._live.render(g.reasoning)

    def fold(self, g: Generation) -> None:
        if self._folded or not g.reasoning:
            return
        self._folded = True
        m = metrics.current(g)
        label = folded_label(
            m.thinking_s.value,
            m.reasoning_tokens.value,
            m.reasoning_tokens.source,
            stopped=g.is_finished and not g.text,
        )
        render_folded(self._slot, g.reasoning, label)
