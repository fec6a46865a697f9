"""What the bench scripts share: the table printer and the guard that turns a failed scenario into
a row of the report."""
from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Column:
    header: str
    key: str
    width: int = 0
    align: str = "<"          # "<" or ">"
    gap: int = 1              # spaces before this column (none before the first)
    fmt: Callable[[Any], str] = str


def format_table(rows: Sequence[dict], columns: Sequence[Column]) -> list[str]:
    """The header, a rule as long as the header, and one line per row."""
    def line(cells: list[str]) -> str:
        return "".join((" " * c.gap if i else "") + f"{cell:{c.align}{c.width}}"
                       for i, (c, cell) in enumerate(zip(columns, cells, strict=True)))

    head = line([c.header for c in columns])
    return [head, "-" * len(head), *(line([c.fmt(r[c.key]) for c in columns]) for r in rows)]


def print_table(rows: Sequence[dict], columns: Sequence[Column]) -> None:
    for text in format_table(rows, columns):
        print(text)


def guarded(fn: Callable[[], dict], traceback_limit: int = 4) -> dict:
    """fn(), or {"error": ..., "traceback": ...} if it raised: a failed scenario is a row in the report."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - a failed scenario is a row in the report
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        return {"error": f"{type(exc).__name__}: {first_line}"[:300],
                "traceback": traceback.format_exc(limit=traceback_limit)}
