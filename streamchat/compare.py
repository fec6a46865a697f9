"""Lanes racing on one prompt: by default streaming vs non-streaming on the same model ("the first
words in a tenth of a second; the whole reply takes as long either way"), or 2–4 lanes of any
endpoints, models and stream settings (streamchat.lanes), measured.

A Comparison runs the same messages in every lane through the shared Runner, `repeat` times, on
a background thread; the UI or the CLI reads its rounds while it runs and summarises them when it
is done. A lane that fails stays failed on its own: the others go on. No Streamlit here.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from . import metrics
from .generation import DONE, FAILED, STOPPED, Generation, GenerationParams, GenerationRequest, Timeouts
from .kinds import CompareMode, ErrorKind, Mode, RunSource
from .lanes import LANE_COLORS, Lane, check_lanes, default_lanes, is_default_pair
from .runner import EndpointSource, Runner, get_runner

log = logging.getLogger(__name__)

STREAM = Mode.STREAM
NON_STREAM = Mode.NON_STREAM
SIDES = (STREAM, NON_STREAM)
SIDE_LABELS = {STREAM: "Streaming", NON_STREAM: "Non-streaming"}
# One colour per side wherever the two are drawn (Compare, Runs): Okabe–Ito orange and blue,
# told apart with every common colour-vision deficiency and on a washed-out projector.
SIDE_COLORS = {STREAM: LANE_COLORS[0], NON_STREAM: LANE_COLORS[1]}

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
class CompareRound:
    """One repeat: each lane's generation (a lane not started yet, or skipped, has none)."""

    index: int  # 0-based repeat number
    order: tuple[str, ...] = ()  # lane keys in the order they were (or will be) started
    runs: dict[str, Generation] = dataclasses.field(default_factory=dict)

    def get(self, lane_key: str) -> Generation | None:
        return self.runs.get(lane_key)

    @property
    def stream(self) -> Generation | None:  # the default pair's sides
        return self.runs.get(STREAM)

    @property
    def whole(self) -> Generation | None:
        return self.runs.get(NON_STREAM)

    @property
    def stream_first(self) -> bool:
        return bool(self.order) and self.order[0] == STREAM

    @property
    def generations(self) -> list[Generation]:
        return [self.runs[k] for k in self.order if k in self.runs]

    @property
    def is_finished(self) -> bool:
        return all(g.is_finished for g in self.generations)

    @property
    def send_spread_s(self) -> float | None:
        """How far apart the lanes' requests were sent (race mode: should be milliseconds)."""
        sent = [g.t_sent for g in self.generations if g.t_sent is not None]
        return max(sent) - min(sent) if len(sent) > 1 else None


def pair(index: int, stream: Generation | None = None, whole: Generation | None = None) -> CompareRound:
    """A round of the default pair (for tests and tools that build one by hand)."""
    runs: dict[str, Generation] = {k: g for k, g in ((STREAM, stream), (NON_STREAM, whole)) if g is not None}
    return CompareRound(index, (STREAM, NON_STREAM), runs)


def validate(repeat: Any, mode: Any) -> tuple[int, str]:
    """Return (repeat, mode) or raise ValueError with a message fit for the user."""
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not MIN_REPEAT <= repeat <= MAX_REPEAT:
        raise ValueError(f"repeat must be a whole number from {MIN_REPEAT} to {MAX_REPEAT}, not {repeat!r}.")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}.")
    return repeat, mode


class Comparison:
    """Run with start(); read rounds/current/progress/is_finished/error from any thread; stop()
    or stop_lane() any time.

    `lanes` (2–4, streamchat.lanes) or, without them, `endpoint`: streaming vs non-streaming.
    A lane's own temperature / max_tokens override `params` for that lane."""

    def __init__(
        self,
        messages: Iterable[dict[str, str]],
        endpoint: EndpointSource | None = None,
        *,
        lanes: Iterable[Lane] | None = None,
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
        if lanes is None:
            if endpoint is None:
                raise ValueError("give an endpoint or lanes.")
            lanes = default_lanes(endpoint)
        self.lanes = check_lanes(lanes)
        self.endpoint = self.lanes[0].endpoint
        self.params = params_for_comparison(params)
        self.timeouts = timeouts
        self.on_generation_done = on_generation_done
        # The first request of a process pays for connection setup and lazy imports in the
        # client (~40 ms here, more under load), and the server's prompt cache is cold; a warm-up
        # request per endpoint, uncounted, keeps that off whichever lane would go first.
        self.warmup = warmup
        self.warmup_generations: dict[str, Generation] = {}
        self.error: str | None = None  # the comparison itself broke (not a failed generation)
        self._runner = runner
        self._rounds: list[CompareRound] = []
        self._lock = threading.Lock()  # orders "start a generation" against stop()
        self._stopping = threading.Event()
        self._stopped_lanes: set[str] = set()  # Stop pressed for the lane: start no more of it
        self._dropped: dict[str, str] = {}  # lane key → why it is not run again (a fatal error)
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- reading, any thread -------------------------------------------------------------
    @property
    def lane_keys(self) -> list[str]:
        return [lane.key for lane in self.lanes]

    def lane(self, key: str) -> Lane:
        return next(lane for lane in self.lanes if lane.key == key)

    @property
    def is_default_pair(self) -> bool:
        return is_default_pair(self.lanes)

    @property
    def rounds(self) -> list[CompareRound]:
        return list(self._rounds)

    pairs = rounds  # the default pair's name for them

    @property
    def warmup_generation(self) -> Generation | None:
        """The first lane's warm-up (the default pair's only one), once started."""
        return next(iter(self.warmup_generations.values()), None)

    @property
    def current(self) -> CompareRound | None:
        """The round being run; once finished, the last round run."""
        return self._rounds[-1] if self._rounds else None

    @property
    def progress(self) -> tuple[int, int]:
        """(finished generations, total generations planned), e.g. (3, 10) for 2 lanes × 5."""
        done = sum(g.is_finished for r in self._rounds for g in r.generations)
        return done, len(self.lanes) * self.repeat

    @property
    def is_finished(self) -> bool:
        return self._finished.is_set()

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def lane_stopped(self, key: str) -> bool:
        return self._stopping.is_set() or key in self._stopped_lanes

    def wait(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    def summary(self) -> list[dict[str, Any]]:
        return summarize(self._rounds, self.lane_keys)

    def outcomes(self) -> dict[str, dict[str, Any]]:
        return outcomes(self._rounds, self.lane_keys)

    def verdict(self) -> str:
        if self.is_default_pair:
            return verdict(self.summary(), self.outcomes())
        return lanes_verdict(self.summary(), self.outcomes(), self.lanes)

    def send_spread_s(self) -> float | None:
        """Race mode: the widest gap between the lanes' requests being sent, over the rounds."""
        spreads = [s for r in self._rounds if (s := r.send_spread_s) is not None]
        return max(spreads) if spreads else None

    # ---- control ---------------------------------------------------------------------------
    def start(self) -> Comparison:
        if self._thread is not None:
            raise RuntimeError("this comparison has already been started")
        self._thread = threading.Thread(target=self._run, name="streamchat-compare", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop every lane's generation in flight (the runner closes their connections at once);
        start no more."""
        with self._lock:
            self._stopping.set()
            in_flight = [g for r in self._rounds for g in r.generations if not g.is_finished]
            in_flight += [g for g in self.warmup_generations.values() if not g.is_finished]
        for g in in_flight:
            g.stop()

    def stop_lane(self, key: str) -> None:
        """Stop one lane: its generation in flight, and its later repeats; the others go on."""
        with self._lock:
            self._stopped_lanes.add(key)
            in_flight = [g for r in self._rounds if (g := r.get(key)) is not None and not g.is_finished]
        for g in in_flight:
            g.stop()

    # ---- the comparison thread -------------------------------------------------------------
    def _run(self) -> None:
        try:
            runner = self._runner or get_runner()
            if self.warmup:
                self._warm_up(runner)
            keys = self.lane_keys
            for i in range(self.repeat):
                if self._stopping.is_set() or not self._runnable(keys):
                    break
                # Rotate who goes first so warm caches and ordering favour no lane.
                shift = i % len(keys)
                rnd = CompareRound(i, tuple(keys[shift:] + keys[:shift]))
                self._rounds.append(rnd)
                if self.mode == RACE:
                    started = self._launch_together(runner, rnd)
                    for key, g in started:
                        self._await(g, key)
                else:
                    for key in rnd.order:
                        launched = self._launch(runner, rnd, key)
                        if launched is not None:
                            self._await(launched, key)
                for key, g in rnd.runs.items():
                    if g.state == FAILED and g.error and g.error.kind in FATAL_ERROR_KINDS:
                        self._dropped.setdefault(key, g.error.message)
        except Exception as exc:
            log.exception("comparison failed")
            self.error = f"The comparison stopped unexpectedly: {type(exc).__name__}: {str(exc)[:200]}"
            self.stop()
        finally:
            self._finished.set()

    def _runnable(self, keys: list[str]) -> list[str]:
        return [k for k in keys if k not in self._dropped and k not in self._stopped_lanes]

    def lane_params(self, lane: Lane) -> GenerationParams:
        changes: dict[str, Any] = {}
        if lane.temperature is not None:
            changes["temperature"] = lane.temperature
        if lane.max_tokens is not None:
            changes["max_tokens"] = lane.max_tokens
        return dataclasses.replace(self.params, **changes) if changes else self.params

    def _warm_up(self, runner: Runner) -> None:
        """One streamed request per lane's endpoint, all at once, same messages, max_tokens=1,
        not counted.

        Each is left to finish so its connection stays in the pool (a TLS handshake is part of
        the cold start); stopped shortly after its first text if the server ignores max_tokens,
        or after WARMUP_MAX_S of prefill."""
        with self._lock:
            if self._stopping.is_set():
                return
            warmed: list[EndpointSource] = []
            for lane in self.lanes:
                if lane.endpoint in warmed:  # one per endpoint: the default pair warms up once
                    continue
                warmed.append(lane.endpoint)
                request = GenerationRequest(
                    self.messages,
                    stream=True,
                    timeouts=self.timeouts,
                    params=dataclasses.replace(self.lane_params(lane), max_tokens=1),
                )
                self.warmup_generations[lane.key] = runner.start(request, lane.endpoint)
        deadline = time.monotonic() + WARMUP_MAX_S
        pending = list(self.warmup_generations.values())
        first_text: dict[int, float] = {}
        while pending:
            now = time.monotonic()
            for g in list(pending):
                if g.is_finished:
                    pending.remove(g)
                    continue
                if g.t_first_token is not None:
                    first_text.setdefault(g.id, now)
                    if now - first_text[g.id] > WARMUP_GRACE_S:
                        g.stop()
                elif now > deadline:
                    g.stop()
            if pending:
                pending[0].wait(0.01)
        for g in self.warmup_generations.values():
            g.wait()

    def _request(self, lane: Lane) -> GenerationRequest:
        return GenerationRequest(
            self.messages, stream=lane.stream, params=self.lane_params(lane), timeouts=self.timeouts
        )

    def _launch(self, runner: Runner, rnd: CompareRound, key: str) -> Generation | None:
        lane = self.lane(key)
        request = self._request(lane)
        with self._lock:
            if self.lane_stopped(key) or key in self._dropped:
                return None
            g = rnd.runs[key] = runner.start(request, lane.endpoint)
        return g

    def _launch_together(self, runner: Runner, rnd: CompareRound) -> list[tuple[str, Generation]]:
        """Race: every runnable lane's request built first, then all started back to back
        (each start is a hand-off to the runner's loop, well under a millisecond)."""
        requests = [(key, self._request(self.lane(key))) for key in rnd.order]
        started = []
        with self._lock:
            for key, request in requests:
                if self.lane_stopped(key) or key in self._dropped:
                    continue
                rnd.runs[key] = runner.start(request, self.lane(key).endpoint)
                started.append((key, rnd.runs[key]))
        return started

    def _await(self, g: Generation, key: str) -> None:
        g.wait()  # bounded: the request's timeouts end every generation
        if self.on_generation_done is not None:
            try:
                self.on_generation_done(g, key)
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

    # One group per round (repeat): its lanes are replayed side by side. The n-th run of a lane
    # ends after the (n-1)-th of the same lane, in either mode. Every run of the comparison
    # carries its id and lane, so the Runs page can show them together.
    comparison_id = uuid.uuid4().hex
    done_per_side: dict[str, int] = {}

    def hook(generation: Generation, side: str) -> int:
        fields = run_fields_from_generation(generation, source=source)
        run_id: int = store.record_run(**fields, owner=owner, compare_id=comparison_id, lane=side)
        group = f"{comparison_id}-{done_per_side.get(side, 0)}"
        done_per_side[side] = done_per_side.get(side, 0) + 1
        save_recording(
            store, generation, metrics.final_metrics(generation), run_id=run_id, group=group, side=side
        )
        return run_id

    return hook


# ---- numbers --------------------------------------------------------------------------------
def generation_values(g: Generation, lane: str | None = None) -> dict[str, Any]:
    """The per-run numbers the comparison is about (None where not known); `side` is the lane's
    key (by default the request's mode: the default pair's keys)."""
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
        "side": lane or (STREAM if g.request.stream else NON_STREAM),
        "stream": g.request.stream,
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


def run_rows(rounds: Iterable[CompareRound]) -> list[dict[str, Any]]:
    """One row per generation: repeat number, lane (`side`), state and its numbers."""
    return [
        {"repeat": r.index + 1, **generation_values(g, key)}
        for r in rounds
        for key in r.order
        if (g := r.get(key)) is not None
    ]


def _lane_keys(rounds: list[CompareRound], lane_keys: Iterable[str] | None) -> list[str]:
    if lane_keys is not None:
        return list(lane_keys)
    keys: dict[str, None] = {}
    for r in rounds:
        keys.update(dict.fromkeys(sorted(r.runs, key=lambda k: (k not in SIDES, k))))
    return list(keys) or list(SIDES)


def stat_prefix(lane_key: str) -> str:
    """The prefix of a lane's statistics in a summary row: "stream" → stream_median."""
    return lane_key.replace("-", "_")


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


def summarize(rounds: Iterable[CompareRound], lane_keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """One row per metric: median and p95 per lane over the runs that finished as done.

    Row keys: metric, label, unit, help, and per lane <key>_median, <key>_p95, <key>_n (n = runs
    the statistics are over; "-" in a key becomes "_"): stream_median … non_stream_n for the
    default pair.
    """
    rounds = list(rounds)
    keys = _lane_keys(rounds, lane_keys)
    values: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    thinking = False
    for r in rounds:
        for key, g in r.runs.items():
            if g.state == DONE and key in values:
                v = generation_values(g, key)
                values[key].append(v)
                thinking = thinking or v["has_reasoning"]
    rows = []
    for key, label, unit, help_text in ROWS[:1] + (REASONING_ROWS if thinking else ()) + ROWS[1:]:
        row: dict[str, Any] = {"metric": key, "label": label, "unit": unit, "help": help_text}
        for side in keys:
            xs = [v[key] for v in values[side] if v[key] is not None]
            prefix = stat_prefix(side)
            row[f"{prefix}_median"] = metrics.percentile(xs, 0.5)
            row[f"{prefix}_p95"] = metrics.percentile(xs, 0.95)
            row[f"{prefix}_n"] = len(xs)
        rows.append(row)
    return rows


def outcomes(
    rounds: Iterable[CompareRound], lane_keys: Iterable[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Per lane: how many runs ended done / stopped / failed, and the distinct error messages."""
    rounds = list(rounds)
    keys = _lane_keys(rounds, lane_keys)
    result: dict[str, dict[str, Any]] = {
        side: {"runs": 0, DONE: 0, STOPPED: 0, FAILED: 0, "errors": []} for side in keys
    }
    for r in rounds:
        for side in keys:
            g = r.get(side)
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


def _lane_medians(
    summary: list[dict[str, Any]], metric: str, lanes: Sequence[Lane]
) -> list[tuple[Lane, float]]:
    row = next((r for r in summary if r["metric"] == metric), {})
    found = [(lane, row.get(f"{stat_prefix(lane.key)}_median")) for lane in lanes]
    return sorted(((lane, v) for lane, v in found if v is not None), key=lambda lv: lv[1])


def lane_failure(lane: Lane, out: dict[str, Any]) -> str | None:
    """ "lane B failed: <reason>" when none of its runs finished; "2 of 3 B runs did not
    finish" when some did not; None when all did."""
    bad = out.get(FAILED, 0) + out.get(STOPPED, 0)
    if not out.get("runs"):
        return f"lane {lane.name} did not run"
    if out.get(DONE, 0) == 0:
        why = "failed" if out.get(FAILED) else "was stopped"
        error = f": {out['errors'][0]}" if out.get("errors") else ""
        return f"lane {lane.name} {why}{error}"
    if bad:
        return f"{bad} of {out['runs']} {lane.name} runs did not finish"
    return None


def lanes_verdict(
    summary: list[dict[str, Any]], outcomes: dict[str, dict[str, Any]], lanes: Sequence[Lane]
) -> str:
    """The winner per figure, against the runner-up, in words: "A showed text 3.3× sooner than
    B; C finished 2.2× faster than A; A decoded 2.0× faster than B", then every lane that did
    not finish and why ("lane B failed: …")."""
    parts: list[str] = []
    first = _lane_medians(summary, "first_text_s", lanes)
    e2e = _lane_medians(summary, "e2e_s", lanes)
    for ranked, did, sooner in ((first, "showed text", "sooner"), (e2e, "finished", "faster")):
        if len(ranked) >= 2:  # the lowest time wins, against the next
            (win, a), (second, b) = ranked[:2]
            parts.append(
                f"{win.name} {did} {_times(b / a)} {sooner} than {second.name}"
                if a > 0 and b >= a * SAME_RATIO
                else f"{win.name} and {second.name} {did} at about the same time"
            )
    # Decode speed means something only for streamed lanes (a body has no decode to time).
    streamed = [lane for lane in lanes if lane.stream]
    rates = _lane_medians(summary, "tok_per_s", streamed)[::-1]
    if len(rates) >= 2:
        (win, a), (second, b) = rates[:2]
        if b > 0 and a >= b * SAME_RATIO:
            parts.append(f"{win.name} decoded {_times(a / b)} faster than {second.name}")
    failures = [f for lane in lanes if (f := lane_failure(lane, outcomes.get(lane.key) or {}))]
    if len(first) == 1:
        parts.insert(0, f"Only {first[0][0].name} finished")
    elif not first:
        return "No comparison: " + ("; ".join(failures) or "no lane finished")
    return "; ".join(parts + failures)


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
