"""Reasoning ("thinking") in chat-completion replies: where servers put it and how to take it out.

Servers send a reasoning model's thinking in one of three forms:
  * `delta.reasoning_content` (DeepSeek's API, vLLM, SGLang, llama.cpp's llama-server),
  * `delta.reasoning` (newer vLLM, OpenRouter, Ollama),
  * inline in the content, between `<think>` and `</think>` (a server without a reasoning parser).
A non-streaming reply carries the same fields on `message`. `delta_reasoning` / `message_reasoning`
read the fields (the openai client keeps unknown fields in pydantic's `model_extra`);
`ThinkSplitter` takes inline tags out of the content incrementally.

The inline rules (ThinkSplitter), O(new text) per chunk:

1. `<think>` opens the thinking only as the first thing in the reply: the first content, or after
   leading whitespace only. The tag may be split over chunks at any position ("<th" + "ink>").
   Everything up to the next `</think>` is reasoning; after it, everything is answer (a later
   `<think>` is answer text). A reply that ends inside the thinking has reasoning and no answer.
2. Some chat templates put `<think>` in the prompt, so the reply starts with the thinking and only
   `</think>` arrives ("close-only"). The reply cannot be told from a plain answer until `</think>`
   comes, and holding the whole reply back would leave a model that does not think (the common
   case) showing nothing until its end. So text that does not start with `<think>` streams as the
   answer, provisionally, and when `</think>` arrives everything before it is *taken back* and
   becomes reasoning (`Split.retract`): the caller moves the answer so far into the reasoning.
   Only the first `</think>` does this, and only while the reply still looks like it may be a
   close-only thinking: not once the text has had a code fence ("```"), not when the tag is
   quoted in inline code (a "`" right before it), not after reasoning came in a separate field
   (`fields_seen()`: the server already separates it), and not once a `</think>` was handled.
   A reply that passed any of those is plain answer from then on and is no longer scanned.
3. Leading whitespace streams as answer too; if `<think>` follows it, it is taken back (it goes
   with the reasoning) like in rule 2.
4. Only a tail that could be the start of a tag is held back ("…</thi" until the next chunk or
   the end of the reply, where `finish()` releases it as text). Nothing else is delayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OPEN = "<think>"
CLOSE = "</think>"
FENCE = "```"

# Splitter states
_LEAD = "lead"  # nothing but whitespace so far: `<think>` may still open the reply
_THINK = "think"  # inside <think>…: looking for </think>
_MAYBE = "maybe"  # answer text that may still turn out to be close-only thinking
_ANSWER = "answer"  # plain answer: no more scanning


@dataclass(frozen=True)
class Split:
    """What one piece of content turned out to be, in order: first `retract` (the answer emitted
    so far was reasoning after all: move it there), then `reasoning`, then `answer`."""

    reasoning: str = ""
    answer: str = ""
    retract: bool = False

    def __bool__(self) -> bool:
        return bool(self.reasoning or self.answer or self.retract)


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is a proper beginning of `tag` (0 if none)."""
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:k]):
            return k
    return 0


class ThinkSplitter:
    """Splits inline `<think>…</think>` out of streamed content; see the module docstring."""

    def __init__(self, close_only: bool = True) -> None:
        self.close_only = close_only  # rule 2 allowed (fields_seen() turns it off)
        self._state = _LEAD
        self._held = ""  # a possible partial tag at the end, not yet emitted
        self._lead = ""  # _LEAD: a possible partial "<think>", not yet emitted
        self._ws_emitted = False  # _LEAD: leading whitespace went out as answer
        self._last = ""  # _MAYBE: the last two characters passed (fence / "`" checks)
        self.opened = False  # the reply opened with <think>
        self.closed = False  # a </think> ended the thinking (either form)
        self.retracted = False  # close-only thinking was taken back from the answer

    @property
    def state(self) -> str:
        return self._state

    @property
    def thinking(self) -> bool:
        """Inside an opened <think> (the text now arriving is reasoning)."""
        return self._state == _THINK

    def fields_seen(self) -> None:
        """Reasoning arrived in a separate field: the server splits it, so never take answer
        text back for a `</think>` (rule 2). An opening `<think>` is still honoured."""
        self.close_only = False

    def feed(self, text: str) -> Split:
        """Take the next piece of content; returns what it (and any held tail) turned out to be."""
        if self._state == _MAYBE and not self.close_only:
            self._state = _ANSWER
            text, self._held = self._held + text, ""
        if not text:
            return Split()
        if self._state == _LEAD:
            return self._feed_lead(text)
        if self._state == _THINK:
            return self._feed_think(text)
        if self._state == _MAYBE:
            return self._feed_maybe(text)
        return Split(answer=text)

    def finish(self) -> Split:
        """The reply ended: release whatever was held back (a partial tag is just text)."""
        if self._state == _LEAD:
            rest, self._lead, self._state = self._lead, "", _ANSWER
            return Split(answer=rest)
        rest, self._held = self._held, ""
        if not rest:
            return Split()
        return Split(reasoning=rest) if self._state == _THINK else Split(answer=rest)

    # ---- states ----------------------------------------------------------------------------
    def _feed_lead(self, text: str) -> Split:
        # self._lead holds only a possible partial "<think>" (whitespace before it went out).
        lead = self._lead + text
        body = lead.lstrip()
        ws = lead[: len(lead) - len(body)]
        if body.startswith(OPEN):
            # The reply opens with <think>. Whitespace already shown as answer was before the
            # tag, not part of an answer: it is taken back (rule 3); this chunk's is dropped.
            retract, self._ws_emitted = self._ws_emitted, False
            self._state, self.opened, self._lead = _THINK, True, ""
            out = self._feed_think(body[len(OPEN) :])
            return Split(out.reasoning, out.answer, retract)
        if not body or OPEN.startswith(body):
            # Whitespace, maybe then a partial "<th": the whitespace goes out as answer now
            # (taken back if <think> follows), the partial tag waits.
            self._lead = body
            self._ws_emitted = self._ws_emitted or bool(ws)
            return Split(answer=ws)
        # Plain text: the answer starts (it may still turn out close-only thinking, rule 2).
        self._lead = ""
        if not self.close_only:
            self._state = _ANSWER
            return Split(answer=lead)
        self._state = _MAYBE
        return self._feed_maybe(lead)

    def _feed_think(self, text: str) -> Split:
        buf, self._held = self._held + text, ""
        i = buf.find(CLOSE)
        if i >= 0:
            self._state, self.closed = _ANSWER, True
            return Split(reasoning=buf[:i], answer=buf[i + len(CLOSE) :])
        k = _partial_suffix(buf, CLOSE)
        if k:
            buf, self._held = buf[:-k], buf[-k:]
        return Split(reasoning=buf)

    def _feed_maybe(self, text: str) -> Split:
        buf, self._held = self._held + text, ""
        i = buf.find(CLOSE)
        found = (self._last + buf).find(FENCE)
        fence = None if found < 0 else found - len(self._last)  # negative: began earlier
        if i >= 0 and (fence is None or fence > i):
            self._state = _ANSWER
            if (self._last + buf[:i])[-1:] == "`":
                return Split(answer=buf)  # `</think>` quoted as inline code: plain answer
            self.closed = self.retracted = True
            # Everything before the tag was thinking: take back what went out, add the rest.
            return Split(reasoning=buf[:i], answer=buf[i + len(CLOSE) :], retract=True)
        if fence is not None:
            self._state = _ANSWER  # a code fence: an answer, stop looking
            return Split(answer=buf)
        k = _partial_suffix(buf, CLOSE)
        if k:
            buf, self._held = buf[:-k], buf[-k:]
        self._last = (self._last + buf)[-2:]
        return Split(answer=buf)


def split_whole(content: str) -> Split:
    """A whole (non-streamed) content, split at once (`retract` needs no action here: nothing
    was emitted before)."""
    splitter = ThinkSplitter()
    first, last = splitter.feed(content), splitter.finish()
    return Split(reasoning=first.reasoning + last.reasoning, answer=first.answer + last.answer)


# ---- reasoning fields ------------------------------------------------------------------------
REASONING_FIELDS = ("reasoning_content", "reasoning")


def _field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    extra = getattr(obj, "model_extra", None) or {}
    if name in extra:
        return extra[name]
    return getattr(obj, name, None) if name in getattr(type(obj), "model_fields", {}) else None


def field_reasoning(obj: Any) -> str:
    """The reasoning text on a delta or message: `reasoning_content`, else `reasoning` (servers
    moving from one name to the other may send both with the same text: never both). Only
    strings count (OpenRouter's structured `reasoning_details` is not read). Raises TypeError
    for a reasoning field that is neither text nor null (a malformed chunk)."""
    for name in REASONING_FIELDS:
        value = _field(obj, name)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise TypeError(f"{name} is not text")
        return value
    return ""


def delta_reasoning(delta: Any) -> str:
    """Reasoning carried by a streamed `choices[i].delta`."""
    return field_reasoning(delta)


def message_reasoning(message: Any) -> str:
    """Reasoning carried by a non-streamed `choices[i].message`."""
    return field_reasoning(message)


def usage_reasoning_tokens(usage: dict[str, Any] | None) -> int | None:
    """`usage.completion_tokens_details.reasoning_tokens`, when the server gave it."""
    details = (usage or {}).get("completion_tokens_details")
    if isinstance(details, dict):
        n = details.get("reasoning_tokens")
        if isinstance(n, int) and not isinstance(n, bool) and n >= 0:
            return n
    return None
