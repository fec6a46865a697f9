"""Replay a recorded reply at its recorded pace: a Generation fed by a thread instead of a server.

`Replay(recording, speed).start()` is a `Generation`: the live renderer, the metrics panel and
`metrics.compute` read it as they read a live reply. Its chunks arrive on the same clock as the
original's, divided by the speed (1×, 2×, 5×; instant puts them all out at once): the first words
at the recorded TTFT, the same pace, and — once done — the same figures (the recorded token
counts, server usage and timings). Stop works: `stop()` ends it at once, marked stopped.

Times inside the replay are on the recording's scale: a chunk recorded 0.5 s after the request
is stamped t0 + 0.5 s (t0: when ▶ was pressed) and put out at t0 + 0.5 s / speed, so the figures
are the recorded ones at any speed; only the live timers (now − t0) run at wall-clock pace.
`scheduled` and `delivered` keep, per chunk, when it was due and when it went out (perf_counter).
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from datetime import datetime
from typing import Any

from .generation import (
    STOPPED,
    WAITING_FIRST_TOKEN,
    Endpoint,
    ErrorInfo,
    Generation,
    GenerationParams,
    GenerationRequest,
)
from .kinds import ErrorKind, GenerationState, Source
from .recording import NO_RECORDING, Recording, RecordingError, decode

SPEEDS: dict[str, float] = {"1×": 1.0, "2×": 2.0, "5×": 5.0, "instant": math.inf}
INSTANT = math.inf


def parse_speed(text: str | float) -> float:
    """ "2", "2x", "2×", 2.0 → 2.0; "instant" / "inf" → INSTANT. ValueError for anything else."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        word = text.strip().lower().rstrip("x×")
        value = INSTANT if word in ("instant", "inf", "max") else float(word)
    if not value > 0:
        raise ValueError(f"a speed must be above 0, not {text!r}")
    return value


def speed_label(speed: float) -> str:
    return "instant" if math.isinf(speed) else f"{speed:g}×"


def when_label(created_at: str) -> str:
    """ "2025-01-02 09:30 UTC" from the recording's ISO time (as it is when unreadable)."""
    try:
        when = datetime.fromisoformat(created_at)
    except ValueError:
        return created_at or "an unknown date"
    return when.strftime("%Y-%m-%d %H:%M") + (f" {when.tzname()}" if when.tzinfo else "")


def _request(rec: Recording) -> GenerationRequest:
    names = {f.name for f in dataclasses.fields(GenerationParams)}
    params = GenerationParams(**{k: v for k, v in (rec.settings.get("params") or {}).items() if k in names})
    messages: tuple[dict[str, str], ...] = ({"role": "user", "content": rec.prompt},)
    if rec.settings.get("continuation"):  # metrics.is_continuation reads the last message
        messages += ({"role": "assistant", "content": rec.prefix},)
    return GenerationRequest(messages, stream=rec.stream, params=params)


def _counts(rec: Recording) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in rec.counts.items():
        out[key] = Source(value) if key.endswith("_source") else value
    return out


class Replay(Generation):
    """A recorded reply played again; see the module's docstring."""

    is_replay = True

    def __init__(self, recording: Recording, speed: float = 1.0):
        settings = recording.settings
        endpoint = Endpoint(
            settings.get("provider") or "remote", settings.get("base_url") or "", recording.model
        )
        super().__init__(_request(recording), endpoint)
        self.recording = recording
        self.speed = parse_speed(speed)
        self.prefix = recording.prefix  # the message's text before this reply (Continue)
        self.reasoning_prefix = recording.reasoning_prefix
        self.fixed_token_counts = _counts(recording)
        self.scheduled: list[float] = []  # per chunk put out: when it was due (perf_counter)
        self.delivered: list[float] = []  # … and when it went out
        self.t_replay_start: float | None = None  # ▶ (perf_counter); t_sent is the same moment
        self._wake = threading.Event()
        self._stop_callback = self._wake.set
        self._thread: threading.Thread | None = None

    # ---- what the UI shows about it -----------------------------------------------------------
    @property
    def label(self) -> str:
        """ "replay of 2025-01-02 09:30 UTC, model-name" (so nobody mistakes it for live)."""
        return f"replay of {when_label(self.recording.created_at)}, {self.recording.model}"

    @property
    def full_text(self) -> str:
        return self.prefix + self.text

    # ---- control ------------------------------------------------------------------------------
    def start(self, t0: float | None = None) -> Replay:
        """Play from `t0` (perf_counter; default now). Replays given the same t0 play together
        (the two sides of a Compare run)."""
        if self._thread is not None:
            raise RuntimeError("this replay has already been started")
        t0 = time.perf_counter() if t0 is None else t0
        self.t_replay_start = self.t_sent = t0
        setup = self.recording.setup
        self.t_request_start = t0 - setup if setup is not None else None
        self.state = WAITING_FIRST_TOKEN
        self._thread = threading.Thread(target=self._play, name="streamchat-replay", daemon=True)
        self._thread.start()
        return self

    def due(self, t: float) -> float:
        """When (perf_counter) a moment recorded `t` seconds after the request goes out."""
        assert self.t_replay_start is not None
        return self.t_replay_start + (0.0 if math.isinf(self.speed) else t / self.speed)

    def _sleep_until(self, when: float) -> bool:
        """False when stopped meanwhile."""
        while True:
            if self.t_stop_requested is not None:
                return False
            left = when - time.perf_counter()
            if left <= 0:
                return True
            self._wake.wait(min(left, 0.05))

    # ---- the replay thread --------------------------------------------------------------------
    def _play(self) -> None:
        rec, t0 = self.recording, self.t_sent
        assert t0 is not None
        try:
            headers_pending = rec.headers is not None
            for c in rec.chunks:
                if headers_pending and rec.headers is not None and rec.headers <= c.t:
                    if not self._sleep_until(self.due(rec.headers)):
                        return self._stopped()
                    self.t_headers = t0 + rec.headers
                    headers_pending = False
                due = self.due(c.t)
                if not self._sleep_until(due):
                    return self._stopped()
                self.bytes_received = c.bytes_total
                self._record_chunk(t0 + c.t, c.text, c.reasoning, token=c.token)
                self.scheduled.append(due)
                self.delivered.append(time.perf_counter())
            if headers_pending and rec.headers is not None:
                self.t_headers = t0 + rec.headers
            if not self._sleep_until(self.due(rec.end)):
                return self._stopped()
            # Text held back as a possible partial tag and released at the end of the original.
            if rec.text.startswith(self.text) and len(rec.text) > len(self.text):
                self._release_held(rec.text[len(self.text) :])
            if rec.reasoning.startswith(self.reasoning) and len(rec.reasoning) > len(self.reasoning):
                self._release_held("", rec.reasoning[len(self.reasoning) :])
            self.bytes_received = rec.bytes
            self.usage, self.timings = rec.usage, rec.timings
            self.finish_reason, self.model_reported = rec.finish_reason, rec.model_reported
            error = None
            if rec.error is not None or rec.error_kind is not None:
                try:
                    kind = ErrorKind(rec.error_kind or ErrorKind.UNEXPECTED)
                except ValueError:
                    kind = ErrorKind.UNEXPECTED
                error = ErrorInfo(kind, rec.error or "")
            try:
                state = GenerationState(rec.state)
            except ValueError:
                state = GenerationState.DONE
            self._end(state, t0 + rec.end, error)
        except Exception as exc:  # a damaged recording must not leave a replay running forever
            self.fixed_token_counts = {}
            self._end(GenerationState.FAILED, time.perf_counter(), ErrorInfo(ErrorKind.UNEXPECTED, str(exc)))

    def _stopped(self) -> None:
        # Figures of what was played (the recorded counts were for the whole reply).
        self.fixed_token_counts = {}
        assert self.t_sent is not None
        elapsed = time.perf_counter() - self.t_sent
        at = self.t_sent + (elapsed * self.speed if not math.isinf(self.speed) else 0.0)
        self._end(STOPPED, max(at, self.t_last_token or at))

    def _end(self, state: GenerationState, t_end: float, error: ErrorInfo | None = None) -> None:
        """Generation._finish with the end on the recording's clock."""
        if self.is_finished:
            return
        self.error = error
        self.t_end = t_end
        self.state = state
        self._finished.set()
        for fn in self._done_callbacks:
            try:
                fn(self)
            except Exception:
                import logging

                logging.getLogger(__name__).exception("done callback failed")


def replay(data: bytes | Recording, speed: float | str = 1.0) -> Replay:
    """A started replay of packed recording bytes (Store.recording_data) or a Recording."""
    rec = decode(data) if isinstance(data, bytes) else data
    return Replay(rec, parse_speed(speed)).start()


def start_together(recordings: list[Recording], speed: float | str = 1.0) -> list[Replay]:
    """Replays of several recordings from one ▶ (a Compare run's two sides, side by side)."""
    replays = [Replay(rec, parse_speed(speed)) for rec in recordings]
    t0 = time.perf_counter()
    return [r.start(t0) for r in replays]


# ---- finding recordings ---------------------------------------------------------------------------
def load(store: Any, *, message_id: str | None = None, run_id: int | None = None) -> Recording | None:
    """The recording of a message or a run; None for "no recording" (old replies, or damaged)."""
    data = store.recording_data(message_id=message_id, run_id=run_id)
    if data is None:
        return None
    try:
        return decode(data)
    except RecordingError:
        return None


def load_any(store: Any, ident: str) -> Recording | None:
    """A message id (hex) or a run id (a number), as the CLI takes them."""
    ident = ident.strip()
    if ident.isdigit():
        return load(store, run_id=int(ident))
    return load(store, message_id=ident)


def load_group(store: Any, run_id: int) -> list[Recording]:
    """The recordings of the comparison `run_id` was part of (streaming side first)."""
    out = [r for rid in store.recording_group(run_id) if (r := load(store, run_id=rid)) is not None]
    return sorted(out, key=lambda r: r.side != "stream")


__all__ = [
    "INSTANT",
    "NO_RECORDING",
    "SPEEDS",
    "Replay",
    "load",
    "load_any",
    "load_group",
    "parse_speed",
    "replay",
    "speed_label",
    "start_together",
]
