"""Text that can go anywhere: into SQLite, over Streamlit's websocket, into a request."""

from __future__ import annotations


def clean_text(s: str) -> str:
    """Drop NULs; replace lone surrogates with U+FFFD (pairs are joined). A JSON string may
    carry "\\ud800": Python decodes it into a str that cannot be encoded as UTF-8, and the first
    place that tries (protobuf, sqlite3) raises."""
    s = s.replace("\x00", "")
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
