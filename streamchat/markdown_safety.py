"""Markdown that cannot break the page: what the chat sends to st.markdown, made safe first.

Three things in model output (and in what a user pastes) hurt the browser rather than the app:

* Deep nesting. React renders nested lists, quotes and emphasis recursively: 10,000 levels in a
  20 KB message froze the tab for a minute and ended in "RangeError: Maximum call stack size
  exceeded". A block nested deeper than MAX_DEPTH, or longer than MAX_BLOCK_CHARS (some Markdown
  constructs cost the browser quadratic time), is shown as plain text with a caption saying why.
* One huge growing block. Re-sending the growing block every frame is quadratic in its length.
  `LiveMarkdown` freezes long blocks in segments while they grow (a long code block is sent as
  finished pieces of code, a block shown as plain text as appended plain text), and replaces
  the segments by the whole block once, when it ends: about 2x the text in websocket bytes.
* Remote images. `![alt](url)` makes the browser fetch `url` (a tracking pixel). Unless the user
  allows images, every image becomes a link "🖼 alt" to the same url (reference-style ones too).
  Error texts are not Markdown at all: `escape_markdown` shows them as written.

A fenced code block is never left inside a Markdown element: it becomes a "code" piece that the
UI renders with st.code. So what this module takes for code is code in the browser too, and all
other text, whatever the browser's parser makes of it, has had its images taken out.

Plain Python (no Streamlit), linear time: each function is a few regular-expression passes.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from .blocks import BlockSplitter, Fence, closes_fence, fence_opener

MAX_DEPTH = 32  # nesting levels (lists, quotes, emphasis, brackets) rendered as Markdown
MAX_BLOCK_CHARS = 20_000  # longer Markdown blocks (paragraphs, lists, tables) are shown as plain text
MAX_CODE_CHARS = 100_000  # longer code blocks are shown without syntax highlighting
SEGMENT_CHARS = 2_000  # a growing long block is frozen in pieces of at least this many characters
# A growing paragraph is re-rendered whole each frame (15/s): frozen in smaller pieces, so a model
# thinking aloud in one paragraph at 100 tok/s costs tens, not hundreds, of bytes per token.
PARAGRAPH_SEGMENT_CHARS = 600
IMAGE_MARK = "🖼"
_WORD_JOINER = "\u2060"  # invisible: keeps "!" and "[" apart inside inline code


@dataclass(frozen=True)
class Piece:
    """One element of a rendered message.

    kind: "markdown" (st.markdown, HTML off), "code" (st.code in `language`, None: no
    highlighting), "plain" (text shown as written, st.text), "note" (st.caption: why the next
    piece is shown as it is)."""

    kind: str
    text: str
    language: str | None = None


# ---------------------------------------------------------------- fences


def dedent(code: str, indent: int) -> str:
    """Remove up to `indent` leading spaces from every line (what CommonMark does in a fence)."""
    if not indent:
        return code
    return re.sub(rf"(?m)^ {{1,{indent}}}", "", code)


def split_fence(block: str) -> tuple[Fence, str] | None:
    """(fence, code) when `block` is a fenced code block (closed or not), else None."""
    first, _, rest = block.partition("\n")
    fence = fence_opener(first)
    if fence is None:
        return None
    lines = rest.split("\n") if rest else []
    if lines and closes_fence(lines[-1], fence):
        lines.pop()
    return fence, dedent("\n".join(lines), fence.indent)


# ---------------------------------------------------------------- nesting

# Container markers at the start of a line: block quotes, bullets, ordered-list numbers.
_PREFIX = re.compile(r"^(?:[ \t]*(?:>|(?:[-+*]|\d{1,9}[.)])(?=[ \t]|$)))*[ \t]*", re.M)
_LIST_MARKER = re.compile(r"[-+*]|\d{1,9}[.)]")
_INLINE = re.compile(r"\\.|[\[\]]|[*_~]+", re.S)


def nesting_depth(md: str) -> int:
    """An upper estimate of how deeply the browser would nest elements for this Markdown: the
    containers opened on one line (each `>`, each list marker, every 2 columns of indentation),
    and the deepest nesting of matched brackets and of matched emphasis delimiters (2 a level)."""
    depth = _container_depth(md)
    if depth > MAX_DEPTH:
        return depth
    return max(depth, *_inline_depths(md))


def _container_depth(md: str) -> int:
    depth = 0
    for m in _PREFIX.finditer(md):
        prefix = m.group()
        if not prefix:
            continue
        quotes = prefix.count(">")
        lists = len(_LIST_MARKER.findall(prefix))
        spaces = prefix.count(" ") + 4 * prefix.count("\t") - lists - quotes  # a space per marker
        depth = max(depth, quotes + lists + max(0, spaces) // 2)
    return depth


def _inline_depths(md: str) -> tuple[int, int]:
    """(bracket depth, emphasis depth) of the pairs that match, as CommonMark pairs them (roughly:
    a closer takes the nearest opener of its kind; unmatched delimiters in between are text)."""
    events: list[tuple[int, int, int]] = []  # (position, change, kind: 0 bracket 1 emphasis)
    brackets: list[int] = []
    stack: list[list[Any]] = []  # open emphasis runs: [char, length left, position]
    tops: dict[str, list[int]] = {"*": [], "_": [], "~": []}  # their indices in `stack`, by char
    for m in _INLINE.finditer(md):
        token, pos = m.group(), m.start()
        if token[0] == "\\":
            continue
        if token == "[":
            brackets.append(pos)
        elif token == "]":
            if brackets:
                events += [(brackets.pop(), 1, 0), (pos, -1, 0)]
        else:
            char, left = token[0], len(token)
            before = md[pos - 1] if pos else " "
            after = md[m.end()] if m.end() < len(md) else " "
            if not before.isspace():  # may close
                while left and tops[char]:
                    k = tops[char][-1]
                    while len(stack) > k + 1:  # delimiters inside the pair stay text
                        tops[stack.pop()[0]].pop()
                    opener = stack[k]
                    used = min(left, opener[1])
                    events += [(opener[2], used, 1), (pos, -used, 1)]
                    opener[1] -= used
                    left -= used
                    if not opener[1]:
                        stack.pop()
                        tops[char].pop()
            if left and not after.isspace():  # may open
                tops[char].append(len(stack))
                stack.append([char, left, pos])
    events.sort()
    level, best = [0, 0], [0, 0]
    for _, change, kind in events:
        level[kind] += change
        best[kind] = max(best[kind], level[kind])
    return best[0], best[1] // 2


# ---------------------------------------------------------------- images

_ESCAPE_OR_IMAGE = re.compile(r"\\[\s\S]|!\[")
_BACKTICKS = re.compile(r"\\`|`+")
# The label of an image right after "![" (no brackets inside, at most 999 characters as in
# CommonMark) and what follows it: "(" inline, "[]" collapsed, "[" full reference, else shortcut.
_LABEL = re.compile(r"((?:[^\[\]\\]|\\[\s\S]){0,999})\](\[\])?(?=(.?))")
_DEFINITION = re.compile(r"^[ \t>*+-]*(?:\d{1,9}[.)][ \t]*)?\[((?:[^\[\]\\]|\\[\s\S]){1,999})\]:", re.M)


def _label_key(label: str) -> str:
    return " ".join(label.split()).casefold()


def reference_labels(md: str) -> set[str]:
    """Labels of the link reference definitions (`[label]: url`) in `md`, normalised."""
    return {_label_key(m.group(1)) for m in _DEFINITION.finditer(md)}


def _code_spans(md: str) -> list[tuple[int, int]]:
    """(start, end) of inline code spans: a backtick run closed by the next run of equal length."""
    runs = [(m.start(), m.end()) for m in _BACKTICKS.finditer(md) if m.group()[0] == "`"]
    following: dict[int, int] = {}
    next_of = [-1] * len(runs)
    for i in range(len(runs) - 1, -1, -1):
        n = runs[i][1] - runs[i][0]
        next_of[i] = following.get(n, -1)
        following[n] = i
    spans, i = [], 0
    while i < len(runs):
        j = next_of[i]
        if j < 0:
            i += 1
            continue
        spans.append((runs[i][1], runs[j][0]))
        i = j + 1
    return spans


def neutralize_images(md: str, labels: set[str] | None = None) -> str:
    """`md` with no image in it: `![alt](url)` -> `[🖼 alt](url)`, a link to the same url;
    `![alt][ref]` likewise; `![ref]` and `![ref][]` -> `[🖼 ref][ref]` when `ref` is defined
    (`labels`: the defined labels, by default those in `md`). Inside inline code, where a link
    would not render either, "![" keeps its look with an invisible word joiner between the two.
    Whatever the browser's parser makes of the text, no "!" stays right before a "[" that could
    open an image (an escaped "\\!" or a character reference cannot start one)."""
    if "![" not in md:
        return md
    if labels is None:
        labels = reference_labels(md)
    spans = _code_spans(md) if "`" in md else []
    out: list[str] = []
    last = 0  # md[:last] is in `out`
    span = 0
    for m in _ESCAPE_OR_IMAGE.finditer(md):
        if m.group()[0] == "\\":
            continue
        p = m.start()
        while span < len(spans) and spans[span][1] <= p:
            span += 1
        in_code = span < len(spans) and spans[span][0] <= p
        out.append(md[last:p])
        last = m.end()
        if in_code:
            out.append("!" + _WORD_JOINER + "[")
            continue
        if p and md[p - 1] == "!" and not _escaped(md, p - 1):
            # "!![x](y)": the "!" before would make our "[" an image again.
            out[-1] = out[-1][:-1] + "\\!"
        out.append(f"[{IMAGE_MARK} ")
        label = _LABEL.match(md, last)
        if (
            label
            and (label.group(2) is not None or label.group(3) not in ("(", "["))
            and _label_key(label.group(1)) in labels
        ):
            # shortcut ![ref] or collapsed ![ref][]: name the reference, or it would not resolve
            out.append(f"{label.group(1)}][{label.group(1)}]")
            last = label.end()
    out.append(md[last:])
    return "".join(out)


def _escaped(md: str, i: int) -> bool:
    """Whether md[i] is backslash-escaped (an odd number of backslashes right before it)."""
    n = 0
    while i - n - 1 >= 0 and md[i - n - 1] == "\\":
        n += 1
    return n % 2 == 1


# ---------------------------------------------------------------- plain text

_MARKUP = re.compile(
    r"[\\`*\[\]<>~|$]|&(?=#?\w+;)|:(?=[A-Za-z_])"
    r"|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])"
)
_LINE_START = re.compile(r"^[ \t]*(?:([#+=-])|(\d{1,9})([.)]))", re.M)


def escape_markdown(text: str) -> str:
    """`text` as Markdown that renders exactly as written (for st.error, st.caption…): every
    character that could start markup is backslash-escaped, including Streamlit's own `:name[…]`
    and `:emoji:`, line by line with hard breaks. Ordinary words and sentences are unchanged."""
    text = _MARKUP.sub(lambda m: "\\" + m.group(), text)
    text = _LINE_START.sub(lambda m: m.group().lstrip(" \t")[:-1] + "\\" + m.group()[-1], text)
    lines = [line.lstrip(" \t") for line in text.replace("\r\n", "\n").split("\n")]
    return "  \n".join(lines)


# ---------------------------------------------------------------- blocks -> pieces


def too_much(md: str) -> str | None:
    """Why a Markdown block is shown as plain text (the caption), or None when it may render."""
    depth = _container_depth(md)
    if depth <= MAX_DEPTH and len(md) <= MAX_BLOCK_CHARS:
        depth = max(depth, *_inline_depths(md))
    if depth > MAX_DEPTH:
        return (
            f"Shown as plain text: this block is nested about {depth:,} levels deep "
            f"(Markdown is rendered up to {MAX_DEPTH})."
        )
    if len(md) > MAX_BLOCK_CHARS:
        return (
            f"Shown as plain text: this block is {len(md):,} characters long "
            f"(Markdown is rendered for blocks up to {MAX_BLOCK_CHARS:,})."
        )
    return None


def code_pieces(code: str, language: str | None) -> list[Piece]:
    if len(code) > MAX_CODE_CHARS:
        return [
            Piece(
                "note",
                f"Code shown without highlighting: {len(code):,} characters "
                f"(highlighted up to {MAX_CODE_CHARS:,}).",
            ),
            Piece("code", code),
        ]
    return [Piece("code", code, language)]


def block_pieces(block: str, *, labels: set[str] | None = None, allow_images: bool = False) -> list[Piece]:
    """The pieces of one block (a paragraph, a list, a fenced code block…)."""
    fenced = split_fence(block)
    if fenced is not None:
        return code_pieces(fenced[1], fenced[0].language)
    note = too_much(block)
    if note:
        return [Piece("note", note), Piece("plain", block)]
    return [Piece("markdown", block if allow_images else neutralize_images(block, labels))]


def merge_markdown(pieces: list[Piece]) -> list[Piece]:
    """Consecutive Markdown pieces as one (one element, and lists spanning blank lines stay one list)."""
    out: list[Piece] = []
    run: list[str] = []  # texts of the Markdown pieces since the last other piece
    for piece in pieces + [Piece("end", "")]:
        if piece.kind == "markdown":
            run.append(piece.text)
            continue
        if run:
            out.append(Piece("markdown", "\n\n".join(run)))
            run = []
        if piece.kind != "end":
            out.append(piece)
    return out


CACHED_CHARS = 64_000  # messages up to this long keep their pieces (each re-run redraws them all)


def message_pieces(text: str, *, allow_images: bool = False) -> list[Piece]:
    """A whole message (user message, saved reply) as the pieces to render, in order."""
    if len(text) <= CACHED_CHARS:
        return list(_cached_pieces(text, allow_images))
    return _message_pieces(text, allow_images)


@functools.lru_cache(maxsize=256)
def _cached_pieces(text: str, allow_images: bool) -> tuple[Piece, ...]:
    return tuple(_message_pieces(text, allow_images))


def _message_pieces(text: str, allow_images: bool) -> list[Piece]:
    splitter = BlockSplitter()
    blocks, tail = splitter.feed(text + "\n")
    tail = tail.strip("\n")
    if tail.strip():
        blocks = blocks + [tail]
    labels = None if allow_images or "![" not in text else reference_labels(text)
    pieces: list[Piece] = []
    for block in blocks:
        pieces += block_pieces(block, labels=labels, allow_images=allow_images)
    return merge_markdown(pieces)


# ---------------------------------------------------------------- a growing reply


@dataclass
class Frame:
    """What one frame of a growing reply changes on the page.

    ops, in order: ("append", pieces) adds elements after the finished ones; ("segment", pieces)
    adds elements to the growing long block's area (created at the end when missing);
    ("close", pieces) replaces that area by the whole finished block. tail: the growing rest
    (in the final frame: the last block, unless it had segments and was closed in place)."""

    ops: list[tuple[str, list[Piece]]] = field(default_factory=list)
    tail: list[Piece] = field(default_factory=list)


_STRUCTURED = set("|-*+>#<=")  # lists, tables, quotes, headings, HTML
_ORDERED_ITEM = re.compile(r" {0,3}\d{1,9}[.)]\s")


def _paragraph_cut(text: str, start: int, lo: int, hi: int) -> int | None:
    """An offset in [lo, hi) just after a sentence end (else a space) where the block that
    begins at `start` leaves no code span, link or emphasis open; None when there is none."""
    for pattern in (_SENTENCE_END, _SPACE):
        for match in reversed(list(pattern.finditer(text, lo, hi))):
            cut = match.end()
            # (12 characters after the cut are enough to tell "12345678. " from a word)
            if cut + 12 > len(text) or text[cut] in _STRUCTURED or _ORDERED_ITEM.match(text, cut):
                continue  # the next piece (unknown yet, or a list, quote, heading) must not
                # begin a block of its own
            head = text[start:cut]
            if (
                head.count("`") % 2 == 0
                and head.count("[") == head.count("]")
                and head.count("(") == head.count(")")
                and head.count("*") % 2 == 0
                and head.count("_") % 2 == 0
            ):
                return cut
    return None


_SENTENCE_END = re.compile(r"[.!?]\s+")
_SPACE = re.compile(r"\s+")


class LiveMarkdown:
    """Plans each frame of a reply that only grows, so websocket bytes stay linear in its length:
    finished blocks are sent once; a long open block is frozen in segments of `segment_chars`
    (code as code, a block over the caps as plain text); only the last unfrozen part is re-sent."""

    def __init__(self, *, allow_images: bool = False, segment_chars: int = SEGMENT_CHARS) -> None:
        self._splitter = BlockSplitter()
        self._allow_images = allow_images
        self._segment_chars = segment_chars
        self._block_start = -1  # where the open block begins in the text
        self._frozen = 0  # text before this offset is on the page as segments
        self._segmented = False  # the open block has an area of segments on the page
        self._plain = False  # the open Markdown block is shown as plain text
        self._final_text: str | None = None  # the text of the last final frame
        self._final_tail: list[Piece] = []

    def _pieces(self, block: str) -> list[Piece]:
        return block_pieces(block, allow_images=self._allow_images)

    def feed(self, text: str, *, final: bool = False) -> Frame:
        """`text`: the whole reply so far. `final`: it is complete (the open block ends too)."""
        frame = Frame()
        if final:
            if text == self._final_text:  # asked again (a finished side of Compare): no change
                return Frame(tail=list(self._final_tail))
            self._final_text = text
            if not text.endswith("\n"):
                text += "\n"
        new_blocks, tail = self._splitter.feed(text)
        for block in new_blocks:
            frame.ops.append(("close" if self._segmented else "append", self._pieces(block)))
            self._segmented = False
        start = self._splitter.tail_start
        if start != self._block_start:
            self._block_start, self._frozen, self._segmented, self._plain = start, start, False, False
        if final:  # the open block is finished too: whole, in place of its segments, or as the tail
            pieces = self._pieces(tail.strip("\n")) if tail.strip() else []
            if self._segmented:
                frame.ops.append(("close", pieces))
            else:
                frame.tail = pieces
            self._final_tail = list(frame.tail)
            return frame
        if self._splitter.fence is not None:
            frame.tail = self._fence_tail(text, start, frame)
        else:
            frame.tail = self._markdown_tail(text, start, frame)
        return frame

    def _fence_tail(self, text: str, start: int, frame: Frame) -> list[Piece]:
        fence = self._splitter.fence
        assert fence is not None  # (called inside a fence)
        self._frozen = max(self._frozen, text.index("\n", start) + 1)  # after the opening line
        done = text.rfind("\n", self._frozen) + 1  # end of the last whole line
        if done - self._frozen < self._segment_chars <= (len(text) - self._frozen) // 2:
            done = len(text)  # one very long line: cut it too (the whole block replaces the cuts)
        if done - self._frozen >= self._segment_chars:
            code = self._code(text, self._frozen, done - (text[done - 1] == "\n"), fence)
            frame.ops.append(("segment", [Piece("code", code, fence.language)]))
            self._frozen, self._segmented = done, True
        return [Piece("code", self._code(text, self._frozen, len(text), fence), fence.language)]

    def _freeze_paragraph(self, text: str, start: int, frame: Frame) -> None:
        """A long growing paragraph (a model thinking aloud in one paragraph) is frozen in
        segments too, cut after a sentence or a word where no inline mark is left open; the
        whole paragraph replaces them when it ends. Lists, tables, quotes and headings are left
        whole: cutting them would show a broken structure meanwhile."""
        if text[start : start + 1] in _STRUCTURED or _ORDERED_ITEM.match(text, start):
            return
        size = min(self._segment_chars, PARAGRAPH_SEGMENT_CHARS)
        while len(text) - self._frozen >= 2 * size:
            cut = _paragraph_cut(text, start, self._frozen + size, len(text) - size // 2)
            if cut is None:
                return
            part = text[self._frozen : cut].strip("\n")
            if too_much(part) is not None:  # a piece must be as safe as the whole
                return
            frame.ops.append(
                ("segment", [Piece("markdown", part if self._allow_images else neutralize_images(part))])
            )
            self._frozen, self._segmented = cut, True

    @staticmethod
    def _code(text: str, a: int, b: int, fence: Fence) -> str:
        """text[a:b] without the fence's indentation (not on a first line cut mid-way)."""
        if a and text[a - 1] != "\n":
            first, nl, rest = text[a:b].partition("\n")
            return first + nl + dedent(rest, fence.indent)
        return dedent(text[a:b], fence.indent)

    def _markdown_tail(self, text: str, start: int, frame: Frame) -> list[Piece]:
        if not self._plain:
            body = text[start:].strip("\n")
            note = too_much(body) if body.strip() else None
            if note is None:
                self._freeze_paragraph(text, start, frame)
                body = text[self._frozen :].strip("\n")
                return (
                    [Piece("markdown", body if self._allow_images else neutralize_images(body))]
                    if body.strip()
                    else []
                )
            self._plain = self._segmented = True
            frame.ops.append(("segment", [Piece("note", note)]))
        if len(text) - self._frozen >= self._segment_chars:
            cut = text.rfind("\n", self._frozen) + 1
            if cut - self._frozen < self._segment_chars // 2:
                cut = len(text)  # no line end near: cut anywhere, it is shown as plain text
            frame.ops.append(("segment", [Piece("plain", text[self._frozen : cut].rstrip("\n"))]))
            self._frozen = cut
        rest = text[self._frozen :]
        return [Piece("plain", rest)] if rest.strip() else []
