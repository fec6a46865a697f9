"""Metrics of a generation, defined as in vLLM's serving benchmark (see DESIGN.md).

Every value carries where it came from, so the UI can say so:
  measured  — timed by this client (perf_counter on each chunk as it arrived)
  server    — reported by the server (usage, llama.cpp `timings`)
  estimated — derived with an assumption (e.g. one chunk ≈ one token while streaming)
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from .generation import Generation

MEASURED = "measured"
SERVER = "server"
ESTIMATED = "estimated"

LIVE_WINDOW_S = 1.0

HELP = {
    "ttft": "Time to first token: request sent → first chunk with non-empty content.",
    "ttfb": "Time to first byte: request sent → response headers received.",
    "itl": "Inter-token latency: gaps between consecutive content chunks.",
    "tpot": "Time per output token: (t_last − t_first) / (output_tokens − 1).",
    "decode_tps": "Decode tokens/s = 1 / TPOT. While streaming: tokens received in the last second.",
    "e2e": "End-to-end: request sent → last content chunk (non-stream: → body received).",
    "output_tokens": "Output tokens: server usage when given, else counted locally.",
    "bytes": "Bytes received on the wire for this reply (headers + body, before decompression).",
}


@dataclass(frozen=True)
class Value:
    value: float | int | None
    source: str


@dataclass(frozen=True)
class Metrics:
    ttft: Value
    ttfb: Value
    e2e: Value
    output_tokens: Value
    tpot: Value
    decode_tps: Value
    itl_p50: Value
    itl_p95: Value
    itl_max: Value
    bytes: Value
    chunks: int
    elapsed: float                 # since the request was sent (live timer)
    server_decode_tps: Value       # llama.cpp timings.predicted_per_second
    server_prompt_ms: Value        # llama.cpp timings.prompt_ms (prefill time on the server)


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def inter_token_latencies(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:])]


def output_tokens(generation: Generation, local_count: int | None = None,
                  local_source: str = ESTIMATED) -> Value:
    usage = generation.usage or {}
    if isinstance(usage.get("completion_tokens"), int):
        return Value(usage["completion_tokens"], SERVER)
    if local_count is not None:
        return Value(local_count, local_source)
    # One content chunk per token is how OpenAI, vLLM and llama.cpp stream.
    return Value(generation.content_chunk_count, ESTIMATED)


def compute(generation: Generation, now: float | None = None, local_token_count: int | None = None,
            local_token_source: str = ESTIMATED) -> Metrics:
    now = time.perf_counter() if now is None else now
    g = generation
    sent = g.t_sent
    times = list(g.content_times)   # copy: the runner may append while we read

    def since_sent(t: float | None) -> Value:
        return Value(None if t is None or sent is None else t - sent, MEASURED)

    tokens = output_tokens(g, local_token_count, local_token_source)
    n_tokens = tokens.value or 0
    tpot = None
    if len(times) >= 2 and n_tokens > 1:
        tpot = (times[-1] - times[0]) / (n_tokens - 1)
    # Token source only matters for TPOT when counts come from elsewhere than the chunks.
    tpot_source = MEASURED if tokens.source == ESTIMATED else tokens.source

    if g.is_finished or tpot is None:
        decode = Value(1 / tpot if tpot else None, tpot_source)
    else:
        recent = [t for t in times if t > now - LIVE_WINDOW_S]
        span = min(LIVE_WINDOW_S, now - times[0]) if times else 0
        decode = Value(len(recent) / span if span > 0.05 else 1 / tpot, ESTIMATED)

    itls = inter_token_latencies(times)
    timings = g.timings or {}
    end_of_reply = g.t_last_content if g.t_last_content is not None else g.t_end
    elapsed_until = end_of_reply if g.is_finished else now
    return Metrics(
        ttft=since_sent(g.t_first_content),
        ttfb=since_sent(g.t_headers),
        e2e=since_sent(end_of_reply) if g.is_finished else Value(None, MEASURED),
        output_tokens=tokens,
        tpot=Value(tpot, tpot_source),
        decode_tps=decode,
        itl_p50=Value(percentile(itls, 0.5), MEASURED),
        itl_p95=Value(percentile(itls, 0.95), MEASURED),
        itl_max=Value(max(itls) if itls else None, MEASURED),
        bytes=Value(g.bytes_received, MEASURED),
        chunks=len(g.chunks),
        elapsed=(elapsed_until - sent) if (sent is not None and elapsed_until is not None) else 0.0,
        server_decode_tps=Value(timings.get("predicted_per_second"), SERVER),
        server_prompt_ms=Value(timings.get("prompt_ms"), SERVER),
    )


def summary_line(m: Metrics) -> str:
    """One line for a finished message, e.g. `TTFT 180 ms · 74 tok/s · 312 tokens · 4.3 s`."""
    parts = []
    if m.ttft.value is not None:
        parts.append(f"TTFT {format_seconds(m.ttft.value)}")
    if m.decode_tps.value:
        parts.append(f"{m.decode_tps.value:.0f} tok/s")
    if m.output_tokens.value is not None:
        parts.append(f"{m.output_tokens.value} tokens")
    if m.e2e.value is not None:
        parts.append(format_seconds(m.e2e.value))
    return " · ".join(parts)


def format_seconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"
