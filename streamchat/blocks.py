"""Split a growing Markdown text into finished blocks and the growing tail.

The chat view sends each finished block (a paragraph, a closed code fence) to the browser once
and re-renders only the tail each frame, so a reply costs bytes linear in its length. The text
only grows, so the splitter scans each character once: O(new text) per frame.
"""
from __future__ import annotations

import re

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


class BlockSplitter:
    def __init__(self) -> None:
        self.blocks: list[str] = []   # finished blocks, in order
        self._start = 0               # where the unfinished tail begins in the text
        self._scan = 0                # start of the first line not yet classified
        self._fence: str | None = None  # the open fence marker, e.g. "```"

    def feed(self, text: str) -> tuple[list[str], str]:
        """Take the whole text so far; return (blocks finished since the last call, tail)."""
        new: list[str] = []
        while True:
            end = text.find("\n", self._scan)
            if end < 0:
                break
            line = text[self._scan:end]
            self._scan = end + 1
            fence = _FENCE.match(line)
            if self._fence is None:
                if fence:
                    self._commit(text, self._line_start(text, end), new)  # text before the fence
                    self._fence = fence.group(1)
                elif not line.strip() and text[self._start:end].strip():
                    self._commit(text, self._scan, new)  # a blank line ends a paragraph
                elif not text[self._start:end].strip():
                    self._start = self._scan  # skip leading blank lines
            elif fence and fence.group(1)[0] == self._fence[0] and len(fence.group(1)) >= len(self._fence) \
                    and not line.strip()[len(fence.group(1)):].strip():
                self._fence = None
                self._commit(text, self._scan, new)  # the closing fence ends the code block
        return new, text[self._start:]

    @staticmethod
    def _line_start(text: str, line_end: int) -> int:
        return text.rfind("\n", 0, line_end) + 1

    def _commit(self, text: str, upto: int, new: list[str]) -> None:
        block = text[self._start:upto].strip("\n")
        if block.strip():
            self.blocks.append(block)
            new.append(block)
        self._start = upto
