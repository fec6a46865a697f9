"""A saved message as the store gives it, and the one way to read its figures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict


class Message(TypedDict):
    id: str
    conversation_id: str
    parent_id: str | None
    role: str  # "user" | "assistant"
    content: str
    state: str  # kinds.MessageState
    error: str | None
    summary: str | None
    metrics: dict[str, Any] | None  # a reply's saved figures (replies.message_metrics)
    reasoning: NotRequired[str | None]  # a reply's thinking
    created_at: str
    seq: int
    siblings: NotRequired[list[str]]  # conversation_path: the versions at its place, oldest first
    version: NotRequired[int]  # conversation_path: its 1-based index among them


def figures(message: Mapping[str, Any] | None) -> dict[str, Any]:
    """A message's saved figures; {} when it has none (a user message, an old or failed reply)."""
    saved = message.get("metrics") if message else None
    return saved if isinstance(saved, dict) else {}
