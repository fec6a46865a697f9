"""Runs page (AppTest): a recorded Compare run, when selected, replays in place, can be shared
read-only and downloaded as a page; a run without a recording says so."""
import dataclasses

from streamchat import recording
from streamchat.markdown_safety import escape_markdown
from streamchat.store import Store
from tests.harness.scripted_server import Script, ScriptedServer
from tests.test_export_page import paper_recording

TABLE = "runs_table_0"   # the Runs table's key before any jump to a chat


def short_recording(side: str):
    rec = paper_recording("w0 ", side=side, stream=side == "stream")
    rec.chunks = rec.chunks[:4]   # three tokens: a replay of well under a second
    rec.text, rec.end = "w0 w1 w2 ", rec.chunks[-1].t
    return rec


def select_newest(at):
    at.session_state[TABLE] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, at.exception
    return at


def test_a_selected_recorded_compare_run_replays_shares_and_exports(open_page, tmp_path):
    store = Store(tmp_path / "data")
    ids = [store.record_run(source="compare", model="scripted", mode=mode, state="done", ttft_s=0.5)
           for mode in ("non-stream", "stream")]
    for run_id, side in zip(ids, ("non-stream", "stream"), strict=True):
        store.save_recording(recording.encode(short_recording(side)), run_id=run_id, group_id="pair-1")
    store.close()
    with ScriptedServer(Script(tokens=3, rate=0)) as srv:
        at = select_newest(open_page(srv, "runs"))
        assert any("Selected run" in s.value for s in at.subheader)
        assert "🔁" in list(at.dataframe[0].value["🔁"])
        at.button(key="runs_share").click().run()
        assert not at.exception
        assert any("?share=" in c.value for c in at.code)
        at.button(key="replay-start-run-" + str(ids[1])).click().run()   # both sides, one ▶
        assert not at.exception
        assert any("replay of" in c.value for c in at.caption)
        assert len(srv.requests()) == 0, "a replay asks no model"


def test_a_lanes_comparison_shows_its_id_and_lanes_and_replays_every_lane(open_page, tmp_path):
    store = Store(tmp_path / "data")
    lanes = ("fast", "slow", "fast-whole")
    ids = [store.record_run(source="compare", model="scripted", mode="stream", state="done", ttft_s=0.5,
                            compare_id="c0ffee1234", lane=lane) for lane in lanes]
    for run_id, lane in zip(ids, lanes, strict=True):
        rec = short_recording("stream")
        store.save_recording(recording.encode(dataclasses.replace(rec, side=lane)), run_id=run_id,
                             group_id="c0ffee1234-0")
    store.close()
    with ScriptedServer(Script(tokens=3, rate=0)) as srv:
        at = select_newest(open_page(srv, "runs"))
        table = at.dataframe[0].value
        assert list(table["compare"]) == ["c0ffee"] * 3 and list(table["lane"]) == list(lanes[::-1])
        headings = [m.value for m in at.markdown if m.value.startswith("**") and " · " in m.value]
        model = escape_markdown(recording.Recording([], 0, settings={"model": "scripted <b>model</b>"}).model)
        assert headings == [f"**{escape_markdown(lane)} · {model} · streaming**" for lane in lanes]


def test_a_selected_run_without_recording_says_so(open_page, tmp_path):
    store = Store(tmp_path / "data")
    store.record_run(source="compare", model="scripted", mode="stream", state="done", ttft_s=0.5)
    store.close()
    with ScriptedServer(Script(tokens=3, rate=0)) as srv:
        at = select_newest(open_page(srv, "runs"))
        assert not any("Selected run" in s.value for s in at.subheader)
        assert any("no recording" in c.value for c in at.caption)



def test_the_share_menu_lists_every_link_of_yours_this_chats_first(open_page, tmp_path):
    store = Store(tmp_path / "data")
    this, other = store.create_conversation("this one"), store.create_conversation("the other one")
    for cid in (this, other):
        store.add_message(cid, "user", "hello")
    store.create_share(None, conversation_id=other)
    store.create_share(None, conversation_id=this)
    revoked = store.create_share(None, conversation_id=other)
    store.revoke_share(revoked, None)
    store.close()
    with ScriptedServer(Script(tokens=3, rate=0)) as srv:
        at = open_page(srv, "chat")
        at.session_state["conversation_id"] = this   # as a click on it in the list does
        at.run()
        assert not at.exception
        captions = [c.value for c in at.sidebar.caption]
        labels = [c for c in captions if c == "This chat" or c.startswith("Chat:")]
        assert labels == ["This chat", "Chat: the other one"], captions
        links = [c.value for c in at.sidebar.code if "?share=" in c.value]
        assert len(links) == 2 and not any(revoked in link for link in links)
        assert len([b for b in at.sidebar.button if b.label == "Revoke"]) == 2
