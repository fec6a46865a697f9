"""Stop rules: evaluated on a reply's partial text while it streams.

A rule is a list of phrases, a regular expression, a maximum time or a maximum number of tokens.
The runner calls `StopRuleEvaluator.check` on every received chunk (on the asyncio loop thread)
and on a timer; when it returns a `RuleHit` the generation is stopped at once and the reply is
marked with the hit (`RuleHit.describe()`); `hidden_text` hides the matched part. The UI calls
`near_misses` each frame to show live which rule is close (a phrase half typed, 180/200 tokens).

Cost. `check` receives the whole reply so far (it only grows) but looks only at the new text plus
a bounded lookback, keeping its scan positions between calls: O(new text + lookback) per call.
It keeps no reference to the text, so a caller that grows a local string with `+=` keeps
CPython's in-place append. `near_misses` looks only at the tail of the text.

Which hit is reported. The evaluator reports the hit a character-by-character stream would see
first: each candidate has a *decision point*, the shortest prefix of the text at which it is
certain, and the smallest decision point wins (ties: rule order). This makes the result
independent of how the text was chunked: feeding the text in any pieces gives the same hit as one
`check(whole_text, final=True)` (the tests check this property). That is exact for phrases,
limits and bounded regular expressions; for unbounded ones see below.

- Phrases: a plain substring match (not word-bounded). Case-insensitive unless the rule is
  case-sensitive, using `re.IGNORECASE` (Unicode simple case folding, one character to one
  character, so offsets are offsets into the original text: "PassWord" matches "password",
  "İSTANBUL" matches "istanbul", "Σ"/"σ"/"ς" are one letter; "ß" does not match "ss", and composed
  and decomposed accents are different text). A phrase occurrence is certain when its last
  character arrives; the earliest-ending occurrence wins (ties: the longer phrase).
- Regular expressions: Python's `re` with `re.MULTILINE` (`^`/`$` are line start/end) and
  `re.IGNORECASE` unless case-sensitive; the first (leftmost) match, as `re.search` finds it on the
  whole text. Searches run on the real string from a position (`pattern.search(text, pos)`), never
  on a slice, so `^`, `\\b` and lookbehinds see the text before the window.
  A match near the growing edge could still change with more text (`foo$` on "foo" then "bar",
  `\\d+` on "12" then "3", `password|pass` on "pass" then "word"), so:
  * a pattern whose reach is bounded (its maximum width plus any lookahead, plus 1 or 2 characters
    when it has `\\b`, `$` ...; at most `REGEX_LOOKBACK_CAP`) is searched from the first start
    position not yet ruled out, and a match starting at s is accepted once the text reaches
    s + reach characters (or on the final call). That is exact: from then on no more text can
    change what the pattern matches at s. The delay is at most one or two characters past the
    match for most patterns (`\\b\\d{3}-\\d{4}\\b`: one character; a plain word: none).
  * a pattern with unbounded width (`\\d+`, `https?://\\S+`) is searched in a window of at most
    `REGEX_LOOKBACK_CAP` characters before the new text, and a match is accepted once it ends
    before the end of the text (one more character arrived), or on the final call. Start positions
    where even the pattern's bounded head (`https?://\\S` of `https?://\\S+`) cannot match are
    skipped for good, so the window is usually a few characters, not the cap. A match longer than
    the cap may be missed or reported shorter, and an alternation or lookahead whose outcome
    depends on text more than one character past the match may report a different match than a
    one-shot check would (`\\d+x{3}|\\d+` reports "12" for "12x" + "xx", a one-shot check "12xxx").
  Patterns that can match empty text, and nested repetitions such as `(a+)+` (exponential time on
  some text, which would freeze the shared event loop), are rejected with a `RuleError`.
  Catastrophic backtracking from overlapping alternatives under a repetition (`(a|a)+`) is not
  detected; the bounded window limits, but does not remove, that risk.
- max_time fires when `elapsed >= value` seconds, max_tokens when `tokens >= value`; their hit is
  at the current end of the text (start == end).

Thinking. Rules watch the answer (`text`). A rule with `watch_thinking=True` also watches a
reasoning model's thinking: its phrases / regex are checked on the reasoning text separately (its
own scan state, so O(new text) there too; a match never spans thinking and answer), and a
max-tokens limit counts thinking tokens as well as answer tokens. max_time counts from the
request either way. A hit in the thinking has `RuleHit.in_thinking` set and offsets into the
reasoning text; the thinking is checked before the answer (it comes first).

Thread safety: `check` keeps state and must be called from one thread at a time; `near_misses`,
`describe` and `hidden_text` only read and may be called from the UI thread meanwhile.

Regex near misses use the third-party `regex` module (partial matching) when it is installed;
without it regex rules just show no near miss.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from . import regex_shape
from .kinds import RuleKind


def _optional_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:  # pragma: no cover - optional
        return None


_regex = _optional_module("regex")

PHRASES = RuleKind.PHRASES
REGEX = RuleKind.REGEX
MAX_TIME = RuleKind.MAX_TIME
MAX_TOKENS = RuleKind.MAX_TOKENS
KINDS = (PHRASES, REGEX, MAX_TIME, MAX_TOKENS)

REGEX_LOOKBACK_CAP = 1000  # characters; longest regex match / lookback the evaluator handles
NEAR_MISS_RATIO = 0.8  # limits count as close from 80 % of the way
MIN_PARTIAL = 2  # a partial phrase / regex match shows from this many characters
HIDDEN = "█████"  # what `hidden_text` puts in place of the matched part
NEAR_MISS_TIMEOUT = 0.02  # seconds, per regex partial search (the `regex` module's timeout)


class RuleError(ValueError):
    """An invalid rule; the message is fit to show to the user."""


@dataclass(frozen=True)
class Rule:
    kind: RuleKind | str  # a plain "phrases" / "regex" / "max_time" / "max_tokens" is accepted too
    value: str | float | int | tuple[str, ...]
    case_sensitive: bool = False
    watch_thinking: bool = False  # also check the thinking (reasoning) text

    def describe(self) -> str:
        """Short human text: 'phrase "password"', 'regex /\\d{4}/', 'max time 10 s', 'max 200 tokens'."""
        if self.kind == PHRASES:
            phrases = _phrases_of(self)
            shown = ", ".join(f'"{p}"' for p in phrases[:3])
            more = f" and {len(phrases) - 3} more" if len(phrases) > 3 else ""
            text = f"phrase{'' if len(phrases) == 1 else 's'} {shown}{more}"
        elif self.kind == REGEX:
            text = f"regex /{self.value}/"
        elif self.kind == MAX_TIME:
            return f"max time {_number(self.value)} s"
        elif self.kind == MAX_TOKENS:
            return f"max {_number(self.value)} tokens"
        else:
            return f"unknown rule {self.kind!r}"
        return text + (" (case-sensitive)" if self.case_sensitive else "")

    def describe_scope(self) -> str:
        """describe() plus where it looks when that is not just the answer: '… (thinking too)'."""
        watched = self.watch_thinking and self.kind in (PHRASES, REGEX, MAX_TOKENS)
        return self.describe() + (" (thinking too)" if watched else "")


@dataclass(frozen=True)
class RuleHit:
    rule: Rule
    start: int  # offsets of the match in the reply text; for limits start == end == where it fired
    end: int
    matched: str
    in_thinking: bool = False  # the offsets are into the reasoning (thinking) text, not the answer

    def describe(self) -> str:
        """E.g. 'stopped by phrase "password" at character 1,234' (1-based, the match's first
        character), 'stopped by max 200 tokens after 1,234 characters', or '… at character 56
        of the thinking' for a hit in the thinking."""
        where = " of the thinking" if self.in_thinking else ""
        if self.rule.kind in (MAX_TIME, MAX_TOKENS):
            return f"stopped by {self.rule.describe()} after {_count(self.start, 'character')}{where}"
        what = self.rule.describe()
        if self.rule.kind == PHRASES:
            phrase = _which_phrase(self.rule, self.matched)
            if phrase is not None:
                what = f'phrase "{phrase}"'
        return f"stopped by {what} at character {self.start + 1:,}{where}"


@dataclass(frozen=True)
class NearMiss:
    rule: Rule
    partial: str  # text at the end that starts a match ("pass"), or "180/200 tokens", "8.1/10 s"
    progress: float  # 0..1, how close
    target: str = ""  # for phrases: the phrase being approached

    def describe(self) -> str:
        percent = f"{self.progress:.0%}"
        if self.rule.kind in (MAX_TIME, MAX_TOKENS):
            return f"{self.rule.describe()}: {self.partial} ({percent})"
        what = f'phrase "{self.target}"' if self.target else self.rule.describe()
        return f'close to {what}: "{self.partial}" ({percent})'


# ---------------------------------------------------------------------------- building rules


def parse_phrases(text: str, case_sensitive: bool = False, watch_thinking: bool = False) -> Rule | None:
    """A phrase rule from a comma- or newline-separated list. Each phrase is stripped of
    surrounding spaces; blanks and duplicates are dropped; None when nothing is left.
    (A phrase cannot contain a comma.)"""
    phrases = tuple(dict.fromkeys(p.strip() for p in re.split(r"[,\n]", text or "")))
    phrases = tuple(p for p in phrases if p)
    return Rule(PHRASES, phrases, case_sensitive, watch_thinking) if phrases else None


def make_regex_rule(pattern: str, case_sensitive: bool = False, watch_thinking: bool = False) -> Rule:
    """A regex rule; RuleError when the pattern is empty, invalid, can match empty text or
    nests repetitions (see the module docstring)."""
    rule = Rule(REGEX, pattern, case_sensitive, watch_thinking)
    _RegexMatcher(rule)  # validates
    return rule


def make_limit_rule(kind: str, value: Any, watch_thinking: bool = False) -> Rule:
    """A "max_time" (seconds) or "max_tokens" rule; the value must be a positive number
    (a whole number for tokens). Strings such as "10" or "2.5" are accepted. A max_tokens rule
    with `watch_thinking` counts thinking tokens too (max_time always counts from the request)."""
    if kind not in (MAX_TIME, MAX_TOKENS):
        raise RuleError(f"Unknown limit {kind!r}: use {MAX_TIME.value!r} or {MAX_TOKENS.value!r}.")
    return Rule(kind, _limit_value(kind, value), watch_thinking=watch_thinking)


# ---------------------------------------------------------------------------- helpers


def _number(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    try:
        return format(float(value), ",.10g")
    except (TypeError, ValueError):
        return str(value)


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _phrases_of(rule: Rule) -> tuple[str, ...]:
    value: Any = rule.value  # whatever the caller put there: a non-iterable has no phrases
    if isinstance(value, str):
        value = (value,)
    try:
        phrases = tuple(dict.fromkeys(p for p in value if isinstance(p, str) and p))
    except TypeError:
        phrases = ()
    return phrases


def _fold(s: str) -> str:
    """Lower-case, one character to one character (so offsets stay right): str.lower() except
    that a character whose lower case is longer ("İ" -> "i̇") keeps only its first character, and
    final sigma "ς" becomes "σ" (str.lower() picks one by context). Used for near misses and
    for naming the phrase that matched; the check itself uses re.IGNORECASE."""
    if s.isascii():
        return s.lower()
    low = s.lower()
    if len(low) != len(s):
        low = "".join(c.lower()[:1] for c in s)
    return low.replace("ς", "σ")


def _which_phrase(rule: Rule, matched: str) -> str | None:
    flags = 0 if rule.case_sensitive else re.IGNORECASE
    for phrase in _phrases_of(rule):
        if re.fullmatch(re.escape(phrase), matched, flags):
            return phrase
    return None


def _limit_value(kind: str, value: Any) -> int | float:
    label = "Maximum time" if kind == MAX_TIME else "Maximum tokens"
    unit = "a positive number of seconds" if kind == MAX_TIME else "a positive whole number"
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise RuleError(f"{label} must be {unit} (got {value!r}).") from None
    if not math.isfinite(number) or number <= 0:
        raise RuleError(f"{label} must be {unit} (got {value!r}).")
    if kind == MAX_TOKENS:
        if number != int(number):
            raise RuleError(f"{label} must be {unit} (got {value!r}).")
        return int(number)
    return number


def _regex_flags(case_sensitive: bool) -> int:
    return re.MULTILINE | (0 if case_sensitive else re.IGNORECASE)


# ---------------------------------------------------------------------------- matchers


class _PhraseMatcher:
    def __init__(self, rule: Rule):
        phrases = _phrases_of(rule)
        if not phrases:
            raise RuleError("Enter at least one phrase.")
        self.rule = rule
        self.phrases = phrases
        self.maxlen = max(map(len, phrases))
        self.minlen = min(map(len, phrases))
        # At each start position the lookahead yields the shortest phrase there (the alternatives
        # are tried shortest first), i.e. the earliest-ending occurrence starting there.
        alternatives = "|".join(re.escape(p) for p in sorted(phrases, key=len))
        self.pattern = re.compile(f"(?=({alternatives}))", 0 if rule.case_sensitive else re.IGNORECASE)
        self.keys = [p if rule.case_sensitive else _fold(p) for p in phrases]

    def step(self, text: str, prev: int, n: int, final: bool) -> tuple[int, RuleHit] | None:
        # Occurrences ending at or before `prev` were seen by earlier calls, so only those that
        # end in the new text matter: they start at prev - maxlen + 1 or later.
        best_end = best_start = -1
        for m in self.pattern.finditer(text, max(0, prev - self.maxlen + 1)):
            start = m.start()
            if best_end >= 0 and start + self.minlen >= best_end:
                break
            end = m.end(1)
            if best_end < 0 or end < best_end:
                best_end, best_start = end, start
        if best_end < 0:
            return None
        return best_end, RuleHit(self.rule, best_start, best_end, text[best_start:best_end])

    def near_miss(self, text: str) -> NearMiss | None:
        if self.maxlen <= MIN_PARTIAL:
            return None
        tail = text[max(0, len(text) - (self.maxlen - 1)) :]
        if not self.rule.case_sensitive:
            tail = _fold(tail)
        best = None
        for phrase, key in zip(self.phrases, self.keys, strict=True):
            for k in range(min(len(key) - 1, len(tail)), MIN_PARTIAL - 1, -1):
                if tail[-k] == key[0] and tail.endswith(key[:k]):
                    candidate = (k, k / len(key), phrase)
                    if best is None or candidate[:2] > best[:2]:
                        best = candidate
                    break
        if best is None:
            return None
        k, progress, phrase = best
        return NearMiss(self.rule, text[len(text) - k :], progress, phrase)


class _RegexMatcher:
    def __init__(self, rule: Rule):
        pattern = rule.value
        if not isinstance(pattern, str) or pattern == "":
            raise RuleError("Enter a regular expression.")
        flags = _regex_flags(rule.case_sensitive)
        try:
            self.pattern = re.compile(pattern, flags)
        except re.error as e:
            raise RuleError(f"Invalid regular expression /{pattern}/: {e}") from None
        except (OverflowError, RecursionError, ValueError) as e:
            raise RuleError(f"Invalid regular expression /{pattern}/: {e}") from None
        try:
            shape: regex_shape.Shape | None = regex_shape.shape(pattern, flags)
        except Exception:  # the private parser changed (see regex_shape): be conservative
            shape = None
        if shape is not None:
            if shape.min_width == 0:
                raise RuleError(
                    f"Regular expression /{pattern}/ can match empty text, "
                    "which would stop every reply at once."
                )
            if shape.nested_repeat:
                raise RuleError(
                    f"Regular expression /{pattern}/ nests repetitions (like (a+)+), "
                    "which can take exponential time on some text. Rewrite it without "
                    "the nesting, or make the inner repetition possessive (a++)."
                )
        self.rule = rule
        self.reach = shape.reach(REGEX_LOOKBACK_CAP) if shape is not None else None
        self.max_width = shape.max_width if shape is not None else None
        self.decided = 0  # no match starts before this position
        # unbounded patterns: (a bounded prefix of the pattern, its reach)
        self.head: tuple[re.Pattern[str], int] | None = None
        if shape is not None and self.reach is None:
            try:
                self.head = regex_shape.bounded_head(shape, REGEX_LOOKBACK_CAP)
            except Exception:  # the private API again: then just use the capped window
                self.head = None
        self.near = None
        if _regex is not None:
            try:
                self.near = _regex.compile(pattern, flags)
            except Exception:  # a pattern `regex` reads differently: no near misses
                self.near = None

    def reset(self) -> None:
        self.decided = 0

    def _hit(self, text: str, m: re.Match[str]) -> RuleHit:
        return RuleHit(self.rule, m.start(), m.end(), m.group())

    def step(self, text: str, prev: int, n: int, final: bool) -> tuple[int, RuleHit] | None:
        if self.reach is not None:
            m = self.pattern.search(text, self.decided)
            if m is not None:
                start = m.start()
                if start + self.reach <= n:
                    return start + self.reach, self._hit(text, m)
                if final:
                    return n, self._hit(text, m)
            # Every start whose reach lies inside the text has been tried on settled text.
            self.decided = max(self.decided, n - self.reach + 1)
            return None
        start = max(self.decided, prev - REGEX_LOOKBACK_CAP)
        m = self.pattern.search(text, start)
        if m is not None:
            if m.end() < n:
                return min(max(m.end() + 1, prev + 1), n), self._hit(text, m)
            if final:
                return n, self._hit(text, m)
        if self.head is not None:
            # Skip, from now on, the positions where even the pattern's head cannot match.
            head, head_reach = self.head
            alive = n - head_reach + 1
            h = head.search(text, start)
            if h is not None:
                alive = min(alive, h.start())
            self.decided = max(self.decided, alive)
        return None

    def near_miss(self, text: str) -> NearMiss | None:
        if self.near is None:
            return None
        n = len(text)
        width = self.max_width if self.reach is not None else None  # None: unbounded
        pos = max(0, n - (width if width is not None else REGEX_LOOKBACK_CAP))
        try:
            while pos <= n:
                m = self.near.search(text, pos, partial=True, timeout=NEAR_MISS_TIMEOUT)
                if m is None:
                    return None
                if m.end() == n:
                    length = m.end() - m.start()
                    if length < MIN_PARTIAL:
                        return None
                    progress = min(0.99, length / width) if width is not None else 0.5
                    return NearMiss(self.rule, m.group(), progress)
                pos = m.end() if m.end() > m.start() else m.start() + 1
        except TimeoutError:
            return None
        return None


def _make_matcher(rule: Rule) -> _PhraseMatcher | _RegexMatcher:
    if rule.kind == PHRASES:
        return _PhraseMatcher(rule)
    if rule.kind == REGEX:
        return _RegexMatcher(rule)
    raise RuleError(f"Unknown rule kind {rule.kind!r}.")


# ---------------------------------------------------------------------------- evaluator


class StopRuleEvaluator:
    """Evaluates rules on one reply as it grows. See the module docstring."""

    def __init__(self, rules: Sequence[Rule]):
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._text_rules: list[tuple[int, _PhraseMatcher | _RegexMatcher]] = []
        # Rules with watch_thinking get a second matcher for the reasoning text (own scan state).
        self._thinking_rules: list[tuple[int, _PhraseMatcher | _RegexMatcher]] = []
        self._limits: list[tuple[int, Rule, int | float]] = []
        for index, rule in enumerate(self.rules):
            if rule.kind in (MAX_TIME, MAX_TOKENS):
                self._limits.append((index, rule, _limit_value(rule.kind, rule.value)))
            else:
                self._text_rules.append((index, _make_matcher(rule)))
                if rule.watch_thinking:
                    self._thinking_rules.append((index, _make_matcher(rule)))
        self._scanned = 0
        self._thinking_scanned = 0
        self._hit: RuleHit | None = None

    @property
    def watches_thinking(self) -> bool:
        return any(rule.watch_thinking for rule in self.rules)

    @property
    def hit(self) -> RuleHit | None:
        """The hit that fired, if any (sticky: later `check` calls return it again)."""
        return self._hit

    def reset(self) -> None:
        """Forget the scan state and any hit (for evaluating a new text)."""
        self._scanned = 0
        self._hit = None
        self._reset_matchers(self._text_rules)
        self._thinking_scanned = 0
        self._reset_matchers(self._thinking_rules)

    @staticmethod
    def _reset_matchers(matchers: list[tuple[int, _PhraseMatcher | _RegexMatcher]]) -> None:
        for _, matcher in matchers:
            if isinstance(matcher, _RegexMatcher):
                matcher.reset()

    @staticmethod
    def _scan(
        matchers: list[tuple[int, _PhraseMatcher | _RegexMatcher]], text: str, prev: int, final: bool
    ) -> tuple[int, int, RuleHit] | None:
        best: tuple[int, int, RuleHit] | None = None
        n = len(text)
        for index, matcher in matchers:
            found = matcher.step(text, prev, n, final)
            if found is not None and (best is None or (found[0], index) < best[:2]):
                best = (found[0], index, found[1])
        return best

    def check(
        self,
        text: str,
        *,
        elapsed: float,
        tokens: int,
        final: bool = False,
        reasoning: str | None = None,
        thinking_tokens: int = 0,
    ) -> RuleHit | None:
        """`text` is the whole reply (answer) so far; it must only grow between calls (a shorter
        text starts over). `final=True` on the last call accepts matches at the very end of the
        text. `reasoning` is the thinking so far (same rules: it only grows), checked by the
        rules with watch_thinking, and `thinking_tokens` its token count (added to `tokens` for
        max-tokens rules with watch_thinking). Returns the first hit, or None; once a rule
        fired, that hit is returned again."""
        if self._hit is not None:
            return self._hit
        if reasoning is not None and self._thinking_rules:
            m = len(reasoning)
            tprev = self._thinking_scanned
            if m < tprev:
                self._thinking_scanned = tprev = 0
                self._reset_matchers(self._thinking_rules)
            if m > tprev or (final and m):
                in_thinking = self._scan(self._thinking_rules, reasoning, tprev, final)
                self._thinking_scanned = m
                if in_thinking is not None:
                    self._hit = dataclasses.replace(in_thinking[2], in_thinking=True)
                    return self._hit
        n = len(text)
        prev = self._scanned
        if n < prev:
            self._scanned = prev = 0
            self._reset_matchers(self._text_rules)
        best: tuple[int, int, RuleHit] | None = None
        if n > prev or final:
            best = self._scan(self._text_rules, text, prev, final)
            self._scanned = n
        for index, rule, limit in self._limits:
            if rule.kind == MAX_TIME:
                reached = elapsed
            else:
                reached = tokens + ((thinking_tokens or 0) if rule.watch_thinking else 0)
            if reached is not None and reached >= limit and (best is None or (n, index) < best[:2]):
                best = (n, index, RuleHit(rule, n, n, ""))
        if best is not None:
            self._hit = best[2]
        return self._hit

    def near_misses(
        self, text: str, *, elapsed: float, tokens: int, reasoning: str = "", thinking_tokens: int = 0
    ) -> list[NearMiss]:
        """Rules that are close to firing on this text, in rule order (at most one per rule).
        Phrases: the longest end of the text (at least MIN_PARTIAL characters) that is a proper
        beginning of a phrase. Regex: a partial match (`regex` module) reaching the end of the text;
        progress = its length / the pattern's maximum width, or 0.5 when unbounded. Limits: from
        NEAR_MISS_RATIO of the way until they fire. Looks only at the tail of the text.
        While there is no answer yet, rules with watch_thinking look at the end of `reasoning`
        instead; their max-tokens limits count `thinking_tokens` too."""
        misses: list[NearMiss] = []
        text_rules = dict(self._text_rules)
        limits = {index: (rule, limit) for index, rule, limit in self._limits}
        for index in range(len(self.rules)):
            if index in text_rules:
                watched = text if (text or not self.rules[index].watch_thinking) else reasoning
                miss = text_rules[index].near_miss(watched)
                if miss is not None:
                    misses.append(miss)
                continue
            rule, limit = limits[index]
            if rule.kind == MAX_TIME:
                reached = elapsed
            else:
                reached = tokens + ((thinking_tokens or 0) if rule.watch_thinking else 0)
            if reached is None:
                continue
            progress = reached / limit
            if NEAR_MISS_RATIO <= progress < 1:
                if rule.kind == MAX_TIME:
                    partial = f"{reached:.1f}/{_number(limit)} s"
                else:
                    partial = f"{reached:,}/{_number(limit)} tokens"
                misses.append(NearMiss(rule, partial, progress))
        return misses


def hidden_text(text: str, hit: RuleHit, thinking: bool = False) -> str:
    """The text with the matched part replaced by HIDDEN ("█████", a fixed length so the length of
    what was hidden does not show); text after the match (the rest of the chunk that completed it)
    is kept. A limit hit (nothing matched) leaves the text unchanged. Show `hit.describe()` beside it.
    `thinking`: `text` is the reasoning; a hit applies only to the text it was found in (a hit in
    the thinking leaves the answer unchanged, and the other way round)."""
    if hit.end <= hit.start or hit.in_thinking != thinking:
        return text
    return text[: hit.start] + HIDDEN + text[hit.end :]
