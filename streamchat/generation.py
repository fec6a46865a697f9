"""A generation: one request to a chat-completions endpoint and everything observed about it.

The runner (loop thread) writes it; the UI (script threads) only reads it. Writes are plain
attribute assignments and list appends, which are atomic under the GIL, so readers see a
consistent-enough snapshot without locks: `text` is always replaced, never mutated.
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

# States, in the order a generation moves through them.
PENDING = "pending"                      # queued, endpoint being resolved / connection being made
WAITING_FIRST_TOKEN = "waiting_first_token"  # request sent, no content yet (prefill)
STREAMING = "streaming"                  # content arriving
DONE = "done"
STOPPED = "stopped"
FAILED = "failed"
TERMINAL_STATES = frozenset({DONE, STOPPED, FAILED})

STATUS_LABELS = {
    PENDING: "connecting",
    WAITING_FIRST_TOKEN: "waiting for first token",
    STREAMING: "streaming",
    DONE: "done",
    STOPPED: "stopped",
    FAILED: "error",
}

_ids = itertools.count(1)


@dataclass(frozen=True)
class Endpoint:
    """Where a request goes. `api_key` never appears in repr, logs or the store."""
    provider: str               # "local" | "remote"
    base_url: str
    model: str
    api_key: str = field(default="", repr=False)


@dataclass(frozen=True)
class GenerationParams:
    """Sampling parameters; None means "not sent" (the server's own default applies)."""
    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    top_p: float | None = None
    # OpenAI Chat Completions fields, sent to any endpoint when set.
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    # llama.cpp server fields (see LLAMA_CPP_FIELDS): sent only to the embedded server, since
    # other endpoints (OpenAI) reject unknown fields.
    repeat_penalty: float | None = None     # 1.0 = off
    repeat_last_n: int | None = None        # tokens the repeat/frequency/presence penalties look back
    dry_multiplier: float | None = None     # DRY: penalises extending a sequence already seen; 0 = off
    top_k: int | None = None
    min_p: float | None = None


OPENAI_FIELDS = ("temperature", "max_tokens", "seed", "top_p", "frequency_penalty",
                 "presence_penalty")
LLAMA_CPP_FIELDS = ("repeat_penalty", "repeat_last_n", "dry_multiplier", "top_k", "min_p")


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    first_token: float = 120.0   # prefill of a long prompt on CPU can take a while
    idle: float = 30.0           # longest gap allowed between chunks once streaming
    whole_reply: float = 600.0   # non-stream: nothing arrives until the end, so one big bound


@dataclass(frozen=True)
class GenerationRequest:
    messages: tuple[dict[str, str], ...]
    stream: bool = True
    params: GenerationParams = GenerationParams()
    timeouts: Timeouts = Timeouts()
    stop_rules: tuple = ()   # stop_rules.Rule: checked on the partial text as it streams


@dataclass(frozen=True)
class ChunkEvent:
    t: float          # perf_counter when the chunk was received, before any other work
    text: str         # content delta ("" for role-only / empty deltas)
    bytes_total: int  # bytes received on the wire so far


@dataclass
class ErrorInfo:
    kind: str                   # e.g. "unreachable", "auth", "rate_limited"; see errors.py
    message: str                # short, human: what happened and what to do
    status: int | None = None
    retry_after: float | None = None


class Generation:
    def __init__(self, request: GenerationRequest, endpoint: Endpoint | None = None):
        self.id = next(_ids)
        self.request = request
        self.endpoint = endpoint            # resolved endpoint (set by the runner for local)
        self.state = PENDING
        self.text = ""
        self.chunks: list[ChunkEvent] = []  # every chunk received, content or not
        self.content_times: list[float] = []  # receive time of each chunk that carried content
        self.t_created = time.perf_counter()
        self.t_sent: float | None = None          # request about to be written to the socket
        self.t_headers: float | None = None       # response headers received (time to first byte)
        self.t_first_content: float | None = None
        self.t_last_content: float | None = None
        self.t_end: float | None = None           # terminal state reached
        self.t_stop_requested: float | None = None
        self.bytes_received = 0
        self.usage: dict[str, Any] | None = None     # server-reported usage
        self.timings: dict[str, Any] | None = None   # llama.cpp server timings
        self.finish_reason: str | None = None
        self.model_reported: str | None = None       # model name echoed by the server
        self.error: ErrorInfo | None = None
        self.rules = None            # stop_rules.StopRuleEvaluator when the request has rules
        self.rule_hit = None         # stop_rules.RuleHit: the rule that stopped this reply, and where
        self._finished = threading.Event()
        self._stop_callback: Callable[[], None] | None = None
        self._done_callbacks: list[Callable[[Generation], None]] = []

    # ---- reading -------------------------------------------------------------------------
    @property
    def is_finished(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def is_active(self) -> bool:
        """In progress and not asked to stop: what the UI uses to show the Stop button."""
        return not self.is_finished and self.t_stop_requested is None

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.state]

    @property
    def content_chunk_count(self) -> int:
        return len(self.content_times)

    def wait(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    # ---- control -------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the runner to cancel: the HTTP response is closed at once. Safe from any thread."""
        if self.is_finished or self.t_stop_requested is not None:
            return
        self.t_stop_requested = time.perf_counter()
        if self._stop_callback is not None:
            self._stop_callback()

    def add_done_callback(self, fn: Callable[["Generation"], None]) -> None:
        """fn(generation) runs once on the runner thread when the generation ends."""
        if self.is_finished:
            fn(self)
        else:
            self._done_callbacks.append(fn)

    # ---- writing (runner only) -----------------------------------------------------------
    def _record_chunk(self, t: float, delta: str) -> None:
        self.chunks.append(ChunkEvent(t, delta, self.bytes_received))
        if delta:
            if self.t_first_content is None:
                self.t_first_content = t
                self.state = STREAMING
            self.t_last_content = t
            self.content_times.append(t)
            self.text = self.text + delta

    def _finish(self, state: str, error: ErrorInfo | None = None) -> None:
        if self.is_finished:
            return
        self.error = error
        self.t_end = time.perf_counter()
        self.state = state
        self._finished.set()
        for fn in self._done_callbacks:
            try:
                fn(self)
            except Exception:  # a broken listener must not break the runner
                import logging
                logging.getLogger(__name__).exception("done callback failed")
