"""What the bench scripts share: the table printer and the guard that turns a failed scenario into
a row of the report."""
from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
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


def print_and_merge(path: str, key: str, results: dict, rows: list[dict], columns: Sequence[Column],
                    summary: str) -> None:
    """Print the table and the summary; keep them with the results under `key` in the JSON file
    at `path` (its other keys kept)."""
    print()
    print_table(rows, columns)
    out = Path(path)
    data = json.loads(out.read_text()) if out.is_file() else {}
    data[key] = {"results": results, "rows": rows, "summary": summary}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2, default=str))
    print(f"\n{summary}")
