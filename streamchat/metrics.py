"""Metrics of a generation, defined as in vLLM's serving benchmark (see docs/ARCHITECTURE.md).

Every value carries where it came from, so the UI can say so:
  measured    — timed by this client (perf_counter on each chunk as it arrived)
  server      — reported by the server (usage, llama.cpp `timings`)
  exact       — counted here with the model's own tokenizer
  estimated   — derived with an assumption (e.g. one chunk ≈ one token while streaming)
  approximate — counted here with another model's tokenizer (cl100k_base)
Estimated and approximate values are shown with a leading "~" (see `shown`).

Reasoning models (vLLM / AIPerf convention): thinking tokens are output tokens. TTFT ends at the
first token of any kind; Time to answer at the first answer token; TPOT, Decode tok/s and ITL are
over all output tokens (thinking and answer); E2E ends at the last token of any kind.

One reply has one set of figures: `final_metrics(g)` computes them once per finished generation
(server usage, else the local token count) and every place that shows a finished reply — the
live panel's last frame, the footer under the message, the Runs row, exports — uses those.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .generation import THINKING, Generation
from .kinds import Source
from .reasoning import usage_reasoning_tokens

if TYPE_CHECKING:
    from .tokens import TokenCount

MEASURED = Source.MEASURED
SERVER = Source.SERVER
ESTIMATED = Source.ESTIMATED
EXACT = Source.EXACT
APPROXIMATE = Source.APPROXIMATE
ESTIMATE_SOURCES = frozenset({ESTIMATED, APPROXIMATE})

# Live Decode tok/s: shown once it means something, over a window long enough to be steady.
LIVE_MIN_TOKENS = 5  # token chunks (thinking or answer) received…
LIVE_MIN_SPAN_S = 0.5  # …over at least this long since the first one
LIVE_WINDOW_S = 2.0  # the rate is taken over about the last two seconds

HELP = {
    "ttft": "Time to first token: request sent → first token of any kind (thinking or answer).",
    "time_to_answer": "Time to answer: request sent → first answer token, after any thinking. "
    "Equals TTFT for a model that does not think.",
    "thinking_s": "Thinking: first → last thinking (reasoning) token.",
    "reasoning_tokens": "Thinking tokens: server usage (completion_tokens_details."
    "reasoning_tokens) when given, else counted locally. Part of the "
    "output tokens.",
    "ttfb": "Time to first byte: request sent → response headers received.",
    "itl": "Inter-token latency: gaps between consecutive token chunks (thinking and answer).",
    "tpot": "Time per output token: (t_last − t_first) / (output_tokens − 1), over all output "
    "tokens (thinking and answer).",
    "decode_tps": "Decode tokens/s = 1 / TPOT, thinking included. While streaming: chunks over "
    "the last 2 s, shown from 5 chunks over 0.5 s on.",
    "e2e": "End-to-end: request sent → last token of any kind (non-stream: → body received).",
    "output_tokens": "Output tokens: server usage when given, else counted locally. Thinking "
    "tokens are output tokens (as vLLM and AIPerf count them).",
    "setup": "Client set-up: the runner asking for the request → the request written to the "
    "connection (building it, connecting). Not part of TTFT.",
    "bytes": "Bytes received on the wire for this reply (headers + body, before decompression).",
}


@dataclass(frozen=True)
class Value:
    value: float | int | None
    source: Source

    @property
    def estimated(self) -> bool:
        return self.source in ESTIMATE_SOURCES


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
    elapsed: float  # since the request was sent (live timer)
    server_decode_tps: Value  # llama.cpp timings.predicted_per_second
    server_prompt_ms: Value  # llama.cpp timings.prompt_ms (prefill time on the server)
    continuation: bool = False  # the figures cover a continuation of an earlier reply only
    # Reasoning models (None values when the reply had no thinking):
    time_to_answer: Value = Value(None, MEASURED)  # request sent → first answer token
    thinking_s: Value = Value(None, MEASURED)  # first → last reasoning token (live: → now)
    reasoning_tokens: Value = Value(None, MEASURED)  # thinking tokens (part of output_tokens)
    # The client's own time before the request reached the connection (building it, connecting):
    # shown on its own so TTFT is the server's and the network's.
    setup: Value = Value(None, MEASURED)

    @property
    def has_reasoning(self) -> bool:
        return bool(self.reasoning_tokens.value) or self.thinking_s.value is not None


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def inter_token_latencies(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]  # consecutive pairs


def is_continuation(generation: Generation) -> bool:
    """Continue sends the partial reply as the last (assistant) message: the model carries on
    from it, and this generation's figures cover only the new part."""
    messages = generation.request.messages
    return bool(messages) and messages[-1].get("role") == "assistant"


def output_tokens(
    generation: Generation, local_count: int | None = None, local_source: Source = ESTIMATED
) -> Value:
    """All output tokens, thinking included (server usage.completion_tokens includes them)."""
    usage = generation.usage or {}
    if isinstance(usage.get("completion_tokens"), int):
        return Value(usage["completion_tokens"], SERVER)
    if local_count is not None:
        return Value(local_count, local_source)
    if not generation.token_times:
        return Value(0, MEASURED)  # nothing received: no estimate about it
    # One chunk per token is how OpenAI, vLLM and llama.cpp stream (thinking chunks too).
    return Value(generation.token_chunk_count, ESTIMATED)


def server_reasoning_tokens(generation: Generation) -> int | None:
    """The server's reasoning token count, when it is one to trust: a server that reports 0
    for a reply whose thinking we received (some send the field always) is not."""
    n = usage_reasoning_tokens(generation.usage)
    if n is None or (n == 0 and generation.reasoning):
        return None
    return n


def reasoning_tokens(
    generation: Generation, local_count: int | None = None, local_source: Source = ESTIMATED
) -> Value:
    """Thinking tokens: server usage (completion_tokens_details.reasoning_tokens), else the
    local count, else one per reasoning chunk (estimated); None when there was no thinking."""
    n = server_reasoning_tokens(generation)
    if n is not None:
        return Value(n, SERVER)
    if not generation.reasoning and not generation.reasoning_times:
        return Value(None, MEASURED)
    if local_count is not None:
        return Value(local_count, local_source)
    return Value(generation.reasoning_chunk_count, ESTIMATED)


def thinking_seconds(generation: Generation, now: float | None = None) -> float | None:
    """First → last reasoning token; while still thinking, first reasoning token → now.
    None without thinking, and for a non-streamed reply (it all arrives at once)."""
    g = generation
    first, last = g.t_first_reasoning, g.t_last_reasoning  # (set together)
    if first is None or last is None or not g.request.stream:
        return None
    if g.state == THINKING and not g.is_finished and now is not None:
        return max(now, last) - first
    return last - first


def live_decode_rate(times: list[float], now: float) -> float | None:
    """Decode tok/s while streaming (1 chunk ≈ 1 token), or None while it means nothing yet.

    Shown once LIVE_MIN_TOKENS chunks arrived over LIVE_MIN_SPAN_S since the first. Taken from
    the chunk just before the last LIVE_WINDOW_S to the last chunk: gaps / time, so it is
    never above what those chunks support, (k − 1) / (t_last − t_anchor) — in the first window
    (n − 1) / (t_last − t_first). Chunks that come in bursts do not make it jump; a stall (no
    chunk for longer than the longest gap in the window) makes it fall, to 0 after a window.
    """
    n = len(times)
    if n < LIVE_MIN_TOKENS or now - times[0] < LIVE_MIN_SPAN_S:
        return None
    now = max(now, times[-1])
    anchor = max(bisect.bisect_right(times, now - LIVE_WINDOW_S) - 1, 0)
    gaps = n - 1 - anchor
    if gaps == 0:
        return 0.0  # stalled for a whole window
    window = times[anchor:]
    longest_gap = max(b - a for a, b in zip(window, window[1:], strict=False))
    span = max(times[-1], now - longest_gap) - times[anchor]
    return gaps / span if span > 0 else None


def compute(
    generation: Generation,
    now: float | None = None,
    local_token_count: int | None = None,
    local_token_source: Source = ESTIMATED,
    local_reasoning_count: int | None = None,
    local_reasoning_source: Source = ESTIMATED,
) -> Metrics:
    """The figures as of `now`. For a finished generation, show `final_metrics(g)` instead: it
    adds the local token counts when the server reported no usage. `local_token_count` is all
    output tokens (answer + thinking), `local_reasoning_count` the thinking's."""
    now = time.perf_counter() if now is None else now
    g = generation
    sent = g.t_sent
    times = list(g.token_times)  # every output token chunk; copy: the runner may append

    def since_sent(t: float | None) -> Value:
        return Value(None if t is None or sent is None else t - sent, MEASURED)

    tokens = output_tokens(g, local_token_count, local_token_source)
    n_tokens = tokens.value or 0
    tpot = None
    if len(times) >= 2 and n_tokens > 1:
        tpot = (times[-1] - times[0]) / (n_tokens - 1)
    # Time is measured; the count is as good as its source (a chunk estimate makes an estimate).
    tpot_source = MEASURED if tokens.source == MEASURED else tokens.source

    if g.is_finished:
        decode = Value(1 / tpot if tpot else None, tpot_source)
    else:
        decode = Value(live_decode_rate(times, now) if times else None, ESTIMATED)

    itls = inter_token_latencies(times)
    timings = g.timings or {}
    end_of_reply = g.t_last_token if g.t_last_token is not None else g.t_end
    elapsed_until = end_of_reply if g.is_finished else now
    return Metrics(
        ttft=since_sent(g.t_first_token),
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
        continuation=is_continuation(g),
        time_to_answer=since_sent(g.t_first_content),
        thinking_s=Value(thinking_seconds(g, now), MEASURED),
        reasoning_tokens=reasoning_tokens(g, local_reasoning_count, local_reasoning_source),
        setup=Value(
            g.t_sent - g.t_request_start if g.t_sent is not None and g.t_request_start is not None else None,
            MEASURED,
        ),
    )


# ---- the one final set of figures per finished generation -------------------------------------
_finals: weakref.WeakKeyDictionary[Generation, Metrics] = weakref.WeakKeyDictionary()
_final_locks: weakref.WeakKeyDictionary[Generation, threading.Lock] = weakref.WeakKeyDictionary()
_finals_lock = threading.Lock()


def local_token_counts(generation: Generation) -> tuple[TokenCount | None, TokenCount | None]:
    """(output, thinking): tokens.TokenCount of what the server did not report, counted with the
    same tokenizer path for both (None where the server reported it or there is nothing).
    Output = answer + thinking."""
    g, endpoint = generation, generation.endpoint
    if endpoint is None or not (g.text or g.reasoning):
        return None, None
    from .tokens import TokenCount, count_reply_tokens  # tiktoken: loaded only when needed

    need_output = not isinstance((g.usage or {}).get("completion_tokens"), int)
    need_reasoning = bool(g.reasoning) and server_reasoning_tokens(g) is None
    if not need_output and not need_reasoning:
        return None, None

    def count(text: str) -> TokenCount:
        return count_reply_tokens(text, endpoint.provider, endpoint.model)

    thinking = count(g.reasoning) if g.reasoning and (need_reasoning or need_output) else None
    output: TokenCount | None = None
    if need_output:
        answer = count(g.text) if g.text else None
        parts = [c for c in (answer, thinking) if c is not None]
        if len(parts) == 1:
            output = parts[0]
        else:
            approx = [c for c in parts if c.source == APPROXIMATE]
            source = APPROXIMATE if approx else parts[0].source
            output = TokenCount(sum(c.n for c in parts), source, (approx or parts)[0].method)
    return output, (thinking if need_reasoning else None)


def local_token_count(generation: Generation) -> TokenCount | None:
    """tokens.TokenCount of the reply's output (answer + thinking) when the server reported no
    usage, else None."""
    return local_token_counts(generation)[0]


def final_metrics(generation: Generation) -> Metrics:
    """The figures of a finished generation, computed once (with the local token count when
    the server sent no usage) and the same object for every caller and thread after that.
    A generation still running gets its live figures, not cached."""
    g = generation
    if not g.is_finished:
        return compute(g)
    with _finals_lock:
        done = _finals.get(g)
        if done is not None:
            return done
        lock = _final_locks.setdefault(g, threading.Lock())
    with lock:  # one count per generation, also when the saver and the panel ask at once
        done = _finals.get(g)
        if done is None and g.fixed_token_counts is not None:  # a replay: the recorded counts
            done = compute(g, **g.fixed_token_counts)
            with _finals_lock:
                _finals[g] = done
        if done is None:
            try:
                counted, thinking = local_token_counts(g)
            except Exception:  # counting must never cost the figures
                counted = thinking = None
            kwargs: dict[str, Any] = {}
            if counted:
                kwargs.update(local_token_count=counted.n, local_token_source=counted.source)
            if thinking:
                kwargs.update(local_reasoning_count=thinking.n, local_reasoning_source=thinking.source)
            done = compute(g, **kwargs)
            with _finals_lock:
                _finals[g] = done
        return done


def current(generation: Generation, now: float | None = None) -> Metrics:
    """What to show for a generation right now: live figures, or its final ones once finished."""
    return final_metrics(generation) if generation.is_finished else compute(generation, now)


def token_count_args(m: Metrics) -> dict[str, Any]:
    """The local count `m` was computed with, as keyword arguments for compute() and
    store.run_fields_from_generation (empty when the server reported usage or no count was made),
    so a recomputation gives the same figures."""
    out: dict[str, Any] = {}
    tokens = m.output_tokens
    if tokens.source not in (SERVER, MEASURED, ESTIMATED) and tokens.value is not None:
        out.update(local_token_count=tokens.value, local_token_source=tokens.source)
    thinking = m.reasoning_tokens
    if thinking.source not in (SERVER, MEASURED, ESTIMATED) and thinking.value is not None:
        out.update(local_reasoning_count=thinking.value, local_reasoning_source=thinking.source)
    return out


# ---- text -------------------------------------------------------------------------------------
def shown(value: Value, text: str) -> str:
    """`text` (the formatted value) with "~" in front when the value is estimated."""
    return f"~{text}" if value.estimated else text


CONTINUATION_LABEL = "continuation"
CONTINUATION_HELP = (
    "These figures cover the continuation only (the last request); the part "
    "before it has its own run on the Runs page."
)


def thinking_part(m: Metrics) -> str:
    """ "thought 1.52 s (60 tokens)" for a reply with thinking, "" without; "~60" when estimated."""
    if not m.has_reasoning:
        return ""
    n = m.reasoning_tokens
    count = shown(n, f"{n.value} tokens") if n.value is not None else ""
    if m.thinking_s.value is None:
        return f"thought: {count}" if count else ""
    return f"thought {format_seconds(m.thinking_s.value)}" + (f" ({count})" if count else "")


def summary_line(m: Metrics) -> str:
    """One line for a finished message, e.g. `TTFT 180 ms · 74.0 tok/s · 312 tokens · 4.38 s`;
    `~74.0 tok/s · ~312 tokens` when counted approximately, `continuation: …` for a continuation.
    A reply with thinking adds it after TTFT: `TTFT 1.00 s · thought 1.50 s (60 tokens) · …`
    (the tokens and tok/s are all output tokens, thinking included)."""
    parts = []
    if m.ttft.value is not None:
        parts.append(f"TTFT {format_seconds(m.ttft.value)}")
    if thinking_part(m):
        parts.append(thinking_part(m))
    if m.decode_tps.value:
        parts.append(shown(m.decode_tps, f"{m.decode_tps.value:.1f} tok/s"))
    if m.output_tokens.value is not None:
        parts.append(shown(m.output_tokens, f"{m.output_tokens.value} tokens"))
    if m.e2e.value is not None:
        parts.append(format_seconds(m.e2e.value))
    line = " · ".join(parts)
    return f"{CONTINUATION_LABEL}: {line}" if m.continuation and line else line


def format_seconds(seconds: float) -> str:
    """To the millisecond under a second ("980 ms"), three significant digits above ("1.02 s",
    "12.4 s", "124 s")."""
    if seconds < 0.9995:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 9.995:
        return f"{seconds:.2f} s"
    if seconds < 99.95:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s"
