"""A reply that grows in place: finished Markdown blocks are sent once, the tail per frame.

What to send each frame is planned by streamchat.markdown_safety.LiveMarkdown: finished blocks
once, a long open block in frozen segments (replaced by the whole block when it ends), and only
the unfrozen rest re-rendered; images become links and over-deep or over-long blocks plain text.
"""

from __future__ import annotations

from typing import Any

from components.message_view import render_piece, render_pieces
from streamchat.markdown_safety import LiveMarkdown, Piece, merge_markdown, message_pieces

CURSOR = " ▌"


class LiveReply:
    def __init__(self, container, *, allow_images: bool = False) -> None:
        self._blocks_slot = container.empty()
        self._blocks = self._blocks_slot.container()
        self._tail = container.empty()
        self._allow_images = allow_images
        self._plan = LiveMarkdown(allow_images=allow_images)
        self._area: tuple[Any, Any] | None = None  # (slot, container): segments of a long open block
        self._shown_tail: tuple[Piece, ...] | None = None

    def render(self, text: str, *, growing: bool = True) -> None:
        frame = self._plan.feed(text, final=not growing)
        appended: list[Piece] = []
        for op, pieces in frame.ops:
            if op == "append":
                appended += pieces
                continue
            self._append(appended)  # keep the order of the page
            appended = []
            if op == "segment":
                if self._area is None:
                    slot = self._blocks.empty()
                    self._area = (slot, slot.container(gap=None))
                render_pieces(self._area[1], pieces)
            else:  # "close": the whole finished block instead of its segments
                # The segments' slot becomes an (invisible) empty element and the block follows
                # it. Not a new container in that slot: the browser would keep the old
                # container's elements in it (a container replacing a container inherits them).
                if self._area is not None:
                    self._area[0].empty()
                    self._area = None
                render_pieces(self._blocks, pieces)
        self._append(appended)
        tail = list(frame.tail)
        if growing and text:
            last = tail[-1] if tail else Piece("markdown", "")
            tail[-1:] = [Piece(last.kind, last.text + CURSOR, last.language)]
        self._show_tail(tuple(tail))

    def _append(self, pieces: list[Piece]) -> None:
        # One element per frame for the Markdown finished since the last frame.
        render_pieces(self._blocks, merge_markdown(pieces))

    def _show_tail(self, pieces: tuple[Piece, ...]) -> None:
        if pieces == self._shown_tail:
            return
        if not pieces:
            self._tail.empty()
        elif len(pieces) == 1:
            render_piece(self._tail, pieces[0])
        else:  # only after replace(): the tail slot held an element, so no elements are inherited
            render_pieces(self._tail.container(), list(pieces))
        self._shown_tail = pieces

    def reset(self) -> None:
        """Start over with an empty text (the answer lost its start to a late `</think>`)."""
        self._blocks_slot.empty()
        self._blocks = self._blocks_slot.container()
        self._plan = LiveMarkdown(allow_images=self._allow_images)
        self._area = None
        self._tail.empty()
        self._shown_tail = ()

    def replace(self, text: str) -> None:
        """Show `text` instead of what was streamed (e.g. with a matched part hidden)."""
        self._blocks_slot.empty()
        self._area = None
        self._show_tail(tuple(message_pieces(text, allow_images=self._allow_images)))


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
