"""Exports: a conversation as Markdown or JSON, runs as CSV or JSON (dicts as the Store returns them).

A reply's thinking (`reasoning`) is exported with it: Markdown puts it in a quoted "Thinking"
section before the answer; JSON keeps each message's `reasoning` field."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import date, datetime
from typing import Any

from .kinds import MessageState

_ROLE_HEADINGS = {"system": "System", "user": "User", "assistant": "Assistant"}
_STATE_NOTES = {
    MessageState.STOPPED: "Stopped before the end: the reply above is partial.",
    MessageState.FAILED: "Failed",
    MessageState.STREAMING: "Still streaming when exported: the reply above is partial.",
}


def conversation_markdown(conversation: dict[str, Any], messages: list[dict[str, Any]]) -> str:
    out = [f"# {conversation.get('title') or 'Untitled'}", ""]
    for message in messages:
        role = message.get("role", "")
        out += [f"## {_ROLE_HEADINGS.get(role, role.title())}", ""]
        if role == "assistant" and (message.get("reasoning") or "").strip():
            out += thinking_markdown(message["reasoning"])
        out += [message.get("content") or "", ""]
        if role != "assistant":
            continue
        if message.get("summary"):
            out += [f"*{message['summary']}*", ""]
        state = message.get("state")
        if state in _STATE_NOTES:
            note = _STATE_NOTES[state]
            if message.get("error"):
                note += f": {message['error']}" if state == MessageState.FAILED else f" ({message['error']})"
            out += [f"> **{note}**", ""]
    return "\n".join(out).rstrip() + "\n"


def thinking_markdown(reasoning: str) -> list[str]:
    """A reply's thinking as a quoted "Thinking" section (lines, ending with a blank one), so
    it reads apart from the answer."""
    lines = reasoning.strip("\n").splitlines()
    return ["> **Thinking**", ">", *(f"> {line}" if line.strip() else ">" for line in lines), ""]


PRIVATE_FIELDS = ("owner",)  # the session token: whoever has it can list that session's chats


def conversation_json(conversation: dict[str, Any], messages: list[dict[str, Any]]) -> str:
    public = {k: v for k, v in conversation.items() if k not in PRIVATE_FIELDS}
    return _dumps({**public, "messages": messages})


def runs_json(runs: list[dict[str, Any]]) -> str:
    """Empty fields (None, NaN from a DataFrame) are null; times are ISO 8601 with their offset."""
    return _dumps([{k: _json_value(v) for k, v in run.items()} for run in runs])


def runs_csv(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return ""
    columns: list[str] = []
    for run in runs:
        columns += [k for k in run if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for run in runs:
        writer.writerow({k: _cell(v) for k, v in run.items()})
    return buf.getvalue()


def _is_empty(value: Any) -> bool:
    """None, and the "missing" markers a pandas frame puts in records: NaN, NaT, pd.NA."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    try:
        return bool(value != value)  # NaN-likes (numpy floats, NaT) differ from themselves
    except (TypeError, ValueError):  # pd.NA refuses bool(); arrays have no single truth
        return type(value).__name__ in ("NAType", "NaTType")


def _iso(value: date) -> str:
    """ISO 8601; a datetime that knows its zone carries its offset (2025-01-02T09:30:00+01:00)."""
    return value.isoformat()


def _json_value(value: Any) -> Any:
    if _is_empty(value):
        return None
    if isinstance(value, (datetime, date)):
        return _iso(value)
    if hasattr(value, "item") and not isinstance(value, (dict, list, str)):
        return value.item()  # numpy scalars: plain int / float / bool
    return value


def _cell(value: Any) -> Any:
    if _is_empty(value):
        return ""  # an empty field, not "nan" / "NaT" / "None"
    if isinstance(value, (datetime, date)):
        return _iso(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    # Error texts come from servers: keep a spreadsheet from reading them as formulas.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
