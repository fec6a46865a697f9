"""The live metrics sidebar: TTFT, Decode tok/s, Output tokens, E2E, ITL, status, a sparkline.

Updates only what changed since the last frame: every element a run emits goes over the
websocket again, and at 50 tok/s the panel must cost less than the reply itself.
"""

from __future__ import annotations

import time

from streamchat import metrics
from streamchat.generation import (
    FAILED,
    PENDING,
    STOPPED,
    STREAMING,
    THINKING,
    WAITING_FIRST_TOKEN,
    Generation,
)

SOURCE_TEXT = {  # short: every live update of a metric re-sends its help text
    metrics.MEASURED: "Source: measured by this client.",
    metrics.SERVER: "Source: reported by the server.",
    metrics.ESTIMATED: "Source: estimated (1 chunk ≈ 1 token) until the server reports usage.",
    metrics.EXACT: "Source: counted with the model's tokenizer.",
    metrics.APPROXIMATE: "Source: approximate count (cl100k_base tokenizer).",
}
SPARK_POINTS = 20  # the sparkline's points: each is re-sent with every update while streaming
PANEL_EVERY_S = 0.5  # numbers refresh twice a second: readable, and cheap on the websocket
# (each st.metric update re-sends its label and help text: ~300 bytes)


def _fmt_s(v: float | None) -> str:
    return "—" if v is None else metrics.format_seconds(v)


def _help(key: str, value: metrics.Value) -> str:
    return f"{metrics.HELP[key]}\n\n{SOURCE_TEXT.get(value.source, value.source)}"


def _state_text(g: Generation, m: metrics.Metrics) -> str:
    if g.state == PENDING:
        return f"⏳ connecting… {m.elapsed:.1f} s" if g.t_sent else "⏳ connecting…"
    if g.state == WAITING_FIRST_TOKEN:
        what = "waiting for the whole reply" if not g.request.stream else "waiting for first token"
        return f"⏳ {what}… {m.elapsed:.1f} s"
    if g.state == STOPPED:
        return "⏹ stopped"
    if g.state == FAILED:
        return f"⚠️ error: {g.error.kind if g.error else 'unknown'}"
    if g.state == THINKING:  # no timer here: the thinking block in the chat has the clock
        return "💭 thinking…"
    return f"▶ {g.status_label}" if not g.is_finished else "✓ done"


def status_text(g: Generation, m: metrics.Metrics) -> str:
    """The panel's status line; a finished continuation says its figures cover only that."""
    text = _state_text(g, m)
    if g.is_finished and m.continuation:
        text += f" · figures: {metrics.CONTINUATION_LABEL} only"
    return text


def tokens_over_time(g: Generation, points: int = SPARK_POINTS) -> list[int]:
    """Cumulative token chunks (thinking included) at evenly spaced times since the request was
    sent."""
    times = list(g.token_times)
    if not times or g.t_sent is None:
        return []
    end = times[-1]
    span = max(end - g.t_sent, 1e-6)
    out, i = [], 0
    for k in range(1, points + 1):
        t = g.t_sent + span * k / points
        while i < len(times) and times[i] <= t:
            i += 1
        out.append(i)
    return out


class MetricsPanel:
    def __init__(self, container, *, wide: bool = False) -> None:
        self._status = container.empty()
        cells = container.columns(4) if wide else [*container.columns(2), *container.columns(2)]
        self._slots = {
            name: cell.empty()
            for name, cell in zip(("ttft", "decode_tps", "output_tokens", "e2e"), cells, strict=True)
        }
        self._details = container.empty()
        self._shown: dict[str, object] = {}
        self._updated_at = 0.0
        self._updated_state: str | None = None

    def _put(self, key: str, value: object, draw) -> None:
        if self._shown.get(key) != value:
            draw()
            self._shown[key] = value

    def due(self, g: Generation) -> bool:
        """Whether update() would draw now: computing the figures costs time that grows with
        the reply (percentiles over every gap), so the page only computes them when due."""
        return not (
            g.state == self._updated_state
            and g.state in (STREAMING, THINKING)
            and time.perf_counter() - self._updated_at < PANEL_EVERY_S
        )

    def update(self, g: Generation, m: metrics.Metrics | None = None) -> None:
        """Live figures while `g` runs; once it ended, its final figures (metrics.final_metrics:
        the same numbers as the footer under the reply and its Runs row). `m`: the figures the
        page already computed for this frame, so its own timer and the panel's agree.
        Throttled only while text streams: before that, nothing else uses the websocket and
        the timers tick every frame."""
        if not self.due(g):
            return
        self._updated_at, self._updated_state = time.perf_counter(), g.state
        m = m or metrics.current(g)
        status = status_text(g, m)
        self._put("status", status, lambda: self._status.markdown(f"**{status}**"))

        ttft = _fmt_s(m.ttft.value)
        self._put("ttft", ttft, lambda: self._slots["ttft"].metric("TTFT", ttft, help=_help("ttft", m.ttft)))
        # "—" until the live rate means something (metrics.live_decode_rate); 0 in a long stall
        tps = "—" if m.decode_tps.value is None else metrics.shown(m.decode_tps, f"{m.decode_tps.value:.1f}")
        self._put(
            "decode_tps",
            tps,
            lambda: self._slots["decode_tps"].metric(
                "Decode tok/s", tps, help=_help("decode_tps", m.decode_tps)
            ),
        )

        spark = tokens_over_time(g)
        tokens = metrics.shown(m.output_tokens, f"{m.output_tokens.value}")
        thinking = (
            metrics.shown(m.reasoning_tokens, f"{m.reasoning_tokens.value}") + " thinking"
            if m.reasoning_tokens.value
            else None
        )  # the reasoning share
        self._put(
            "output_tokens",
            (tokens, thinking, spark),
            lambda: self._slots["output_tokens"].metric(
                "Output tokens",
                tokens,
                delta=thinking,
                delta_color="off",
                delta_arrow="off",
                help=_help("output_tokens", m.output_tokens),
                chart_data=spark or None,
                chart_type="area",
            ),
        )

        if g.is_finished:
            e2e = _fmt_s(m.e2e.value)
        else:
            e2e = f"{m.elapsed:.1f} s…" if g.t_sent else "—"
        self._put("e2e", e2e, lambda: self._slots["e2e"].metric("E2E", e2e, help=_help("e2e", m.e2e)))

        details = self._details_text(g, m)
        self._put("details", details, lambda: self._details.caption(details))

    def show_idle(self) -> None:
        """The panel before any reply: every figure "—". Drawn with the page, so the browser has
        the metric's code before the first reply (no grey skeletons mid-reply) and the layout
        does not jump when a reply starts."""
        self._status.markdown("**Ready** · figures appear as a reply streams")
        for key, label in (
            ("ttft", "TTFT"),
            ("decode_tps", "Decode tok/s"),
            ("output_tokens", "Output tokens"),
            ("e2e", "E2E"),
        ):
            self._slots[key].metric(label, "—", help=metrics.HELP[key])
        self._details.caption("ITL p50 — · p95 —")

    @staticmethod
    def _details_text(g: Generation, m: metrics.Metrics) -> str:
        parts = []
        if m.has_reasoning:  # thinking models: when the answer began, how long it thought
            parts.append(f"time to answer {_fmt_s(m.time_to_answer.value)}")
            parts.append(f"thought {_fmt_s(m.thinking_s.value)}")
        parts.append(f"ITL p50 {_fmt_s(m.itl_p50.value)} · p95 {_fmt_s(m.itl_p95.value)}")
        if g.is_finished:
            parts.append(f"max {_fmt_s(m.itl_max.value)}")
            parts.append(f"TTFB {_fmt_s(m.ttfb.value)}")
            if m.setup.value is not None:
                parts.append(f"client set-up {_fmt_s(m.setup.value)} (not in TTFT)")
            parts.append(f"{(m.bytes.value or 0) / 1024:.1f} KB · {m.chunks} chunks")
            if m.server_decode_tps.value:
                prefill = m.server_prompt_ms.value
                parts.append(
                    f"server: {m.server_decode_tps.value:.1f} tok/s"
                    + (f", prefill {prefill:.0f} ms" if prefill is not None else "")
                )
        return " · ".join(parts)
