"""A reply that grows in place: finished Markdown blocks are sent once, the tail per frame."""
from __future__ import annotations

from streamchat.blocks import BlockSplitter

CURSOR = " ▌"


class LiveReply:
    def __init__(self, container) -> None:
        self._blocks_slot = container.empty()
        self._blocks = self._blocks_slot.container()
        self._tail = container.empty()
        self._splitter = BlockSplitter()
        self._shown_tail: str | None = None

    def render(self, text: str, *, growing: bool = True) -> None:
        new_blocks, tail = self._splitter.feed(text)
        if new_blocks:
            # One element per frame for everything finished since the last frame.
            self._blocks.markdown("\n\n".join(new_blocks))
        shown = tail + CURSOR if growing and text else tail
        if shown != self._shown_tail:
            if shown:
                self._tail.markdown(shown)
            else:
                self._tail.empty()
            self._shown_tail = shown

    def replace(self, text: str) -> None:
        """Show `text` instead of what was streamed (e.g. with a matched part hidden)."""
        self._blocks_slot.empty()
        self._tail.markdown(text)
        self._shown_tail = text


class CaptionSlot:
    """A caption re-sent only when its text changes (each send costs websocket bytes)."""

    def __init__(self, container) -> None:
        self._slot = container.empty()
        self._shown: str | None = None

    def show(self, text: str) -> None:
        if text == self._shown:
            return
        if text:
            self._slot.caption(text)
        else:
            self._slot.empty()
        self._shown = text
