"""Compare: the same prompt streamed and not streamed, side by side, repeated, with a verdict."""

from __future__ import annotations

import dataclasses

import altair as alt
import pandas as pd
import streamlit as st

from components import visible_ttft
from components.context import context
from components.frames import run_frames
from components.identity import session_owner
from components.live_reply import CaptionSlot, LiveReply
from components.metrics_panel import status_text
from streamchat import compare, metrics
from streamchat.markdown_safety import escape_markdown
from streamchat.presets import COMPARE_PROMPT
from streamchat.replies import history_for_request

ctx = context()
state = st.session_state
options = ctx.options

st.title("Stream vs non-stream")
st.caption(
    "Same prompt, model and settings (temperature 0, fixed seed), with and without "
    "streaming. Streaming shows the first words sooner; the whole reply takes about as "
    "long either way."
)


def start_comparison() -> None:
    prompt = (state.get("cmp_prompt") or "").strip()
    if not prompt:
        state.cmp_problem = "Type a prompt first."
        return
    if options.endpoint is None:
        state.cmp_problem = options.problem
        return
    state.cmp_problem = None
    record = compare.record_to_store(ctx.store, owner=session_owner())
    first_stream_run: dict = {}  # the run the visible-TTFT probe times (filled by the runner)
    state.cmp_first_stream_run = first_stream_run

    def on_generation_done(generation, side: str) -> None:
        run_id = record(generation, side)
        if side == compare.STREAM:
            first_stream_run.setdefault("id", run_id)

    messages = history_for_request(
        [{"role": "user", "content": prompt, "state": "done"}], options.system_prompt
    )
    state.comparison = compare.Comparison(
        messages,
        options.endpoint,
        repeat=int(state.cmp_repeat),
        mode=state.cmp_mode,
        # The sidebar's settings (the embedded model's repetition penalty included); the
        # comparison fixes temperature 0 and a seed itself, so both sides get the same reply.
        params=dataclasses.replace(options.params, temperature=None, seed=None),
        timeouts=options.timeouts,
        runner=ctx.runner,
        on_generation_done=on_generation_done,
    ).start()


comparison: compare.Comparison | None = state.get("comparison")
running = comparison is not None and not comparison.is_finished


def keep_seen(seen: visible_ttft.Seen) -> str | None:
    """The browser's time from Run to the first streamed words, kept with that run."""
    ctx.store.record_run_visible_ttft(int(seen.target), seen.seconds)
    return (
        visible_ttft.line(seen.seconds, None, what="the first streamed words")
        + " (from Run: it includes the uncounted warm-up request)"
    )


def draw_probe() -> None:
    run_id = (state.get("cmp_first_stream_run") or {}).get("id") if not running else None
    visible_ttft.probe(
        ctx.seen_slot, page="compare", target=str(run_id) if run_id is not None else None, on_seen=keep_seen
    )


st.text_area("Prompt", value=COMPARE_PROMPT, key="cmp_prompt", height=80, disabled=running)
left, middle, right = st.columns([2, 1, 1], vertical_alignment="bottom")
left.radio(
    "Mode",
    compare.MODES,
    key="cmp_mode",
    horizontal=True,
    disabled=running,
    format_func={compare.SEQUENTIAL: "Sequential (fair)", compare.RACE: "Race (at once)"}.get,
    help="Sequential runs one after the other (alternating which goes first), best for a "
    "single local server. Race runs both at once: they compete for the server.",
)
middle.number_input(
    "Repeat",
    min_value=compare.MIN_REPEAT,
    max_value=compare.MAX_REPEAT,
    value=1,
    step=1,
    key="cmp_repeat",
    disabled=running,
)
right.button("Run comparison", type="primary", key="cmp_run", on_click=start_comparison, disabled=running)
# Stop gets its own slot below the controls: swapping it into the Run button's place in the
# columns while the script runs left a click target that Streamlit never reported.
if running:
    st.button(
        "Stop",
        type="primary",
        key="cmp_stop",
        on_click=comparison.stop,
        help="Stops both: their connections are closed and the server stops generating.",
    )
if state.get("cmp_problem"):
    st.error(state.cmp_problem)

if comparison is None:
    st.info(f"Model: {options.model_label}. Press **Run comparison** to start.")
    draw_probe()
    st.stop()

progress = st.empty()
columns = dict(zip(compare.SIDES, st.columns(2), strict=True))
panels = {}
for side, column in columns.items():
    column.subheader(compare.SIDE_LABELS[side])
    panels[side] = {"status": CaptionSlot(column), "body": column.empty(), "line": CaptionSlot(column)}


def panel_line(g) -> str:
    v = compare.generation_values(g)
    parts = [
        f"first text {metrics.format_seconds(v['first_text_s'])}" if v["first_text_s"] else None,
        f"total {metrics.format_seconds(v['e2e_s'])}" if v["e2e_s"] else None,
        f"{v['bytes'] / 1024:.1f} KB" if v["bytes"] else None,
    ]
    return " · ".join(p for p in parts if p)


def order_of(pair: compare.ComparePair | None) -> tuple[str, str]:
    """(first side, second side) of a pair; the first pair (and the warm-up) starts streaming."""
    stream_first = pair.stream_first if pair is not None else True
    order = (compare.STREAM, compare.NON_STREAM)
    return order if stream_first else order[::-1]


def progress_text(done: int, total: int, pair: compare.ComparePair | None) -> str:
    text = f"{done} of {total} replies"
    if comparison.repeat > 1 and pair is not None:
        text += f" · repeat {pair.index + 1} of {comparison.repeat}"
    if comparison.mode == compare.SEQUENTIAL:
        first, second = order_of(pair)
        text += (
            f" · one at a time: {compare.SIDE_LABELS[first]} first, then "
            f"{compare.SIDE_LABELS[second].lower()}"
        )
    return text


def waiting_text(side: str, pair: compare.ComparePair | None, finished: bool) -> tuple[str, str]:
    """(status line, panel text) for a side with no generation (yet) in the pair shown."""
    if finished:
        why = "the comparison was stopped" if comparison.stopped else "the comparison ended before its turn"
        return "not run", f"Not run: {why}."
    if comparison.mode == compare.RACE:
        return "queued", "**Queued**: starts together with the other side."
    first, _ = order_of(pair)
    if side == first:
        if pair is not None:
            return "starting…", "Starting…"
        return "queued", "**Queued**: runs first, after the warm-up request."
    return "queued", (
        f"**Queued**: runs second, when {compare.SIDE_LABELS[first].lower()} "
        "has finished (one at a time, so they do not compete for the server)."
    )


def render_until_finished() -> None:
    """Frames for the pair being run; a new pair gets fresh panels. A side that has not started
    says so ("queued") instead of staying blank."""
    lives: dict[str, tuple] = {}
    waiting: dict[str, str] = {}

    def frame(finished: bool) -> None:
        done, total = comparison.progress
        pair = comparison.current
        if pair is None and not finished:
            progress.progress(0.0, text="warming up the connection (one uncounted 1-token request)…")
        else:
            progress.progress(done / total, text=progress_text(done, total, pair))
        for side in compare.SIDES:
            g = pair.get(side) if pair else None
            if g is None:
                status, text = waiting_text(side, pair, finished)
                if waiting.get(side) != text:  # sent once, not every frame
                    panels[side]["body"].info(text)
                    panels[side]["status"].show(status)
                    panels[side]["line"].show("")
                    waiting[side] = text
                    lives.pop(side, None)
                continue
            waiting.pop(side, None)
            if lives.get(side, (None,))[0] is not g:
                body = panels[side]["body"].container(height=260, key=f"cmp-live-{side}-{pair.index}")
                lives[side] = (g, LiveReply(body))
            lives[side][1].render(g.text, growing=not g.is_finished)
            panels[side]["status"].show(status_text(g, metrics.compute(g)))
            panels[side]["line"].show(panel_line(g) if g.is_finished else "")

    run_frames(frame, lambda: comparison.is_finished)


render_until_finished()
if running:
    st.rerun()  # redraw the controls (Run instead of Stop) and the results below

if comparison.error:
    st.error(escape_markdown(comparison.error))  # it may quote the server: shown as written
summary = comparison.summary()
verdict = comparison.verdict()
(st.success if verdict.startswith("Streaming showed") else st.warning)(verdict)


SIDE_NAMES = [compare.SIDE_LABELS[side] for side in compare.SIDES]
# Okabe–Ito orange and blue: a high-contrast pair that colour-blind viewers and washed-out
# projectors still tell apart.
SIDE_SCALE = alt.Scale(domain=SIDE_NAMES, range=[compare.SIDE_COLORS[side] for side in compare.SIDES])
LINE_WIDTH = 4


def timeline_chart(pair: compare.ComparePair) -> alt.LayerChart | None:
    rows, marks = [], []
    for side in compare.SIDES:
        g = pair.get(side)
        if g is None:
            continue
        for kind in (compare.ANSWER, compare.THINKING):  # thinking models: a dotted line too
            for t, chars in compare.visible_text_timeline(g, kind):
                rows.append(
                    {
                        "mode": compare.SIDE_LABELS[side],
                        "text": kind,
                        "seconds": t,
                        "characters visible": chars,
                    }
                )
        v = compare.generation_values(g)
        answer_mark = (("first answer", v["first_answer_s"]),) if v.get("has_reasoning") else ()
        for name, t in (("first text", v["first_text_s"]), *answer_mark, ("E2E", v["e2e_s"])):
            if t is not None:
                marks.append(
                    {
                        "mode": compare.SIDE_LABELS[side],
                        "seconds": t,
                        "mark": f"{compare.SIDE_LABELS[side]} {name}",
                    }
                )
    if not rows:
        return None
    axis = {"labelFontSize": 14, "titleFontSize": 14, "labelColor": "#222", "titleColor": "#222"}
    # Both layers colour by mode with the same scale and legend, so Vega-Lite draws one legend.
    color = alt.Color(
        "mode:N",
        scale=SIDE_SCALE,
        sort=SIDE_NAMES,
        legend=alt.Legend(
            title=None,
            orient="top",
            direction="horizontal",
            labelFontSize=16,
            labelColor="#222",
            symbolType="stroke",
            symbolStrokeWidth=LINE_WIDTH + 1,
            symbolSize=600,
            columnPadding=28,
        ),
    )
    lines = (
        alt.Chart(pd.DataFrame(rows))
        .mark_line(interpolate="step-after", strokeWidth=LINE_WIDTH, strokeCap="round")
        .encode(
            x=alt.X("seconds:Q", title="seconds since request sent", axis=alt.Axis(**axis)),
            y=alt.Y("characters visible:Q", axis=alt.Axis(**axis)),
            color=color,
            strokeDash=alt.StrokeDash(
                "text:N",
                scale=alt.Scale(domain=[compare.ANSWER, compare.THINKING], range=[[1, 0], [2, 6]]),
                legend=alt.Legend(title=None, orient="top", labelFontSize=14)
                if any(r["text"] == compare.THINKING for r in rows)
                else None,
            ),
        )
    )
    rules = (
        alt.Chart(pd.DataFrame(marks))
        .mark_rule(strokeWidth=2, strokeDash=[8, 5], opacity=0.9)
        .encode(x="seconds:Q", color=color, tooltip=["mark:N", alt.Tooltip("seconds:Q", format=".3f")])
    )
    return alt.layer(rules, lines).properties(height=340)


if comparison.current is not None:
    st.subheader("Text visible over time")
    chart = timeline_chart(comparison.current)
    if chart is not None:
        st.altair_chart(chart, width="stretch")
        st.caption(
            "Dashed lines: time to first visible text and E2E for each mode "
            f"(repeat {comparison.current.index + 1})."
        )

st.subheader("Summary" + (f" over {comparison.repeat} repeats" if comparison.repeat > 1 else ""))


def fmt(value, unit) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return metrics.format_seconds(value)
    return f"{value:,.1f}" if unit == "tok/s" else f"{value:,.0f}"


def explained(row: dict) -> str:
    label, help_text = row["label"], row["help"]
    if help_text.lower().startswith(label.lower() + ":"):  # "Output tokens: Output tokens: …"
        help_text = help_text[len(label) + 1 :].lstrip()
    return f"**{label}**: {help_text}"


# A static table: short labels, every cell shown in full at any width (a data grid cuts long
# labels with "…"); what each label means is in the caption below it.
table = pd.DataFrame(
    [
        {
            "metric": row["label"],
            "streaming median": fmt(row["stream_median"], row["unit"]),
            "streaming p95": fmt(row["stream_p95"], row["unit"]),
            "non-streaming median": fmt(row["non_stream_median"], row["unit"]),
            "non-streaming p95": fmt(row["non_stream_p95"], row["unit"]),
        }
        for row in summary
    ]
)
st.table(table, hide_index=True)
st.caption("  \n".join(explained(row) for row in summary))
with st.expander("Every run"):
    st.dataframe(pd.DataFrame(compare.run_rows(comparison.pairs)), hide_index=True)
draw_probe()
