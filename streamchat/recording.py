"""A reply's recording: every chunk with its arrival time, the request's settings and the final
figures, packed small enough to keep with every reply (see streamchat.replay to play it back).

The format (version 1) is one JSON object, zlib-compressed into a BLOB (Store.save_recording):

    v          1
    setup      client set-up: the runner asked for the request → request sent (s, or null)
    headers    request sent → response headers (s, or null)
    end        request sent → terminal state (s)
    dt         per chunk: microseconds since the previous chunk (the first: since request sent)
    db         per chunk: bytes received since the previous chunk (the first: since sent)
    c          per chunk: its answer text ("" for none)
    r          per chunk: its thinking text (only when the reply had thinking)
    tok        indices of chunks whose token flag differs from "carried text" (a held-back
               partial `<think>` tag, role-only chunks never differ)
    bytes      bytes received in all (headers included)
    text, reasoning   the final answer and thinking of this generation (text held back as a
               partial tag and released at the end is the part the chunks do not carry)
    prefix, reasoning_prefix   what the message had before (Continue appends to it)
    state, error, error_kind, finish_reason, usage, timings, model_reported
    counts     the local token counts the final figures were computed with (metrics.token_count_args)
    metrics    the final figures as saved with the message (replies.metrics_dict)
    settings   stream, params, provider, model, base_url (no key, no user:password), continuation
    prompt     the last user message of the request
    created_at ISO time the reply was recorded
    group, side   a Compare run: the comparison it belongs to and its side

Times are rounded to the microsecond. A 2,000-token reply packs into ~10 KB (tests/test_recording.py).
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import metrics as metrics_mod
from .generation import Generation
from .records import safe_base_url

VERSION = 1
NO_RECORDING = "no recording"


class RecordingError(ValueError):
    """The bytes are not a recording this version can play."""


@dataclass(frozen=True)
class Chunk:
    t: float  # seconds since the request was sent
    text: str  # answer delta
    reasoning: str  # thinking delta
    bytes_total: int  # bytes received up to and with this chunk
    token: bool  # carried an output token (of any kind)


@dataclass
class Recording:
    chunks: list[Chunk]
    end: float
    setup: float | None = None
    headers: float | None = None
    bytes: int = 0
    text: str = ""
    reasoning: str = ""
    prefix: str = ""
    reasoning_prefix: str = ""
    state: str = "done"
    error: str | None = None
    error_kind: str | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    model_reported: str | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    prompt: str = ""
    created_at: str = ""
    group: str | None = None
    side: str | None = None

    @property
    def model(self) -> str:
        return str(self.settings.get("model") or "unknown model")

    @property
    def stream(self) -> bool:
        return bool(self.settings.get("stream", True))

    @property
    def heading(self) -> str:
        """What a side-by-side replay calls it: "Streaming" / "Non-streaming" for the default
        pair's sides, "lane · model · streaming" for a lane of any other comparison."""
        mode = "Streaming" if self.stream else "Non-streaming"
        if self.side in (None, "stream", "non-stream"):
            return mode
        return f"{self.side} · {self.model} · {mode.lower()}"

    @property
    def first_token(self) -> float | None:
        return next((c.t for c in self.chunks if c.token), None)

    @property
    def last_token(self) -> float | None:
        return next((c.t for c in reversed(self.chunks) if c.token), None)


def _prompt_of(g: Generation) -> str:
    for message in reversed(g.request.messages):
        if message.get("role") != "user":
            continue
        content: Any = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):  # content parts: keep the text ones
            return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def from_generation(
    g: Generation,
    m: metrics_mod.Metrics | None = None,
    *,
    prefix: str = "",
    reasoning_prefix: str = "",
    group: str | None = None,
    side: str | None = None,
) -> Recording | None:
    """The recording of a finished generation (None when the request was never sent)."""
    sent = g.t_sent
    if sent is None:
        return None
    m = m or metrics_mod.final_metrics(g)
    from .replies import metrics_dict  # (replies imports the runner; keep this module light)

    token_times = set(g.token_times)
    chunks = [
        # A chunk carried a token when its time is in token_times (perf_counter floats, one
        # per chunk in practice): a held-back partial tag has no text yet but is a token.
        Chunk(c.t - sent, c.text, c.reasoning, c.bytes_total, c.t in token_times)
        for c in list(g.chunks)
    ]
    end_at = g.t_end if g.t_end is not None else (g.t_last_token or sent)
    endpoint = g.endpoint
    return Recording(
        chunks=chunks,
        end=end_at - sent,
        setup=(sent - g.t_request_start) if g.t_request_start is not None else None,
        headers=(g.t_headers - sent) if g.t_headers is not None else None,
        bytes=g.bytes_received,
        text=g.text,
        reasoning=g.reasoning,
        prefix=prefix,
        reasoning_prefix=reasoning_prefix,
        state=str(g.state),
        error=g.error.message if g.error else None,
        error_kind=str(g.error.kind) if g.error else None,
        finish_reason=g.finish_reason,
        usage=g.usage,
        timings=g.timings,
        model_reported=g.model_reported,
        counts={
            k: str(v) if k.endswith("_source") else v for k, v in metrics_mod.token_count_args(m).items()
        },
        metrics=metrics_dict(m),
        settings={
            "stream": g.request.stream,
            "params": dataclasses.asdict(g.request.params),
            "provider": str(endpoint.provider) if endpoint else None,
            "model": endpoint.model if endpoint else None,
            "base_url": safe_base_url(endpoint.base_url) if endpoint else None,
            "continuation": metrics_mod.is_continuation(g),
        },
        prompt=_prompt_of(g),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        group=group,
        side=side,
    )


# ---- packing ----------------------------------------------------------------------------------
def to_dict(rec: Recording) -> dict[str, Any]:
    """The JSON form (version 1): columns of per-chunk values, times as µs deltas."""
    dt: list[int] = []
    db: list[int] = []
    prev_us, prev_bytes = 0, 0
    tok: list[int] = []
    for i, c in enumerate(rec.chunks):
        us = round(c.t * 1e6)
        dt.append(us - prev_us)
        db.append(c.bytes_total - prev_bytes)
        prev_us, prev_bytes = us, c.bytes_total
        if c.token != bool(c.text or c.reasoning):
            tok.append(i)
    out: dict[str, Any] = {
        "v": VERSION,
        "setup": rec.setup,
        "headers": rec.headers,
        "end": rec.end,
        "dt": dt,
        "db": db,
        "c": [c.text for c in rec.chunks],
    }
    if any(c.reasoning for c in rec.chunks):
        out["r"] = [c.reasoning for c in rec.chunks]
    if tok:
        out["tok"] = tok
    for name in (
        "bytes",
        "text",
        "reasoning",
        "prefix",
        "reasoning_prefix",
        "state",
        "error",
        "error_kind",
        "finish_reason",
        "usage",
        "timings",
        "model_reported",
        "counts",
        "metrics",
        "settings",
        "prompt",
        "created_at",
        "group",
        "side",
    ):
        value = getattr(rec, name)
        if value not in (None, "", {}):
            out[name] = value
    return out


def from_dict(d: dict[str, Any]) -> Recording:
    if not isinstance(d, dict) or d.get("v") != VERSION:
        raise RecordingError("not a recording of a known version")
    try:
        dts, dbs, texts = d["dt"], d["db"], d["c"]
        reasonings = d.get("r") or [""] * len(texts)
        flipped = set(d.get("tok") or ())
        if not len(dts) == len(dbs) == len(texts) == len(reasonings):
            raise RecordingError("the recording's columns differ in length")
        chunks, us, total = [], 0, 0
        for i, (dt, db, text, reasoning) in enumerate(zip(dts, dbs, texts, reasonings, strict=True)):
            us += int(dt)
            total += int(db)
            token = bool(text or reasoning) != (i in flipped)
            chunks.append(Chunk(us / 1e6, str(text), str(reasoning), total, token))
        return Recording(
            chunks=chunks,
            end=float(d["end"]),
            setup=d.get("setup"),
            headers=d.get("headers"),
            bytes=int(d.get("bytes", total)),
            text=d.get("text", ""),
            reasoning=d.get("reasoning", ""),
            prefix=d.get("prefix", ""),
            reasoning_prefix=d.get("reasoning_prefix", ""),
            state=d.get("state", "done"),
            error=d.get("error"),
            error_kind=d.get("error_kind"),
            finish_reason=d.get("finish_reason"),
            usage=d.get("usage"),
            timings=d.get("timings"),
            model_reported=d.get("model_reported"),
            counts=d.get("counts", {}),
            metrics=d.get("metrics", {}),
            settings=d.get("settings", {}),
            prompt=d.get("prompt", ""),
            created_at=d.get("created_at", ""),
            group=d.get("group"),
            side=d.get("side"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, RecordingError):
            raise
        raise RecordingError(f"damaged recording: {exc}") from None


def encode(rec: Recording) -> bytes:
    """Compact JSON, zlib level 9."""
    raw = json.dumps(to_dict(rec), ensure_ascii=False, separators=(",", ":"))
    return zlib.compress(raw.encode("utf-8"), 9)


def decode(data: bytes) -> Recording:
    try:
        raw = zlib.decompress(data)
        d = json.loads(raw.decode("utf-8"))
    except (zlib.error, UnicodeDecodeError, ValueError) as exc:
        raise RecordingError(f"damaged recording: {exc}") from None
    return from_dict(d)
