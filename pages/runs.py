"""Runs: every request the app made (chat, compare, CLI), with filters, charts and export."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from components.context import context
from components.conversations import open_conversation, owns
from streamchat import export

COLUMNS = {  # shown column -> label
    "created_at": "time", "source": "source", "provider": "provider", "model": "model",
    "mode": "mode", "state": "state", "ttft_s": "TTFT (s)", "decode_tps": "decode tok/s",
    "e2e_s": "E2E (s)", "output_tokens": "tokens", "bytes": "bytes", "error": "error",
}

ctx = context()
st.title("Runs")
runs = ctx.store.runs()
if not runs:
    st.info("No requests yet. Chat or compare, and every request shows up here with its metrics.")
    st.stop()

frame = pd.DataFrame(runs)
frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
left, middle, right = st.columns(3)
models = left.multiselect("Model", sorted(frame["model"].dropna().unique()), key="runs_model")
modes = middle.multiselect("Mode", sorted(frame["mode"].dropna().unique()), key="runs_mode")
states = right.multiselect("State", sorted(frame["state"].dropna().unique()), key="runs_state")
shown = frame
for column, chosen in (("model", models), ("mode", modes), ("state", states)):
    if chosen:
        shown = shown[shown[column].isin(chosen)]

st.caption(f"{len(shown)} of {len(frame)} requests · newest first · select a chat row to open its "
           "conversation")
# A fresh key after each jump to a chat, or the old selection would jump again on return.
table_key = f"runs_table_{st.session_state.setdefault('runs_table_nonce', 0)}"
selection = st.dataframe(
    shown[list(COLUMNS)].rename(columns=COLUMNS), hide_index=True, key=table_key,
    on_select="rerun", selection_mode="single-row",
    column_config={"TTFT (s)": st.column_config.NumberColumn(format="%.3f"),
                   "E2E (s)": st.column_config.NumberColumn(format="%.2f"),
                   "decode tok/s": st.column_config.NumberColumn(format="%.1f")})
rows = selection.selection.rows if selection else []
if rows:
    run = shown.iloc[rows[0]]
    if run["source"] == "chat" and isinstance(run["conversation_id"], str) \
            and owns(ctx.store.get_conversation(run["conversation_id"])):
        open_conversation(run["conversation_id"])
        st.session_state.runs_table_nonce += 1
        st.switch_page("pages/chat.py")
    else:
        st.caption("That run has no conversation of this session to open (compare and CLI runs "
                   "have none; other sessions' chats stay private).")

records = shown.drop(columns=["created_at"]).assign(created_at=shown["created_at"].astype(str))
export_rows = records.to_dict("records")
one, two = st.columns(2)
one.download_button("⬇ CSV", export.runs_csv(export_rows), file_name="streamchat-runs.csv",
                    mime="text/csv", on_click="ignore", key="runs_csv")
two.download_button("⬇ JSON", export.runs_json(export_rows), file_name="streamchat-runs.json",
                    mime="application/json", on_click="ignore", key="runs_json")

done = shown[shown["state"] == "done"]
if done.empty:
    st.stop()
st.subheader("Over time")
for field, title in (("ttft_s", "TTFT (s)"), ("decode_tps", "Decode tok/s")):
    st.altair_chart(
        alt.Chart(done).mark_circle(size=50).encode(
            x=alt.X("created_at:T", title="time"), y=alt.Y(f"{field}:Q", title=title),
            color="model:N", shape="mode:N",
            tooltip=["created_at:T", "model:N", "mode:N", alt.Tooltip(f"{field}:Q", format=".3f")]),
        width="stretch")
st.subheader("Distributions per model")
for field, title in (("ttft_s", "TTFT (s)"), ("decode_tps", "Decode tok/s")):
    st.altair_chart(
        alt.Chart(done).mark_boxplot().encode(
            x=alt.X(f"{field}:Q", title=title), y=alt.Y("model:N", title=None), color="mode:N"),
        width="stretch")
