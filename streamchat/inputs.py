"""Checks on what the user types, so odd input gets a message instead of a traceback."""

from __future__ import annotations

from .text import clean_text

MAX_MESSAGE_CHARS = 100_000


def clean_user_message(text: str | None) -> tuple[str, str | None]:
    """Return (text to send, problem to tell the user or None). Empty text means: don't send."""
    raw = text or ""
    text = clean_text(raw)
    if not text.strip():
        return "", "Type a message first."
    if len(text) > MAX_MESSAGE_CHARS:
        return "", (
            f"That message is {len(text):,} characters; the limit is {MAX_MESSAGE_CHARS:,}. "
            "Shorten it or attach less text."
        )
    if text != raw:
        return text, (
            "Some characters of your message could not be read (a broken emoji or a "
            "control character): they were replaced by � or left out."
        )
    return text, None
