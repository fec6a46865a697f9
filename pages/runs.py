"""Runs: every request the app made (chat, compare, CLI), with filters, charts and export."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import altair as alt
import pandas as pd
import streamlit as st

from components.context import context
from components.conversations import open_conversation
from components.identity import is_shared, listed_owner, may_open, session_owner
from components.replay_view import replay_compare_run
from components.share import share_link
from streamchat import compare, export, export_page, replay

COLUMNS = {  # shown column -> label
    "created_at": "time",
    "source": "source",
    "compare": "compare",
    "lane": "lane",
    "provider": "provider",
    "model": "model",
    "mode": "mode",
    "state": "state",
    "ttft_s": "TTFT (s)",
    "visible_ttft_s": "seen in browser (s)",
    "time_to_answer_s": "answer (s)",
    "thinking_s": "thinking (s)",
    "decode_tps": "decode tok/s",
    "e2e_s": "E2E (s)",
    "output_tokens": "tokens",
    "reasoning_tokens": "thinking tokens",
    "bytes": "bytes",
    "error": "error",
    "replay": "🔁",
}
THINKING_FILTER = {"with thinking": True, "without thinking": False}
MODES = [compare.STREAM, compare.NON_STREAM]
MODE_COLORS = alt.Scale(domain=MODES, range=[compare.SIDE_COLORS[m] for m in MODES])


def zone_named(name: str | None) -> tzinfo | None:
    if name:
        try:
            return ZoneInfo(name)
        except (KeyError, ValueError, OSError):  # an unknown or malformed zone name
            pass
    return None


def server_zone() -> tuple[tzinfo, str]:
    """The server's local zone by its IANA name (TZ, else /etc/localtime), which the browser's
    table can show; else its current UTC offset."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        target = os.path.realpath("/etc/localtime")
        name = target.split("/zoneinfo/", 1)[1] if "/zoneinfo/" in target else ""
    zone = zone_named(name)
    if zone is None:
        zone = datetime.now().astimezone().tzinfo  # a fixed offset, e.g. UTC+05:45
        name = zone.tzname(None)
    return zone, f"the server's zone, {name}"


def viewer_zone() -> tuple[tzinfo, str]:
    """The browser's time zone (st.context), else the server's local zone; and words naming it."""
    name = st.context.timezone
    zone = zone_named(name)
    if zone is not None:
        return zone, name
    offset = st.context.timezone_offset  # minutes behind UTC, as JavaScript's getTimezoneOffset
    if offset is not None:
        zone = timezone(-timedelta(minutes=offset))
        return zone, zone.tzname(None)
    return server_zone()


ctx = context()
st.title("Runs")
# Shared: each identity sees its own runs (error texts can quote prompts); single user: all.
runs = ctx.store.runs(owner=session_owner()) if is_shared() else ctx.store.runs()
if not runs:
    st.info("No requests yet. Chat or compare, and every request shows up here with its metrics.")
    st.stop()

zone, zone_name = viewer_zone()
recorded_runs = ctx.store.recorded_runs([run["id"] for run in runs])
frame = pd.DataFrame(runs)
frame["replay"] = frame["id"].isin(recorded_runs).map({True: "🔁", False: ""})
# The runs of one comparison (every lane, every repeat) share its id: six characters tell them apart.
frame["compare"] = frame["compare_id"].map(lambda c: c[:6] if isinstance(c, str) else "")
frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="ISO8601").dt.tz_convert(zone)
left, middle, right, fourth = st.columns(4)
models = left.multiselect("Model", sorted(frame["model"].dropna().unique()), key="runs_model")
modes = middle.multiselect("Mode", sorted(frame["mode"].dropna().unique()), key="runs_mode")
states = right.multiselect("State", sorted(frame["state"].dropna().unique()), key="runs_state")
thinking = fourth.multiselect(
    "Thinking",
    list(THINKING_FILTER),
    key="runs_thinking",
    help="Replies of models that think before they answer.",
)
frame["has_thinking"] = frame["reasoning_tokens"].fillna(0) > 0
shown = frame
for column, chosen in (
    ("model", models),
    ("mode", modes),
    ("state", states),
    ("has_thinking", [THINKING_FILTER[t] for t in thinking]),
):
    if chosen:
        shown = shown[shown[column].isin(chosen)]

st.caption(
    f"{len(shown)} of {len(frame)} requests · newest first · times in {zone_name} · "
    "select a chat row to open its conversation"
)
# A fresh key after each jump to a chat, or the old selection would jump again on return.
table_key = f"runs_table_{st.session_state.setdefault('runs_table_nonce', 0)}"
selection = st.dataframe(
    shown[list(COLUMNS)].rename(columns=COLUMNS),
    hide_index=True,
    key=table_key,
    on_select="rerun",
    selection_mode="single-row",
    column_config={
        "time": st.column_config.DatetimeColumn(
            format="YYYY-MM-DD HH:mm:ss", help=f"Local time ({zone_name})"
        ),
        "TTFT (s)": st.column_config.NumberColumn(
            format="%.3f", help="Request sent → first token of any kind"
        ),
        "seen in browser (s)": st.column_config.NumberColumn(
            format="%.3f",
            help="Your Enter or click → the first answer words painted, measured in your browser",
        ),
        "answer (s)": st.column_config.NumberColumn(
            format="%.3f", help="Time to answer: request sent → first answer token"
        ),
        "thinking (s)": st.column_config.NumberColumn(format="%.3f"),
        "compare": st.column_config.TextColumn(
            help="The comparison a Compare or CLI run belongs to: its lanes and repeats share it"
        ),
        "lane": st.column_config.TextColumn(help="The lane of its comparison"),
        "E2E (s)": st.column_config.NumberColumn(format="%.3f"),
        "decode tok/s": st.column_config.NumberColumn(format="%.1f"),
    },
)
rows = selection.selection.rows if selection else []
replay_run = None
if rows:
    run = shown.iloc[rows[0]]
    if (
        run["source"] == "chat"
        and isinstance(run["conversation_id"], str)
        and may_open(ctx.store.get_conversation(run["conversation_id"]))
    ):
        open_conversation(run["conversation_id"])
        st.session_state.runs_table_nonce += 1
        st.switch_page("pages/chat.py")
    elif int(run["id"]) in recorded_runs:
        replay_run = int(run["id"])
    else:
        st.caption(
            "That run has no conversation of this session to open and no recording (compare and "
            "CLI runs have no conversation; other sessions' chats stay private; runs made before "
            "recordings have none)."
        )

# Exported as the store has them (no pandas NaN), with the time as ISO 8601 in the viewer's zone
# and its offset, e.g. 2025-03-01T17:30:00.250000+05:30.
by_id = {run["id"]: run for run in runs}
export_rows = [
    {**by_id[run_id], "created_at": when.to_pydatetime()}
    for run_id, when in zip(shown["id"], shown["created_at"], strict=True)
]
one, two = st.columns(2)
one.download_button(
    "⬇ CSV",
    export.runs_csv(export_rows),
    file_name="streamchat-runs.csv",
    mime="text/csv",
    on_click="ignore",
    key="runs_csv",
)
two.download_button(
    "⬇ JSON",
    export.runs_json(export_rows),
    file_name="streamchat-runs.json",
    mime="application/json",
    on_click="ignore",
    key="runs_json",
)

done = shown[shown["state"] == "done"]
if done.empty:
    st.stop()


def per_mode(data: pd.DataFrame, title: str, draw) -> None:
    """One chart per mode, each with its own value scale: a 16 s non-streaming wait must not
    squash 0.3 s streaming TTFTs into a line at the bottom. (One chart each rather than a facet:
    a faceted Vega-Lite chart cannot take the page's width.)"""
    for mode in MODES:
        rows = data[data["mode"] == mode]
        if not rows.empty:
            heading = alt.TitleParams(f"{title} · {compare.SIDE_LABELS[mode]}", anchor="start", fontSize=15)
            st.altair_chart(draw(rows).properties(title=heading), width="stretch")


def mode_color() -> alt.Color:
    return alt.Color("mode:N", scale=MODE_COLORS, title="mode", legend=None)


st.subheader("Over time")
st.caption(
    "One chart per mode, each with its own scale: non-streaming shows nothing until the "
    "whole reply has arrived, so its TTFT is its E2E, seconds where streaming takes a "
    "fraction of one."
)
# The same time axis for every mode, so the charts line up: an invisible rule at every run's
# time (all modes) sets each chart's time range.
all_times = alt.Chart(done[["created_at"]]).mark_rule(opacity=0).encode(x="created_at:T")
span = done["created_at"].max() - done["created_at"].min()
time_axis = alt.Axis(
    format="%H:%M:%S" if span < pd.Timedelta(hours=20) else "%d %b %H:%M",
    tickCount=6,
    labelOverlap=True,
    labelFontSize=12,
)


def over_time(field: str, title: str):
    def draw(rows: pd.DataFrame) -> alt.LayerChart:
        points = (
            alt.Chart(rows)
            .mark_circle(size=80, opacity=0.9)
            .encode(
                x=alt.X("created_at:T", title="time", axis=time_axis),
                y=alt.Y(
                    f"{field}:Q", title=title, axis=alt.Axis(labelFontSize=12, tickCount=4, minExtent=40)
                ),
                color=mode_color(),
                shape=alt.Shape("model:N", legend=alt.Legend(title="model")),
                tooltip=[
                    alt.Tooltip("created_at:T", title="time", format="%Y-%m-%d %H:%M:%S"),
                    "model:N",
                    "mode:N",
                    alt.Tooltip(f"{field}:Q", title=title, format=".3f"),
                ],
            )
        )
        return alt.layer(all_times, points).properties(height=230)  # title, plot and axis

    return draw


def distribution(field: str, title: str):
    def draw(rows: pd.DataFrame) -> alt.Chart:
        return (
            alt.Chart(rows)
            .mark_boxplot(size=18)
            .encode(x=alt.X(f"{field}:Q", title=title), y=alt.Y("model:N", title=None), color=mode_color())
            .properties(height=alt.Step(32))
        )

    return draw


METRICS = (("ttft_s", "TTFT (s)"), ("decode_tps", "Decode tok/s"))
for field, title in METRICS:
    per_mode(
        done.loc[done[field].notna(), ["created_at", "model", "mode", field]], title, over_time(field, title)
    )
st.subheader("Distributions per model")
for field, title in METRICS:
    per_mode(done.loc[done[field].notna(), ["model", "mode", field]], title, distribution(field, title))


def share_run(run_id: int) -> None:
    try:
        token = ctx.store.create_share(listed_owner(), run_id=run_id)
    except (KeyError, PermissionError):  # gone, or not this browser's run
        st.toast("This run cannot be shared from here.", icon="🔒")
        return
    st.session_state.setdefault("run_share_links", {})[run_id] = token


# A recorded Compare (or CLI) run: both sides replayed side by side at their recorded timing,
# a read-only link, an offline page. Last on the page: a replay's frames hold the run.
if replay_run is not None:
    st.subheader("Selected run: replay")
    share_col, page_col = st.columns(2)
    share_col.button("🔗 Share this run", key="runs_share", on_click=share_run, args=(replay_run,))
    page_col.download_button(
        "⬇ Page",
        lambda: export_page.compare_page(replay.load_group(ctx.store, replay_run)),
        file_name=f"streamchat-run-{replay_run}.html",
        mime="text/html",
        on_click="ignore",
        key="runs_page",
        help="One HTML file that replays this run offline, for mail.",
    )
    token = st.session_state.get("run_share_links", {}).get(replay_run)
    if token:
        st.code(share_link(token), language=None, wrap_lines=True)
        st.button(
            "Revoke", key="runs_share_revoke", on_click=ctx.store.revoke_share, args=(token, listed_owner())
        )
    replay_compare_run(ctx.store, replay_run, key=f"run-{replay_run}")
