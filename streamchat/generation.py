"""A generation: one request to a chat-completions endpoint and everything observed about it.

The runner (loop thread) writes it; the UI (script threads) only reads it. Writes are plain
attribute assignments and list appends, which are atomic under the GIL, so readers see a
consistent-enough snapshot without locks: `text` and `reasoning` are always replaced, never
mutated.

A reasoning model's reply has two texts: `reasoning` (the thinking, from `reasoning_content`,
`reasoning` or inline `<think>…</think>`; see streamchat.reasoning) and `text` (the answer only).
Both kinds of token are output tokens: `token_times` holds every chunk that carried either.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .kinds import ErrorKind, GenerationState, Provider

if TYPE_CHECKING:
    from .reasoning import ThinkSplitter
    from .stop_rules import Rule, RuleHit, StopRuleEvaluator

# States, in the order a generation moves through them (names kept for existing callers).
PENDING = GenerationState.PENDING
WAITING_FIRST_TOKEN = GenerationState.WAITING_FIRST_TOKEN
THINKING = GenerationState.THINKING
STREAMING = GenerationState.STREAMING
DONE = GenerationState.DONE
STOPPED = GenerationState.STOPPED
FAILED = GenerationState.FAILED
TERMINAL_STATES = frozenset({DONE, STOPPED, FAILED})

STATUS_LABELS = {
    PENDING: "connecting",
    WAITING_FIRST_TOKEN: "waiting for first token",
    THINKING: "thinking",
    STREAMING: "streaming",
    DONE: "done",
    STOPPED: "stopped",
    FAILED: "error",
}

_ids = itertools.count(1)


@dataclass(frozen=True)
class Endpoint:
    """Where a request goes. `api_key` never appears in repr, logs or the store."""

    provider: Provider | str  # a plain "local" / "remote" is accepted too
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
    repeat_penalty: float | None = None  # 1.0 = off
    repeat_last_n: int | None = None  # tokens the repeat/frequency/presence penalties look back
    dry_multiplier: float | None = None  # DRY: penalises extending a sequence already seen; 0 = off
    top_k: int | None = None
    min_p: float | None = None


OPENAI_FIELDS = ("temperature", "max_tokens", "seed", "top_p", "frequency_penalty", "presence_penalty")
LLAMA_CPP_FIELDS = ("repeat_penalty", "repeat_last_n", "dry_multiplier", "top_k", "min_p")


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    first_token: float = 120.0  # prefill of a long prompt on CPU can take a while
    idle: float = 30.0  # longest gap allowed between chunks once streaming
    whole_reply: float = 600.0  # non-stream: nothing arrives until the end, so one big bound


@dataclass(frozen=True)
class GenerationRequest:
    messages: tuple[dict[str, str], ...]
    stream: bool = True
    params: GenerationParams = GenerationParams()
    timeouts: Timeouts = Timeouts()
    stop_rules: tuple[Rule, ...] = ()  # checked on the partial text as it streams


@dataclass(frozen=True)
class ChunkEvent:
    t: float  # perf_counter when the chunk was received, before any other work
    text: str  # answer delta ("" for role-only / empty deltas / reasoning-only chunks)
    bytes_total: int  # bytes received on the wire so far
    reasoning: str = ""  # reasoning delta


@dataclass
class ErrorInfo:
    kind: ErrorKind
    message: str  # short, human: what happened and what to do
    status: int | None = None
    retry_after: float | None = None


class Generation:
    def __init__(self, request: GenerationRequest, endpoint: Endpoint | None = None):
        self.id = next(_ids)
        self.request = request
        self.endpoint = endpoint  # resolved endpoint (set by the runner for local)
        self.state: GenerationState = PENDING
        self.text = ""  # the answer so far (never the thinking)
        self.reasoning = ""  # the thinking so far
        self.chunks: list[ChunkEvent] = []  # every chunk received, content or not
        self.content_times: list[float] = []  # receive time of each chunk that carried answer text
        self.reasoning_times: list[float] = []  # … of each chunk that carried reasoning
        self.token_times: list[float] = []  # … of each chunk that carried a token of any kind
        self.t_created = time.perf_counter()
        self.t_request_start: float | None = None  # the runner asked the SDK to send it
        self.t_sent: float | None = None  # request written to the connection (wire.py)
        self.t_headers: float | None = None  # response headers received (time to first byte)
        self.t_first_token: float | None = None  # first token of any kind (reasoning or answer)
        self.t_last_token: float | None = None
        self.t_first_reasoning: float | None = None
        self.t_last_reasoning: float | None = None
        self.t_first_content: float | None = None  # first answer token
        self.t_last_content: float | None = None
        # Times answer text already shown was taken back into `reasoning` (a `</think>` arrived
        # in a reply that did not open with `<think>`; see streamchat.reasoning): a renderer
        # that keeps finished blocks of `text` starts over when this changes.
        self.answer_restarts = 0
        self.t_end: float | None = None  # terminal state reached
        self.t_stop_requested: float | None = None
        self.bytes_received = 0
        self.usage: dict[str, Any] | None = None  # server-reported usage
        self.timings: dict[str, Any] | None = None  # llama.cpp server timings
        self.finish_reason: str | None = None
        self.model_reported: str | None = None  # model name echoed by the server
        self.error: ErrorInfo | None = None
        self.rules: StopRuleEvaluator | None = None  # when the request has rules
        self.rule_hit: RuleHit | None = None  # the rule that stopped this reply, and where
        # Token counts known in advance (a replay: the recorded ones, metrics.token_count_args),
        # used by metrics.final_metrics instead of counting again.
        self.fixed_token_counts: dict[str, Any] | None = None
        self._think: ThinkSplitter | None = None  # the runner's <think> splitter (runner.absorb_text)
        self._finished = threading.Event()
        self._stop_callback: Callable[[], object] | None = None
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
        """Chunks that carried answer text."""
        return len(self.content_times)

    @property
    def reasoning_chunk_count(self) -> int:
        return len(self.reasoning_times)

    @property
    def token_chunk_count(self) -> int:
        """Chunks that carried a token of any kind (≈ output tokens while streaming)."""
        return len(self.token_times)

    @property
    def has_reasoning(self) -> bool:
        return bool(self.reasoning)

    @property
    def is_thinking(self) -> bool:
        return self.state == THINKING

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

    def add_done_callback(self, fn: Callable[[Generation], None]) -> None:
        """fn(generation) runs once on the runner thread when the generation ends."""
        if self.is_finished:
            fn(self)
        else:
            self._done_callbacks.append(fn)

    # ---- writing (runner only) -----------------------------------------------------------
    def _record_chunk(
        self, t: float, delta: str, reasoning_delta: str = "", token: bool | None = None
    ) -> None:
        """One chunk received at `t`: its answer text and reasoning text. `token`: the chunk
        carried a token of any kind (default: either text is non-empty); the runner says True
        for content held back as a possible partial `<think>` tag, which is released later."""
        self.chunks.append(ChunkEvent(t, delta, self.bytes_received, reasoning_delta))
        if token is None:
            token = bool(delta or reasoning_delta)
        if token:
            if self.t_first_token is None:
                self.t_first_token = t
            self.t_last_token = t
            self.token_times.append(t)
        if reasoning_delta:
            if self.t_first_reasoning is None:
                self.t_first_reasoning = t
            self.t_last_reasoning = t
            self.reasoning_times.append(t)
            self.reasoning = self.reasoning + reasoning_delta
            if self.state in (PENDING, WAITING_FIRST_TOKEN):
                self.state = THINKING
        if delta:
            if self.t_first_content is None:
                self.t_first_content = t
            if self.state in (PENDING, WAITING_FIRST_TOKEN, THINKING):
                self.state = STREAMING
            self.t_last_content = t
            self.content_times.append(t)
            self.text = self.text + delta

    def _release_held(self, delta: str, reasoning_delta: str = "") -> None:
        """Text held back (a possible partial tag) released at the end of the reply: it arrived
        with the last token chunk, so it is timed there."""
        t = self.t_last_token
        if t is None:
            return
        if reasoning_delta:
            if self.t_first_reasoning is None:
                self.t_first_reasoning = t
            self.t_last_reasoning = t
            if not self.reasoning_times or self.reasoning_times[-1] != t:
                self.reasoning_times.append(t)
            self.reasoning = self.reasoning + reasoning_delta
        if delta:
            if self.t_first_content is None:
                self.t_first_content = t
            self.t_last_content = t
            if not self.content_times or self.content_times[-1] != t:
                self.content_times.append(t)
            self.text = self.text + delta

    def _retract_answer(self) -> None:
        """The answer so far was thinking after all (close-only `</think>`, or whitespace before
        a `<think>`): move it, its chunk times and its chunks' text to the reasoning."""
        moved, times = self.text, self.content_times
        if moved.strip():
            self.reasoning = self.reasoning + moved
            self.reasoning_times = sorted(self.reasoning_times + times)
            if self.reasoning_times:
                self.t_first_reasoning = self.reasoning_times[0]
                self.t_last_reasoning = self.reasoning_times[-1]
            self.chunks = [
                ChunkEvent(c.t, "", c.bytes_total, c.reasoning + c.text) if c.text else c for c in self.chunks
            ]
        else:  # only whitespace before <think>: nothing worth keeping as either text
            self.chunks = [
                ChunkEvent(c.t, "", c.bytes_total, c.reasoning) if c.text else c for c in self.chunks
            ]
        self.content_times = []
        self.t_first_content = self.t_last_content = None
        self.text = ""
        self.answer_restarts += 1
        if self.state == STREAMING:
            self.state = THINKING

    def _finish(self, state: GenerationState, error: ErrorInfo | None = None) -> None:
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
