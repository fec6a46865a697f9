"""Split a growing Markdown text into finished blocks and the growing tail.

The chat view sends each finished block (a paragraph, a closed code fence) to the browser once
and re-renders only the tail each frame, so a reply costs bytes linear in its length. The text
only grows, so the splitter scans each character once: O(new text) per frame.
(streamchat.markdown_safety.LiveMarkdown also freezes a long open block in segments.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_OPENER = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")


@dataclass(frozen=True)
class Fence:
    indent: int  # spaces before the opening marker: removed from each content line (CommonMark)
    marker: str  # the opening run, e.g. "```" or "~~~~"
    language: str | None


def fence_opener(line: str) -> Fence | None:
    """The fence a line opens (CommonMark: up to 3 spaces, 3+ backticks or tildes; a backtick
    fence's info string has no backtick), else None."""
    m = _OPENER.fullmatch(line.rstrip("\r\n"))
    if not m or (m.group(1)[0] == "`" and "`" in m.group(2)):
        return None
    info = m.group(2).strip().split()
    language = re.sub(r"[^\w+#.-]", "", info[0]) if info else ""
    return Fence(len(line) - len(line.lstrip(" ")), m.group(1), language or None)


def closes_fence(line: str, fence: Fence) -> bool:
    """A closing fence: up to 3 spaces, at least as many of the same marker, nothing after."""
    stripped = line.strip()
    return (
        len(line) - len(line.lstrip(" ")) <= 3
        and stripped[:1] == fence.marker[0]
        and len(stripped) >= len(fence.marker)
        and stripped == stripped[0] * len(stripped)
    )


class BlockSplitter:
    def __init__(self) -> None:
        self.blocks: list[str] = []  # finished blocks, in order
        self._start = 0  # where the unfinished tail begins in the text
        self._scan = 0  # start of the first line not yet classified
        self.fence: Fence | None = None  # the open code fence, if the tail is one
        self._content = False  # the tail has a non-blank line

    @property
    def tail_start(self) -> int:
        """Where the unfinished tail begins in the text (a fence's tail starts at its opening line)."""
        return self._start

    def feed(self, text: str) -> tuple[list[str], str]:
        """Take the whole text so far; return (blocks finished since the last call, tail)."""
        new: list[str] = []
        while True:
            end = text.find("\n", self._scan)
            if end < 0:
                break
            line = text[self._scan : end]
            self._scan = end + 1
            if self.fence is None:
                fence = fence_opener(line)
                if fence:
                    self._commit(text, self._line_start(text, end), new)  # text before the fence
                    self.fence = fence
                elif line.strip():
                    self._content = True
                elif self._content:
                    self._commit(text, self._scan, new)  # a blank line ends a paragraph
                else:
                    self._start = self._scan  # skip leading blank lines
            elif closes_fence(line, self.fence):
                self.fence = None
                self._commit(text, self._scan, new)  # the closing fence ends the code block
        return new, text[self._start :]

    @staticmethod
    def _line_start(text: str, line_end: int) -> int:
        return text.rfind("\n", 0, line_end) + 1

    def _commit(self, text: str, upto: int, new: list[str]) -> None:
        block = text[self._start : upto].strip("\n")
        if block.strip():
            self.blocks.append(block)
            new.append(block)
        self._start = upto
        self._content = False
