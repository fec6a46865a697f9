"""The shape of a regular expression, read from CPython's private regex parser (`re._parser`).

The stop-rule evaluator (stop_rules.py) needs to know how far a pattern can reach past the start
of a match (its maximum width plus lookaheads and edge assertions), whether it can match empty
text, whether it nests repetitions (exponential backtracking), and, for an unbounded pattern, a
bounded prefix it can use to skip dead start positions. Only the parser knows that, and it is
private: this is the one module that touches it (and `re._compiler`), so a Python upgrade that
changes it breaks one place. tests/test_regex_shape.py fails loudly when it does; at run time
stop_rules.py treats any exception from here as "shape unknown" and falls back to a capped window.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

# Imported by name: typeshed does not describe private modules, so they are Any to the type checker.
_sre_parse: Any = importlib.import_module("re._parser")
_sre_compile: Any = importlib.import_module("re._compiler")

_C: Any = _sre_parse  # the opcode constants live on the parser module (from re._constants)
_REPEATS = tuple(
    op for op in (getattr(_C, "MAX_REPEAT", None), getattr(_C, "MIN_REPEAT", None)) if op is not None
)
_POSSESSIVE = getattr(_C, "POSSESSIVE_REPEAT", None)
_ATOMIC = getattr(_C, "ATOMIC_GROUP", None)
_UNBOUNDED = getattr(_C, "MAXREPEAT", 1 << 32)
_BACKWARD_AT = {
    getattr(_C, name)
    for name in ("AT_BEGINNING", "AT_BEGINNING_LINE", "AT_BEGINNING_STRING")
    if hasattr(_C, name)
}

# What this module uses of the private API (checked by check_private_api and its test).
PRIVATE_NAMES = (
    "parse", "SubPattern", "MAX_REPEAT", "MIN_REPEAT", "MAXREPEAT", "BRANCH", "SUBPATTERN", "AT",
    "AT_END", "AT_BEGINNING", "ASSERT", "ASSERT_NOT", "GROUPREF_EXISTS", "POSSESSIVE_REPEAT",
    "ATOMIC_GROUP",
)  # fmt: skip


def check_private_api() -> None:
    """Raise RuntimeError naming what is missing from `re._parser` / `re._compiler`."""
    missing = [name for name in PRIVATE_NAMES if not hasattr(_sre_parse, name)]
    if not callable(getattr(_sre_compile, "compile", None)):
        missing.append("re._compiler.compile")
    if missing:
        raise RuntimeError(f"CPython's private regex parser changed: missing {', '.join(missing)}")


def _children(op: Any, av: Any) -> list[Any]:
    if op is _C.BRANCH:
        return list(av[1])
    if op is _C.SUBPATTERN:
        return [av[-1]]
    if op in _REPEATS or (op is _POSSESSIVE and op is not None):
        return [av[2]]
    if op is _ATOMIC and op is not None:
        return [av]
    if op in (_C.ASSERT, _C.ASSERT_NOT):
        return [av[1]]
    if op is _C.GROUPREF_EXISTS:
        return [x for x in av[1:3] if x is not None]
    return []


class Shape:
    """What the stop-rule evaluator needs to know about a pattern's shape."""

    def __init__(self, tree: Any) -> None:
        self.tree = tree  # the parser's SubPattern
        self.min_width, self.max_width = tree.getwidth()
        self.lookahead = 0  # sum of the lookaheads' maximum widths
        self.edge = 0  # characters past the match an assertion may look at
        # A repetition of variable count (at least 2) inside another repetition, one of the two
        # unbounded: (a+)+, (\w+\s)*, (a{1,3})+ -- the usual exponential backtracking shapes.
        # (ab?)+ and (\d{3}-)+ are fine; possessive repeats and atomic groups are exempt.
        self.nested_repeat = False
        self._walk(tree, outer=None)

    def _walk(self, sub: Any, outer: tuple[int, int] | None) -> None:
        for op, av in sub.data:
            if op is _C.AT:
                if av not in _BACKWARD_AT:
                    self.edge = max(self.edge, 2 if av is _C.AT_END else 1)
            elif op is _C.ASSERT or op is _C.ASSERT_NOT:
                if av[0] == 1:
                    self.lookahead += av[1].getwidth()[1]
            inner_outer = outer
            if op in _REPEATS:
                lo, hi = av[0], av[1]
                if (
                    outer is not None
                    and lo != hi
                    and hi >= 2
                    and (outer[1] == _UNBOUNDED or hi == _UNBOUNDED)
                    and av[2].getwidth()[1] > 0
                ):
                    self.nested_repeat = True
                if hi > 1:
                    inner_outer = (lo, hi)
            elif op is _POSSESSIVE and op is not None or op is _ATOMIC and op is not None:
                inner_outer = None  # no backtracking into it
            for child in _children(op, av):
                self._walk(child, inner_outer)

    def reach(self, cap: int) -> int | None:
        """How far past a match's start the engine may look, or None when that exceeds `cap`."""
        reach: int = self.max_width + self.lookahead + self.edge
        return reach if reach <= cap else None


def shape(pattern: str, flags: int) -> Shape:
    """The shape of `pattern` (already known to compile with `flags`)."""
    return Shape(_sre_parse.parse(pattern, flags))


def bounded_head(shape: Shape, cap: int) -> tuple[re.Pattern[str], int] | None:
    """For a pattern of unbounded reach: (compiled H, reach of H), H being the longest run of the
    pattern's leading items whose reach is bounded (an unbounded repetition contributes its minimum
    count: `https?://\\S+` -> `https?://\\S`). Every match of the pattern at q implies a match of
    H at q, so a position where H cannot match (decided, as for bounded patterns) is dead for good.
    None when there is no such prefix."""
    tree = shape.tree
    sub_pattern = _sre_parse.SubPattern
    while len(tree.data) == 1 and tree.data[0][0] is _C.SUBPATTERN and not any(tree.data[0][1][1:3]):
        tree = tree.data[0][1][-1]  # (https?://\\S+): look inside the group (not (?i:...))
    items: list[Any] = []
    reach = None
    for op, av in tree.data[:100]:
        reach_with = Shape(sub_pattern(tree.state, [*items, (op, av)])).reach(cap)
        if reach_with is not None:
            items.append((op, av))
            reach = reach_with
            continue
        if op in _REPEATS and av[0] >= 1:  # a repetition cut to its minimum count ends the head
            cut = (op, (av[0], av[0], av[2]))
            reach_with = Shape(sub_pattern(tree.state, [*items, cut])).reach(cap)
            if reach_with is not None:
                items.append(cut)
                reach = reach_with
        break
    if not items or reach is None:
        return None
    compiled: re.Pattern[str] = _sre_compile.compile(sub_pattern(tree.state, items), tree.state.flags)
    return compiled, reach
