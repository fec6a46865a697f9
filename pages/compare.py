"""Compare: the same prompt in 2–4 lanes (by default streamed and not streamed, on the sidebar's
model), side by side, repeated, with a shared timeline and a verdict."""

from __future__ import annotations

import dataclasses
import time

import altair as alt
import pandas as pd
import streamlit as st

from components import visible_ttft
from components.context import context
from components.frames import run_frames
from components.identity import session_owner
from components.lanes_form import close_editor, header, lanes_form
from components.live_reply import CaptionSlot, LiveReply
from components.metrics_panel import status_text
from streamchat import compare, metrics
from streamchat.generation import FAILED
from streamchat.lanes import LANE_COLORS, Lane, is_default_pair
from streamchat.markdown_safety import escape_markdown
from streamchat.presets import COMPARE_PROMPT
from streamchat.replies import history_for_request

ctx = context()
state = st.session_state
options = ctx.options
CHART_EVERY_S = 0.5  # the live timeline: redrawn at most twice a second
ORDINALS = ("first", "second", "third", "fourth")
LINE_WIDTH = 4  # the timeline's lines: thick enough for a projector

comparison: compare.Comparison | None = state.get("comparison")
running = comparison is not None and not comparison.is_finished
title, intro = st.empty(), st.empty()
st.text_area("Prompt", value=COMPARE_PROMPT, key="cmp_prompt", height=80, disabled=running)
chosen = lanes_form(ctx.settings, options, disabled=running)
pair_shown = (
    comparison.is_default_pair
    if comparison is not None
    else not chosen.lanes or is_default_pair(chosen.lanes)
)
if pair_shown:
    title.title("Stream vs non-stream")
    intro.caption(
        "Same prompt, model and settings (temperature 0, fixed seed), with and without "
        "streaming. Streaming shows the first words sooner; the whole reply takes about as "
        "long either way."
    )
else:
    title.title("Compare lanes")
    intro.caption(
        "The same prompt in every lane (temperature 0 and a fixed seed unless a lane sets its "
        "own): which endpoint, model or delivery shows the first words sooner, and which finishes first."
    )


def start_comparison() -> None:
    prompt = (state.get("cmp_prompt") or "").strip()
    if not prompt:
        state.cmp_problem = "Type a prompt first."
        return
    if chosen.problem or not chosen.lanes:
        state.cmp_problem = chosen.problem or options.problem
        return
    state.cmp_problem = None
    close_editor()
    lanes = chosen.lanes
    record = compare.record_to_store(ctx.store, owner=session_owner())
    first_stream_run: dict = {}  # the run the visible-TTFT probe times (filled by the runner)
    state.cmp_first_stream_run = first_stream_run
    probe_key = next((lane.key for lane in lanes if lane.stream), None)

    def on_generation_done(generation, lane_key: str) -> None:
        run_id = record(generation, lane_key)
        if lane_key == probe_key:
            first_stream_run.setdefault("id", run_id)

    messages = history_for_request(
        [{"role": "user", "content": prompt, "state": "done"}], options.system_prompt
    )
    state.comparison = compare.Comparison(
        messages,
        lanes=lanes,
        repeat=int(state.cmp_repeat),
        mode=state.cmp_mode,
        # The sidebar's settings (the embedded model's repetition penalty included); the
        # comparison fixes temperature 0 and a seed itself, so every lane gets the same reply
        # (a lane's own temperature / max tokens win).
        params=dataclasses.replace(options.params, temperature=None, seed=None),
        timeouts=options.timeouts,
        runner=ctx.runner,
        on_generation_done=on_generation_done,
    ).start()


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


left, middle, right = st.columns([2, 1, 1], vertical_alignment="bottom")
left.radio(
    "Mode",
    compare.MODES,
    key="cmp_mode",
    horizontal=True,
    disabled=running,
    format_func={compare.SEQUENTIAL: "Sequential (fair)", compare.RACE: "Race (at once)"}.get,
    help="Sequential runs one lane after the other (rotating which goes first), best for a "
    "single local server. Race sends every lane's request at once: they compete for the server.",
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
        "Stop" if comparison.is_default_pair else "Stop all",
        type="primary",
        key="cmp_stop",
        on_click=comparison.stop,
        help="Stops every lane: their connections are closed at once and the servers stop generating.",
    )
if state.get("cmp_problem"):
    st.error(state.cmp_problem)

if comparison is None:
    st.info(f"Model: {options.model_label}. Press **Run comparison** to start.")
    draw_probe()
    st.stop()

LANES = comparison.lanes
DEFAULT_PAIR = comparison.is_default_pair
NAMES = {lane.key: header(lane, len(LANES), DEFAULT_PAIR) for lane in LANES}
PROBE_KEY = next((lane.key for lane in LANES if lane.stream), None)
COLORS = {lane.key: LANE_COLORS[n] for n, lane in enumerate(LANES)}
# Each lane's column wears its colour (the timeline's line colour) as a bar over its header;
# more than two columns get smaller headers (four must still read at 1280 px).
st.html(
    "<style>"
    + ("" if DEFAULT_PAIR else "[class*='st-key-cmp-lane-'] h3 { font-size: 1.15rem; min-height: 2.7em; }")
    + "".join(
        f".st-key-cmp-lane-{n} {{ border-top: 6px solid {c}; padding-top: 0.3rem; }}"
        for n, c in enumerate(COLORS.values())
    )
    + "</style>"
)
progress = st.empty()
panels = {}
for n, (lane, column) in enumerate(zip(LANES, st.columns(len(LANES)), strict=True)):
    box = column.container(key=f"cmp-lane-{n}")
    box.subheader(NAMES[lane.key], help=lane.describe() + (f" · {lane.base_url}" if lane.base_url else ""))
    if running and not comparison.lane_stopped(lane.key):
        box.button(
            f"Stop {lane.name.lower() if DEFAULT_PAIR else lane.name}",
            key=f"cmp_stop_{lane.key}",
            on_click=comparison.stop_lane,
            args=(lane.key,),
            help="Stops this lane only (its connection is closed); the others go on.",
        )
    # The visible-TTFT probe watches the first streamed lane's body ("cmp-live-stream-…").
    watched = lane.key == PROBE_KEY and not lane.key.startswith("stream")
    panels[lane.key] = {
        "status": CaptionSlot(box),
        "body": (box.container(key="cmp-live-stream-probe") if watched else box).empty(),
        "line": CaptionSlot(box),
        "error": box.empty(),
    }
chart_slot = st.empty()


def word(lane: Lane) -> str:
    """A lane's name inside a sentence ("streaming", or "B")."""
    return lane.name.lower() if DEFAULT_PAIR else lane.name


def panel_line(g, key: str) -> str:
    v = compare.generation_values(g, key)
    parts = [
        f"first text {metrics.format_seconds(v['first_text_s'])}" if v["first_text_s"] else None,
        f"total {metrics.format_seconds(v['e2e_s'])}" if v["e2e_s"] else None,
        f"{v['bytes'] / 1024:.1f} KB" if v["bytes"] else None,
    ]
    return " · ".join(p for p in parts if p)


def order_of(rnd: compare.CompareRound | None) -> list[Lane]:
    """The lanes in the order the round starts them (the first round, and the warm-up: as listed)."""
    if rnd is None or not rnd.order:
        return list(LANES)
    return [comparison.lane(key) for key in rnd.order]


def spread_text(spread: float | None) -> str:
    if spread is None:
        return f"all {len(LANES)} lanes are sent together"
    return f"all {len(LANES)} lanes sent within {metrics.format_seconds(spread)} of each other"


def progress_text(done: int, total: int, rnd: compare.CompareRound | None) -> str:
    text = f"{done} of {total} replies"
    if comparison.repeat > 1 and rnd is not None:
        text += f" · repeat {rnd.index + 1} of {comparison.repeat}"
    if comparison.mode == compare.RACE:
        return text + " · race: " + spread_text(rnd.send_spread_s if rnd is not None else None)
    order = order_of(rnd)
    if DEFAULT_PAIR:
        return text + f" · one at a time: {order[0].name} first, then {word(order[1])}"
    now = next(
        (lane for lane in order if (g := rnd.get(lane.key) if rnd else None) and not g.is_finished), None
    )
    return (
        text
        + " · one at a time: "
        + " → ".join(lane.name for lane in order)
        + (f" · now: {now.name}" if now else "")
    )


def waiting_text(lane: Lane, rnd: compare.CompareRound | None, finished: bool) -> tuple[str, str]:
    """(status line, panel text) for a lane with no generation (yet) in the round shown."""
    if finished or comparison.lane_stopped(lane.key):
        if comparison.stopped:
            why = "the comparison was stopped"
        elif comparison.lane_stopped(lane.key):
            why = "this lane was stopped"
        else:
            why = "the comparison ended before its turn"
        return "not run", f"Not run: {why}."
    if comparison.mode == compare.RACE:
        return "queued", "**Queued**: starts together with the other lanes."
    order = order_of(rnd)
    place = order.index(lane)
    if place == 0:
        if rnd is not None:
            return "starting…", "Starting…"
        return "queued", "**Queued**: runs first, after the warm-up request."
    return "queued", (
        f"**Queued**: runs {ORDINALS[place]}, when {word(order[place - 1])} "
        "has finished (one at a time, so they do not compete for the server)."
    )


def render_until_finished() -> None:
    """Frames for the round being run; a new round gets fresh panels. A lane that has not
    started says so ("queued") instead of staying blank. The timeline follows at 2 Hz."""
    lives: dict[str, tuple] = {}
    waiting: dict[str, str] = {}
    errors: dict[str, object] = {}
    next_chart = [time.perf_counter() + CHART_EVERY_S]

    def frame(finished: bool) -> None:
        done, total = comparison.progress
        rnd = comparison.current
        if rnd is None and not finished:
            progress.progress(0.0, text="warming up the connections (one uncounted 1-token request each)…")
        else:
            progress.progress(done / total, text=progress_text(done, total, rnd))
        for lane in LANES:
            key, panel = lane.key, panels[lane.key]
            g = rnd.get(key) if rnd else None
            if g is None:
                status, text = waiting_text(lane, rnd, finished)
                if waiting.get(key) != text:  # sent once, not every frame
                    panel["body"].info(text)
                    panel["status"].show(status)
                    panel["line"].show("")
                    waiting[key] = text
                    lives.pop(key, None)
                continue
            waiting.pop(key, None)
            if lives.get(key, (None,))[0] is not g:
                body = panel["body"].container(height=260, key=f"cmp-live-{key}-{rnd.index}")
                lives[key] = (g, LiveReply(body))
            lives[key][1].render(g.text, growing=not g.is_finished)
            panel["status"].show(status_text(g, metrics.compute(g)))
            panel["line"].show(panel_line(g, key) if g.is_finished else "")
            failed = g if g.is_finished and g.state == FAILED and g.error else None
            if errors.get(key) is not failed:  # the lane's own error, in its own column
                if failed is not None:
                    panel["error"].error(escape_markdown(failed.error.message))
                else:
                    panel["error"].empty()
                errors[key] = failed
        if rnd is not None and not finished and time.perf_counter() >= next_chart[0]:
            next_chart[0] = time.perf_counter() + CHART_EVERY_S
            draw_timeline(rnd, live=True)

    run_frames(frame, lambda: comparison.is_finished)


def timeline_chart(rnd: compare.CompareRound) -> alt.LayerChart | None:
    """Visible characters over time, one thick line per lane in its colour, the legend on top;
    dashed rules at each lane's first text and E2E."""
    rows, marks = [], []
    for lane in LANES:
        g = rnd.get(lane.key)
        if g is None:
            continue
        name = NAMES[lane.key]
        v = compare.generation_values(g, lane.key)
        # Thinking models: a dotted line for the thinking too (only then: an empty one would
        # lie along the axis and bring its legend).
        for kind in (compare.ANSWER, compare.THINKING) if v["has_reasoning"] else (compare.ANSWER,):
            for t, chars in compare.visible_text_timeline(g, kind):
                rows.append({"lane": name, "text": kind, "seconds": t, "characters visible": chars})
        answer_mark = (("first answer", v["first_answer_s"]),) if v.get("has_reasoning") else ()
        for what, t in (("first text", v["first_text_s"]), *answer_mark, ("E2E", v["e2e_s"])):
            if t is not None and g.is_finished:
                marks.append({"lane": name, "seconds": t, "mark": f"{name} {what}"})
    if not rows:
        return None
    axis = {"labelFontSize": 14, "titleFontSize": 14, "labelColor": "#222", "titleColor": "#222"}
    names = list(NAMES.values())
    # Both layers colour by lane with the same scale and legend, so Vega-Lite draws one legend.
    color = alt.Color(
        "lane:N",
        scale=alt.Scale(domain=names, range=list(COLORS.values())),
        sort=names,
        legend=alt.Legend(
            title=None,
            orient="top",
            direction="horizontal",
            labelFontSize=16,
            labelColor="#222",
            labelLimit=0,
            symbolType="stroke",
            symbolStrokeWidth=LINE_WIDTH + 1,
            symbolSize=600,
            columnPadding=28,
            **({"columns": 2} if len(LANES) > 2 else {}),  # four long names: two rows
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
        alt.Chart(pd.DataFrame(marks, columns=["lane", "seconds", "mark"]))
        .mark_rule(strokeWidth=2, strokeDash=[8, 5], opacity=0.9)
        .encode(x="seconds:Q", color=color, tooltip=["mark:N", alt.Tooltip("seconds:Q", format=".3f")])
    )
    return alt.layer(rules, lines).properties(height=340)


def draw_timeline(rnd: compare.CompareRound, live: bool = False) -> None:
    chart = timeline_chart(rnd)
    if chart is None:
        return
    with chart_slot.container():
        st.subheader("Text visible over time")
        st.altair_chart(chart, width="stretch")
        st.caption(
            "Live, redrawn twice a second."
            if live
            else f"Dashed lines: time to first visible text and E2E for each lane (repeat {rnd.index + 1})."
        )


render_until_finished()
if running:
    st.rerun()  # redraw the controls (Run instead of Stop) and the results below

if comparison.current is not None:
    draw_timeline(comparison.current)
if comparison.error:
    st.error(escape_markdown(comparison.error))  # it may quote the server: shown as written
summary = comparison.summary()
outcomes = comparison.outcomes()
verdict = comparison.verdict()
failures = [f for lane in LANES if (f := compare.lane_failure(lane, outcomes.get(lane.key) or {}))]
if DEFAULT_PAIR:
    (st.success if verdict.startswith("Streaming showed") else st.warning)(escape_markdown(verdict))
else:
    (st.warning if failures or verdict.startswith("No comparison") else st.success)(escape_markdown(verdict))
if comparison.mode == compare.RACE and (spread := comparison.send_spread_s()) is not None:
    st.caption(
        f"Race: every round's requests were sent within {metrics.format_seconds(spread)} of each other."
    )

st.subheader("Summary" + (f" over {comparison.repeat} repeats" if comparison.repeat > 1 else ""))


def fmt(value, unit) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return metrics.format_seconds(value)
    return f"{value:,.1f}" if unit == "tok/s" else f"{value:,.0f}"


def cell(row: dict, key: str) -> str:
    prefix = compare.stat_prefix(key)
    text = fmt(row[f"{prefix}_median"], row["unit"])
    if comparison.repeat > 1 and row[f"{prefix}_n"] > 1:
        text += f" · p95 {fmt(row[f'{prefix}_p95'], row['unit'])}"
    return text


def explained(row: dict) -> str:
    label, help_text = row["label"], row["help"]
    if help_text.lower().startswith(label.lower() + ":"):  # "Output tokens: Output tokens: …"
        help_text = help_text[len(label) + 1 :].lstrip()
    return f"**{label}**: {help_text}"


# A static table, one row per lane and a column per figure: short labels, every cell shown in
# full at any width (a data grid cuts long labels with "…"); what each label means is in the
# caption below it.
table = pd.DataFrame(
    [{"Lane": NAMES[lane.key], **{row["label"]: cell(row, lane.key) for row in summary}} for lane in LANES]
)
st.table(table, hide_index=True)
st.caption(
    (
        "Median"
        + (" · p95 over the repeats" if comparison.repeat > 1 else "")
        + " of the runs that finished.  \n"
    )
    + "  \n".join(explained(row) for row in summary)
)
with st.expander("Every run"):
    rows = compare.run_rows(comparison.rounds)
    for r in rows:
        r["side"] = NAMES.get(r["side"], r["side"])
    st.dataframe(pd.DataFrame(rows).rename(columns={"side": "lane"}), hide_index=True)
draw_probe()
