"""Streaming vs non-streaming on the same prompt: "the first words in a tenth of a second; the whole
reply takes as long either way", measured.

A Comparison runs the same request (messages, model, params) with stream=True and stream=False
through the shared Runner, `repeat` times, on a background thread; the UI or the CLI reads its
pairs while it runs and summarises them when it is done. No Streamlit here.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import metrics
from .generation import DONE, FAILED, STOPPED, Generation, GenerationParams, GenerationRequest, Timeouts
from .kinds import CompareMode, ErrorKind, Mode, RunSource
from .runner import EndpointSource, Runner, get_runner

log = logging.getLogger(__name__)

STREAM = Mode.STREAM
NON_STREAM = Mode.NON_STREAM
SIDES = (STREAM, NON_STREAM)
SIDE_LABELS = {STREAM: "Streaming", NON_STREAM: "Non-streaming"}
# One colour per side wherever the two are drawn (Compare, Runs): Okabe–Ito orange and blue,
# told apart with every common colour-vision deficiency and on a washed-out projector.
SIDE_COLORS = {STREAM: "#E69F00", NON_STREAM: "#0072B2"}

SEQUENTIAL = CompareMode.SEQUENTIAL
RACE = CompareMode.RACE
MODES = (SEQUENTIAL, RACE)
MIN_REPEAT, MAX_REPEAT = 1, 20

# Failures that the next repeat would only repeat: stop starting new ones.
FATAL_ERROR_KINDS = frozenset(
    {
        ErrorKind.UNREACHABLE,
        ErrorKind.AUTH,
        ErrorKind.MODEL_NOT_FOUND,
        ErrorKind.SETUP,
        ErrorKind.BAD_REQUEST,
        ErrorKind.CONTEXT_LENGTH,
    }
)

WARMUP_GRACE_S = 0.5  # how long the warm-up may go on after its first text
WARMUP_MAX_S = 10.0  # a slow prefill must not hold the comparison up: stop the warm-up then

DoneHook = Callable[[Generation, str], object]  # what it returns is ignored


@dataclass
class ComparePair:
    index: int  # 0-based repeat number
    stream: Generation | None = None
    whole: Generation | None = None  # the stream=False generation
    stream_first: bool = True  # which side was started first (sequential mode alternates)

    def get(self, side: str) -> Generation | None:
        return self.stream if side == STREAM else self.whole

    @property
    def generations(self) -> list[Generation]:
        return [g for g in (self.stream, self.whole) if g is not None]

    @property
    def is_finished(self) -> bool:
        return all(g.is_finished for g in self.generations)


def validate(repeat: Any, mode: Any) -> tuple[int, str]:
    """Return (repeat, mode) or raise ValueError with a message fit for the user."""
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not MIN_REPEAT <= repeat <= MAX_REPEAT:
        raise ValueError(f"repeat must be a whole number from {MIN_REPEAT} to {MAX_REPEAT}, not {repeat!r}.")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}.")
    return repeat, mode


class Comparison:
    """Run with start(); read pairs/current/progress/is_finished/error from any thread; stop() any time."""

    def __init__(
        self,
        messages: Iterable[dict[str, str]],
        endpoint: EndpointSource,
        *,
        params: GenerationParams = GenerationParams(),
        repeat: int = 1,
        mode: str = SEQUENTIAL,
        timeouts: Timeouts = Timeouts(),
        runner: Runner | None = None,
        on_generation_done: DoneHook | None = None,
        warmup: bool = True,
    ):
        self.repeat, self.mode = validate(repeat, mode)
        self.messages = tuple(dict(m) for m in messages)
        if not self.messages:
            raise ValueError("messages must not be empty.")
        self.endpoint = endpoint
        self.params = params_for_comparison(params)
        self.timeouts = timeouts
        self.on_generation_done = on_generation_done
        # The first request of a process pays for connection setup and lazy imports in the
        # client (~40 ms here, more under load), and the server's prompt cache is cold; a warm-up
        # request, uncounted, keeps that off whichever side would go first.
        self.warmup = warmup
        self.warmup_generation: Generation | None = None
        self.error: str | None = None  # the comparison itself broke (not a failed generation)
        self._runner = runner
        self._pairs: list[ComparePair] = []
        self._lock = threading.Lock()  # orders "start a generation" against stop()
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- reading, any thread -------------------------------------------------------------
    @property
    def pairs(self) -> list[ComparePair]:
        return list(self._pairs)

    @property
    def current(self) -> ComparePair | None:
        """The pair being run; once finished, the last pair run."""
        return self._pairs[-1] if self._pairs else None

    @property
    def progress(self) -> tuple[int, int]:
        """(finished generations, total generations planned), e.g. (3, 10) for repeat=5."""
        done = sum(g.is_finished for p in self._pairs for g in p.generations)
        return done, 2 * self.repeat

    @property
    def is_finished(self) -> bool:
        return self._finished.is_set()

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    def summary(self) -> list[dict[str, Any]]:
        return summarize(self._pairs)

    def outcomes(self) -> dict[str, dict[str, Any]]:
        return outcomes(self._pairs)

    def verdict(self) -> str:
        return verdict(self.summary(), self.outcomes())

    # ---- control ---------------------------------------------------------------------------
    def start(self) -> Comparison:
        if self._thread is not None:
            raise RuntimeError("this comparison has already been started")
        self._thread = threading.Thread(target=self._run, name="streamchat-compare", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the generations in flight (the runner closes their connections); start no more."""
        with self._lock:
            self._stopping.set()
            in_flight = [g for p in self._pairs for g in p.generations if not g.is_finished]
            if self.warmup_generation is not None:
                in_flight.append(self.warmup_generation)
        for g in in_flight:
            g.stop()

    # ---- the comparison thread -------------------------------------------------------------
    def _run(self) -> None:
        try:
            runner = self._runner or get_runner()
            if self.warmup:
                self._warm_up(runner)
            for i in range(self.repeat):
                if self._stopping.is_set():
                    break
                # Alternate who goes first so warm caches and ordering favour neither side.
                pair = ComparePair(i, stream_first=(i % 2 == 0))
                self._pairs.append(pair)
                order = (True, False) if pair.stream_first else (False, True)
                if self.mode == RACE:
                    started = [g for g in (self._launch(runner, pair, s) for s in order) if g]
                    for g in started:
                        self._await(g)
                else:
                    for stream in order:
                        launched = self._launch(runner, pair, stream)
                        if launched is not None:
                            self._await(launched)
                if any(
                    g.state == FAILED and g.error and g.error.kind in FATAL_ERROR_KINDS
                    for g in pair.generations
                ):
                    break
        except Exception as exc:
            log.exception("comparison failed")
            self.error = f"The comparison stopped unexpectedly: {type(exc).__name__}: {str(exc)[:200]}"
            self.stop()
        finally:
            self._finished.set()

    def _warm_up(self, runner: Runner) -> None:
        """One streamed request, same messages, max_tokens=1, not counted.

        Left to finish so its connection stays in the pool (a TLS handshake is part of the cold
        start); stopped shortly after its first text if the server ignores max_tokens."""
        request = GenerationRequest(
            self.messages,
            stream=True,
            timeouts=self.timeouts,
            params=dataclasses.replace(self.params, max_tokens=1),
        )
        with self._lock:
            if self._stopping.is_set():
                return
            g = self.warmup_generation = runner.start(request, self.endpoint)
        deadline = time.monotonic() + WARMUP_MAX_S
        while not g.wait(0.01) and g.t_first_token is None and time.monotonic() < deadline:
            pass
        if not g.wait(WARMUP_GRACE_S):
            g.stop()
            g.wait()

    def _launch(self, runner: Runner, pair: ComparePair, stream: bool) -> Generation | None:
        request = GenerationRequest(self.messages, stream=stream, params=self.params, timeouts=self.timeouts)
        with self._lock:
            if self._stopping.is_set():
                return None
            g = runner.start(request, self.endpoint)
            if stream:
                pair.stream = g
            else:
                pair.whole = g
        return g

    def _await(self, g: Generation) -> None:
        g.wait()  # bounded: the request's timeouts end every generation
        if self.on_generation_done is not None:
            try:
                self.on_generation_done(g, STREAM if g.request.stream else NON_STREAM)
            except Exception as exc:  # a broken listener must not end the comparison
                log.exception("on_generation_done failed")
                self.error = f"Could not record a run: {type(exc).__name__}: {str(exc)[:200]}"


def record_to_store(store: Any, source: str = RunSource.COMPARE, owner: str | None = None) -> DoneHook:
    """An on_generation_done hook that writes each finished generation to store.runs, as
    `owner`'s (the identity that ran the comparison), with its recording (one group per hook:
    make one hook per comparison)."""
    import uuid

    from .records import run_fields_from_generation
    from .replies import save_recording

    # One group per pair (repeat): the two sides are replayed side by side. The n-th run of a
    # side ends after the (n-1)-th of the same side, in either mode.
    comparison_id = uuid.uuid4().hex
    done_per_side: dict[str, int] = {}

    def hook(generation: Generation, side: str) -> int:
        run_id: int = store.record_run(**run_fields_from_generation(generation, source=source), owner=owner)
        group = f"{comparison_id}-{done_per_side.get(side, 0)}"
        done_per_side[side] = done_per_side.get(side, 0) + 1
        save_recording(
            store, generation, metrics.final_metrics(generation), run_id=run_id, group=group, side=side
        )
        return run_id

    return hook


# ---- numbers --------------------------------------------------------------------------------
def generation_values(g: Generation) -> dict[str, Any]:
    """The per-run numbers the comparison is about (None where not known)."""
    m = metrics.compute(g)
    e2e = m.e2e.value
    tokens = m.output_tokens.value
    if not g.request.stream and m.output_tokens.source == metrics.ESTIMATED:
        tokens = None  # no usage in the body: "one chunk per token" means nothing for one body
    reasoning = m.reasoning_tokens.value
    if not g.request.stream and m.reasoning_tokens.source == metrics.ESTIMATED:
        reasoning = None
    if g.request.stream:
        # First text of any kind: thinking shows as it streams (first_answer_s tells the answer).
        first_text, rate = m.ttft.value, m.decode_tps.value
        first_answer = m.time_to_answer.value
    else:
        # Nothing is visible until the body arrives, and there is no decode to time: the
        # "effective" rate is tokens over the whole wait.
        first_text = first_answer = e2e
        rate = tokens / e2e if tokens and e2e else None
    return {
        "side": STREAM if g.request.stream else NON_STREAM,
        "state": g.state,
        "first_text_s": first_text,
        "first_answer_s": first_answer if g.text else None,
        "thinking_s": m.thinking_s.value,
        "reasoning_tokens": reasoning,
        "reasoning_tokens_source": m.reasoning_tokens.source if reasoning is not None else None,
        "has_reasoning": bool(g.reasoning),
        "ttft_s": m.ttft.value,
        "e2e_s": e2e,
        "output_tokens": tokens,
        "output_tokens_source": m.output_tokens.source,
        "tok_per_s": rate,
        "bytes": m.bytes.value,
        "chunks": m.chunks,
        "error_kind": g.error.kind if g.error else None,
        "error": g.error.message if g.error else None,
    }


def run_rows(pairs: Iterable[ComparePair]) -> list[dict[str, Any]]:
    """One row per generation: repeat number, side, state and its numbers."""
    return [{"repeat": p.index + 1, **generation_values(g)} for p in pairs for g in p.generations]


# metric key, label, unit, help. Labels stay short (a table column at 1280 px, a projector);
# what they mean exactly is in the help text, shown beside the table.
ROWS = (
    (
        "first_text_s",
        "Time to first text",
        "s",
        "Request sent → first visible text. Streaming: TTFT. Non-streaming: the whole wait (= E2E).",
    ),
    ("e2e_s", "Total time (E2E)", "s", "Request sent → last content chunk (non-streaming: → body received)."),
    ("output_tokens", "Output tokens", "tokens", metrics.HELP["output_tokens"]),
    (
        "tok_per_s",
        "Tok/s",
        "tok/s",
        "Streaming: decode rate 1 / TPOT. Non-streaming: effective rate = output tokens ÷ E2E.",
    ),
    ("bytes", "Bytes on the wire", "bytes", metrics.HELP["bytes"]),
    ("chunks", "Chunks", "chunks", "Chunks received (non-streaming: one body)."),
)
# Shown (in summary(), the table, the CLI) only when some run had thinking.
REASONING_ROWS = (
    (
        "first_answer_s",
        "Time to answer",
        "s",
        "Request sent → first answer text, after the thinking. Streaming: time to answer. "
        "Non-streaming: the whole wait (= E2E).",
    ),
    ("thinking_s", "Thinking", "s", metrics.HELP["thinking_s"] + " Streaming only."),
    ("reasoning_tokens", "Thinking tokens", "tokens", metrics.HELP["reasoning_tokens"]),
)


def summarize(pairs: Iterable[ComparePair]) -> list[dict[str, Any]]:
    """One row per metric: median and p95 per side over the runs that finished as done.

    Row keys: metric, label, unit, help, stream_median, stream_p95, stream_n,
    non_stream_median, non_stream_p95, non_stream_n (n = runs the statistics are over).
    """
    values: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    thinking = False
    for pair in pairs:
        for g in pair.generations:
            if g.state == DONE:
                v = generation_values(g)
                values[v["side"]].append(v)
                thinking = thinking or v["has_reasoning"]
    rows = []
    for key, label, unit, help_text in ROWS[:1] + (REASONING_ROWS if thinking else ()) + ROWS[1:]:
        row: dict[str, Any] = {"metric": key, "label": label, "unit": unit, "help": help_text}
        for side in SIDES:
            xs = [v[key] for v in values[side] if v[key] is not None]
            prefix = side.replace("-", "_")
            row[f"{prefix}_median"] = metrics.percentile(xs, 0.5)
            row[f"{prefix}_p95"] = metrics.percentile(xs, 0.95)
            row[f"{prefix}_n"] = len(xs)
        rows.append(row)
    return rows


def outcomes(pairs: Iterable[ComparePair]) -> dict[str, dict[str, Any]]:
    """Per side: how many runs ended done / stopped / failed, and the distinct error messages."""
    result: dict[str, dict[str, Any]] = {
        side: {"runs": 0, DONE: 0, STOPPED: 0, FAILED: 0, "errors": []} for side in SIDES
    }
    for pair in pairs:
        for side in SIDES:
            g = pair.get(side)
            if g is None:
                continue
            out = result[side]
            out["runs"] += 1
            if g.state in (DONE, STOPPED, FAILED):
                out[g.state] += 1
            if g.error and g.error.message not in out["errors"]:
                out["errors"].append(g.error.message)
    return result


def _medians(summary: list[dict[str, Any]], metric: str) -> tuple[float | None, float | None]:
    row = next((r for r in summary if r["metric"] == metric), {})
    return row.get("stream_median"), row.get("non_stream_median")


# Differences smaller than this are noise between two runs of the same request: the verdict
# says "about the same" rather than a percentage (which could round to "-0 %").
SAME_RELATIVE = 0.05  # 5 % of the non-streaming figure
SAME_TIME_S = 0.02  # or 20 ms, whichever is larger
SAME_RATIO = 1.05  # first text / bytes: under 1.05× either way is "about the same"


def _times(ratio: float) -> str:
    return f"{ratio:.0f}×" if ratio >= 10 else f"{ratio:.1f}×"


def total_time_phrase(e2e_stream: float, e2e_whole: float) -> str:
    """Streaming's total time against non-streaming's, in words: "about the same", or
    "12 % longer" / "8 % shorter" (a whole percentage, never "-0 %")."""
    diff = e2e_stream - e2e_whole
    if abs(diff) <= max(SAME_RELATIVE * e2e_whole, SAME_TIME_S):
        return "about the same"
    pct = round(abs(diff) / e2e_whole * 100)
    return f"{max(pct, 1)} % {'longer' if diff > 0 else 'shorter'}"


def verdict(summary: list[dict[str, Any]], outcomes: dict[str, dict[str, Any]] | None = None) -> str:
    """One line in words, e.g. "Streaming showed text 24× sooner; total time about the same;
    3.1× the bytes". Total time and bytes are streaming's, against non-streaming's. When the
    model thought (the summary has a first_answer_s row), streaming's thinking and answer are
    told apart: "…; streaming: first answer words after 2.50 s; thinking visible after 1.00 s"."""
    first_s, first_w = _medians(summary, "first_text_s")
    e2e_s, e2e_w = _medians(summary, "e2e_s")
    bytes_s, bytes_w = _medians(summary, "bytes")
    missing = [side for side, v in ((STREAM, first_s), (NON_STREAM, first_w)) if v is None]
    notes = []
    for side, out in (outcomes or {}).items():
        bad = out.get(FAILED, 0) + out.get(STOPPED, 0)
        if bad and side not in missing:
            notes.append(f"{bad} of {out['runs']} {side} runs did not finish")
    if missing:
        parts = []
        for side in missing:
            out = (outcomes or {}).get(side) or {}
            why = "failed" if out.get(FAILED) else "was stopped" if out.get(STOPPED) else "did not run"
            error = f": {out['errors'][0]}" if out.get("errors") else ""
            parts.append(f"{SIDE_LABELS[side]} {why}{error}")
        return "No comparison: " + "; ".join(parts)
    assert first_s is not None and first_w is not None  # (else `missing` names them)
    if first_s <= 0 and first_w <= 0:
        parts = ["Both showed text at once"]
    elif first_s > 0 and first_w >= first_s * SAME_RATIO:
        parts = [f"Streaming showed text {_times(first_w / first_s)} sooner"]
    elif first_w > 0 and first_s >= first_w * SAME_RATIO:
        parts = [f"Streaming showed text {_times(first_s / first_w)} later"]
    else:
        parts = ["Both showed text at about the same time"]
    if e2e_s is not None and e2e_w:
        parts.append(f"total time {total_time_phrase(e2e_s, e2e_w)}")
    if bytes_s is not None and bytes_w:
        ratio = bytes_s / bytes_w
        parts.append(
            "about the same bytes" if 1 / SAME_RATIO < ratio < SAME_RATIO else f"{_times(ratio)} the bytes"
        )
    answer_s, _ = _medians(summary, "first_answer_s")
    thinking_s, _ = _medians(summary, "thinking_s")
    if thinking_s is not None:
        seen = (
            f"first answer words after {metrics.format_seconds(answer_s)}; "
            if answer_s is not None
            else "no answer words after the thinking; "
        )
        parts.append(f"streaming: {seen}thinking visible after {metrics.format_seconds(first_s)}")
    return "; ".join(parts + notes)


ANSWER = "answer"
THINKING = "thinking"


def visible_text_timeline(generation: Generation, kind: str = ANSWER) -> list[tuple[float, int]]:
    """(seconds since the request was sent, characters visible) at each chunk of answer text,
    or of thinking text with kind="thinking" (its line starts at TTFT, the answer's at time to
    answer).

    Non-streaming shows nothing until the body arrives: a step from 0 to the full length at E2E.
    """
    g = generation
    if g.t_sent is None:
        return []
    points = [(0.0, 0)]
    visible = 0
    for chunk in list(g.chunks):  # copy: the runner may append while we read
        text = chunk.reasoning if kind == THINKING else chunk.text
        if text:
            if not g.request.stream:
                points.append((chunk.t - g.t_sent, 0))
            visible += len(text)
            points.append((chunk.t - g.t_sent, visible))
    return points


def params_for_comparison(params: GenerationParams, seed: int = 1234) -> GenerationParams:
    """Deterministic sampling (temperature 0, a fixed seed) where the caller left them unset,
    so both sides produce the same reply and differ only in delivery."""
    return dataclasses.replace(
        params,
        temperature=0.0 if params.temperature is None else params.temperature,
        seed=seed if params.seed is None else params.seed,
    )
