"""The store and exports: round-trips, ordering, concurrency, corruption recovery, no secrets.

Tests that take `store` run on SQLite and on PostgreSQL (tests/conftest.py: backend_store); the
ones on files, WAL and corruption are SQLite's own."""
import csv
import io
import json
import os
import sqlite3
import threading
import time

import pytest

from streamchat import export, metrics, migrations
from streamchat.generation import DONE, FAILED, Endpoint, ErrorInfo, Generation, GenerationRequest
from streamchat.store import RUN_COLUMNS, Store, run_fields_from_generation

KEY = "sk-secret"


@pytest.fixture
def store(backend_store):
    return backend_store


def raw(store, sql, *params):
    """Rows as tuples, straight from the store's database (either backend)."""
    with store._connect() as conn:
        return [tuple(r) for r in conn.execute(sql, params)]


def raw_file(store, sql):
    with sqlite3.connect(store.path) as conn:
        return conn.execute(sql).fetchall()


def finished_generation(*, stream=True, base_url="http://127.0.0.1:1/v1", error=None):
    g = Generation(GenerationRequest(messages=({"role": "user", "content": "hello"},), stream=stream))
    g.endpoint = Endpoint("remote", base_url, "m", KEY)
    t0 = time.perf_counter()
    g.t_sent = t0
    g.t_headers = t0 + 0.05
    g.bytes_received = 420
    g._record_chunk(t0 + 0.10, "")          # role-only chunk
    g._record_chunk(t0 + 0.18, "hi")
    g._record_chunk(t0 + 0.28, " there")
    g._record_chunk(t0 + 0.38, "!")
    g.usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    g.finish_reason = "stop"
    g._finish(FAILED if error else DONE, error)
    return g


# ---- schema ----------------------------------------------------------------------------------
@pytest.mark.sqlite_only   # files, WAL, corruption: SQLite's own
def test_creates_data_dir_with_wal_and_current_schema(tmp_path):
    s = Store(tmp_path / "a" / "b")
    assert s.path == tmp_path / "a" / "b" / "streamchat.db" and s.path.exists()
    assert raw_file(s, "PRAGMA journal_mode") == [("wal",)]
    assert s.schema_version == len(migrations.MIGRATIONS)
    tables = {r[0] for r in raw_file(s, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"conversations", "messages", "runs"} <= tables
    assert "parent_id" in {r[1] for r in raw_file(s, "PRAGMA table_info(messages)")}
    assert s.recovered_from is None


def test_both_backends_end_with_the_same_columns(open_backend_store, backend):
    s = open_backend_store()
    assert s.schema_version == len(migrations.MIGRATIONS)
    with s._connect() as conn:
        columns = {t: conn.columns(t) for t in ("conversations", "messages", "runs", "recordings", "shares")}
    assert columns["conversations"] == {"id", "title", "created_at", "updated_at", "owner", "leaf_id"}
    assert {"parent_id", "reasoning", "metrics_json", "seq"} <= columns["messages"]
    assert columns["runs"] == {"id", *RUN_COLUMNS}
    assert columns["recordings"] == {"id", "message_id", "run_id", "group_id", "owner", "created_at", "data"}
    assert columns["shares"] == {"token", "owner", "conversation_id", "run_id", "created_at", "revoked_at"}


def test_reopening_keeps_data_and_applies_only_new_migrations(open_backend_store, monkeypatch):
    s = open_backend_store()
    cid = s.create_conversation("kept")
    applied = []

    def added_later(conn):
        applied.append(True)
        conn.ddl("CREATE TABLE extra (x INTEGER)")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, added_later])
    s2 = open_backend_store()
    open_backend_store()
    assert applied == [True]
    assert s2.schema_version == len(migrations.MIGRATIONS)
    assert s2.get_conversation(cid)["title"] == "kept"


# ---- conversations and messages --------------------------------------------------------------
def test_conversation_round_trip_rename_and_missing(store):
    cid = store.create_conversation()
    conv = store.get_conversation(cid)
    assert conv["id"] == cid and len(cid) == 32 and conv["title"] == "New chat"
    assert conv["created_at"] == conv["updated_at"]
    store.rename_conversation(cid, "Renamed")
    assert store.get_conversation(cid)["title"] == "Renamed"
    assert store.get_conversation("nope") is None
    assert store.conversation_messages("nope") == []


def test_list_is_newest_updated_first(store):
    a = store.create_conversation("a")
    b = store.create_conversation("b")
    assert [c["id"] for c in store.list_conversations()] == [b, a]
    store.add_message(a, "user", "bump a")
    assert [c["id"] for c in store.list_conversations()] == [a, b]


def test_messages_round_trip_in_order(store):
    cid = store.create_conversation()
    ids = [store.add_message(cid, "system", "be brief"),
           store.add_message(cid, "user", "hi"),
           store.add_message(cid, "assistant", "hello", summary="TTFT 180 ms · 74 tok/s",
                             metrics={"ttft": {"value": 0.18, "source": "measured"}})]
    msgs = store.conversation_messages(cid)
    assert [m["id"] for m in msgs] == ids
    assert [m["seq"] for m in msgs] == [1, 2, 3]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
    assert msgs[2]["metrics"] == {"ttft": {"value": 0.18, "source": "measured"}}
    assert msgs[2]["summary"] == "TTFT 180 ms · 74 tok/s"
    assert msgs[1]["state"] == "done" and msgs[1]["error"] is None
    assert msgs[1]["parent_id"] == ids[0]   # appended to the current branch
    child = store.add_message(cid, "user", "branch", parent_id=ids[1])
    assert store.get_message(child)["parent_id"] == ids[1]


def test_metrics_object_is_stored_as_json(store):
    cid = store.create_conversation()
    m = metrics.compute(finished_generation())
    mid = store.add_message(cid, "assistant", "hi there!", metrics=m)
    saved = store.get_message(mid)["metrics"]
    assert saved["output_tokens"] == {"value": 3, "source": "server"}
    assert saved["ttft"]["value"] == pytest.approx(0.18)


def test_bad_role_state_or_conversation_is_refused(store):
    cid = store.create_conversation()
    with pytest.raises(ValueError):
        store.add_message(cid, "robot", "x")
    with pytest.raises(ValueError):
        store.add_message(cid, "user", "x", state="weird")
    with pytest.raises(KeyError):
        store.add_message("missing", "user", "x")


def test_delete_cascades_to_messages(store):
    keep, gone = store.create_conversation(), store.create_conversation()
    store.add_message(keep, "user", "stay")
    store.add_message(gone, "user", "q")
    store.add_message(gone, "assistant", "a")
    store.delete_conversation(gone)
    assert store.get_conversation(gone) is None
    assert raw(store, "SELECT COUNT(*) FROM messages WHERE conversation_id = ?", gone) == [(0,)]
    assert len(store.conversation_messages(keep)) == 1


def test_first_user_message_sets_title_once(store):
    cid = store.create_conversation()
    store.add_message(cid, "system", "You are helpful.")
    assert store.get_conversation(cid)["title"] == "New chat"
    store.add_message(cid, "user", "  Explain\nstreaming   responses " + "x" * 100)
    title = store.get_conversation(cid)["title"]
    assert title.startswith("Explain streaming responses x") and "\n" not in title
    assert len(title) <= 60 and title.endswith("…")
    store.add_message(cid, "user", "second question")
    assert store.get_conversation(cid)["title"] == title


def test_user_chosen_title_is_not_replaced(store):
    cid = store.create_conversation("My title")
    store.add_message(cid, "user", "hello")
    assert store.get_conversation(cid)["title"] == "My title"


def test_update_message_state_summary_and_touch(store):
    cid = store.create_conversation()
    mid = store.add_message(cid, "assistant", "", state="streaming")
    before = store.get_conversation(cid)["updated_at"]
    store.update_message(mid, content="partial")
    store.update_message(mid, state="stopped", summary="TTFT 90 ms · 3 tokens", error="Stopped by you",
                         metrics={"chunks": 3})
    m = store.get_message(mid)
    assert (m["content"], m["state"], m["summary"], m["error"], m["metrics"]) == (
        "partial", "stopped", "TTFT 90 ms · 3 tokens", "Stopped by you", {"chunks": 3})
    store.update_message(mid, state="done")          # other fields left as they were
    assert store.get_message(mid)["content"] == "partial"
    assert store.get_conversation(cid)["updated_at"] > before
    with pytest.raises(ValueError):
        store.update_message(mid, state="nope")


# ---- robustness ------------------------------------------------------------------------------
def test_concurrent_writes_from_threads(store):
    cid = store.create_conversation()
    mids = [store.add_message(cid, "assistant", "", state="streaming") for _ in range(8)]
    errors = []
    start = threading.Barrier(8)

    def work(i):
        try:
            start.wait()
            for n in range(50):
                store.update_message(mids[i], content=f"{i}:{n}", summary=f"{n} tokens")
                if n % 10 == 0:
                    store.record_run(source="chat", conversation_id=cid, message_id=mids[i], state="done")
                    store.conversation_messages(cid)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [m["content"] for m in store.conversation_messages(cid)] == [f"{i}:49" for i in range(8)]
    assert len(store.runs()) == 8 * 5


@pytest.mark.sqlite_only   # files, WAL, corruption: SQLite's own
@pytest.mark.parametrize("damage", ["whole file", "pages after the header"])
def test_corrupt_file_is_moved_aside_and_a_fresh_store_works(tmp_path, damage):
    s = Store(tmp_path)
    cid = s.create_conversation()
    for i in range(200):
        s.add_message(cid, "user", f"message {i} " * 20)
    s.close()  # as after a restart: the WAL is checkpointed into the file, then the file is damaged
    data = s.path.read_bytes()
    offset = 0 if damage == "whole file" else 4096
    bad = data[:offset] + os.urandom(len(data) - offset)
    s.path.write_bytes(bad)

    fresh = Store(tmp_path)
    assert fresh.recovered_from is not None
    assert fresh.recovered_from.name.startswith("streamchat.db.corrupt-")
    assert fresh.recovered_from.read_bytes() == bad
    assert fresh.list_conversations() == []
    new = fresh.create_conversation()
    fresh.add_message(new, "user", "works again")
    assert Store(tmp_path).recovered_from is None
    assert Store(tmp_path).conversation_messages(new)[0]["content"] == "works again"


def test_nul_and_surrogates_are_sanitised(store):
    cid = store.create_conversation()
    mid = store.add_message(cid, "user", "a\x00b\ud800c \ud83d\ude00")
    assert store.get_message(mid)["content"] == "ab\ufffdc 😀"
    assert store.get_conversation(cid)["title"] == "ab\ufffdc 😀"
    store.update_message(mid, error="bad\x00\udfff", summary="s\ud800", metrics={"k": "v\ud800"})
    m = store.get_message(mid)
    assert (m["error"], m["summary"], m["metrics"]) == ("bad\ufffd", "s\ufffd", {"k": "v\ufffd"})
    store.rename_conversation(cid, "t\x00\ud800")
    assert store.get_conversation(cid)["title"] == "t\ufffd"
    run_id = store.record_run(source="cli", error="x\x00\ud800")
    assert store.runs(id=run_id)[0]["error"] == "x\ufffd"


# ---- runs ------------------------------------------------------------------------------------
def test_run_fields_from_a_finished_generation(store):
    g = finished_generation()
    fields = run_fields_from_generation(g, source="chat", conversation_id="c1", message_id="m1")
    run_id = store.record_run(**fields)
    [run] = store.runs()
    assert run["id"] == run_id
    assert (run["source"], run["conversation_id"], run["message_id"]) == ("chat", "c1", "m1")
    assert (run["provider"], run["base_url"], run["model"]) == ("remote", "http://127.0.0.1:1/v1", "m")
    assert (run["mode"], run["state"]) == ("stream", "done")
    assert run["ttft_s"] == pytest.approx(0.18)
    assert run["ttfb_s"] == pytest.approx(0.05)
    assert run["e2e_s"] == pytest.approx(0.38)
    assert run["tpot_s"] == pytest.approx(0.10)
    assert run["decode_tps"] == pytest.approx(10.0)
    assert run["itl_p50_s"] == pytest.approx(0.10)
    assert (run["output_tokens"], run["output_tokens_source"]) == (3, "server")
    assert (run["bytes"], run["chunks"]) == (420, 4)
    assert run["error_kind"] is None and run["error"] is None
    assert run["extra"]["finish_reason"] == "stop"
    assert run["extra"]["usage"]["completion_tokens"] == 3

    non_stream = run_fields_from_generation(finished_generation(stream=False), source="compare")
    assert non_stream["mode"] == "non-stream"


def test_api_key_is_never_written(store):
    failed = finished_generation(error=ErrorInfo("auth", f"Key {KEY} was refused (401).", status=401),
                                 base_url=f"https://user:{KEY}@api.example.com/v1")
    store.record_run(**run_fields_from_generation(failed, source="chat"))
    store.record_run(**run_fields_from_generation(finished_generation(), source="cli"))
    run = store.runs(state="failed")[0]
    assert run["base_url"] == "https://api.example.com/v1"
    assert run["error_kind"] == "auth" and KEY not in run["error"]
    if store.path is None:  # PostgreSQL: every value of every row
        assert KEY not in repr(raw(store, "SELECT * FROM runs") + raw(store, "SELECT * FROM messages"))
        return
    files = [p for p in store.data_dir.iterdir() if p.name.startswith("streamchat.db")]
    assert files
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path


def test_runs_filters_limit_and_unknown_fields(store):
    for source in ("chat", "compare", "compare", "cli"):
        store.record_run(source=source, model="m", extra={"n": 1})
    assert [r["source"] for r in store.runs()] == ["cli", "compare", "compare", "chat"]
    assert len(store.runs(source="compare")) == 2
    assert len(store.runs(limit=1)) == 1
    assert len(store.runs(source="chat", model="m", conversation_id=None)) == 1
    assert store.runs()[0]["extra"] == {"n": 1}
    with pytest.raises(ValueError):
        store.record_run(source="chat", api_key=KEY)
    with pytest.raises(ValueError):
        store.runs(**{"1=1; DROP TABLE runs; --": 1})


# ---- exports ---------------------------------------------------------------------------------
def sample_conversation(store):
    cid = store.create_conversation()
    store.add_message(cid, "user", "What is streaming?")
    store.add_message(cid, "assistant", "Tokens arrive as they are made.",
                      summary="TTFT 180 ms · 74 tok/s · 312 tokens · 4.3 s", metrics={"chunks": 312})
    store.add_message(cid, "user", "Longer please")
    store.add_message(cid, "assistant", "Well, first", state="stopped")
    store.add_message(cid, "user", "Again")
    store.add_message(cid, "assistant", "", state="failed", error="Server unreachable: start it.")
    return store.get_conversation(cid), store.conversation_messages(cid)


def test_markdown_export(store):
    conv, msgs = sample_conversation(store)
    md = export.conversation_markdown(conv, msgs)
    assert md.startswith("# What is streaming?\n")
    assert md.count("## User") == 3 and md.count("## Assistant") == 3
    for text in ("Tokens arrive as they are made.", "Well, first", "Longer please"):
        assert text in md
    assert "*TTFT 180 ms · 74 tok/s · 312 tokens · 4.3 s*" in md
    assert "Stopped" in md
    assert "Failed: Server unreachable: start it." in md


def test_json_export(store):
    conv, msgs = sample_conversation(store)
    data = json.loads(export.conversation_json(conv, msgs))
    assert data["id"] == conv["id"] and data["title"] == "What is streaming?"
    assert [m["state"] for m in data["messages"]] == ["done", "done", "done", "stopped", "done", "failed"]
    assert data["messages"][1]["metrics"] == {"chunks": 312}
    assert data["messages"][5]["error"] == "Server unreachable: start it."


def test_runs_exports(store):
    store.record_run(**run_fields_from_generation(finished_generation(), source="chat"))
    store.record_run(source="cli", error="=HYPERLINK(\"x\")")
    runs = store.runs()
    rows = list(csv.DictReader(io.StringIO(export.runs_csv(runs))))
    assert len(rows) == 2 and rows[1]["model"] == "m" and rows[1]["output_tokens"] == "3"
    assert json.loads(rows[1]["extra"])["finish_reason"] == "stop"
    assert rows[0]["error"].startswith("'=")
    assert json.loads(export.runs_json(runs)) == runs
    assert export.runs_csv([]) == ""


def test_conversations_are_listed_per_owner(store):
    mine = store.create_conversation("mine", owner="a")
    store.create_conversation("theirs", owner="b")
    assert [c["id"] for c in store.list_conversations(owner="a")] == [mine]
    assert len(store.list_conversations()) == 2
    assert store.get_conversation(mine)["owner"] == "a"


def test_messages_form_a_tree_and_the_path_follows_the_chosen_branch(store):
    cid = store.create_conversation()
    q = store.add_message(cid, "user", "question")
    a1 = store.add_message(cid, "assistant", "first answer")
    a2 = store.add_message(cid, "assistant", "second answer", parent_id=q)   # regenerate
    follow = store.add_message(cid, "user", "follow-up on the second")
    path = store.conversation_path(cid)
    assert [m["id"] for m in path] == [q, a2, follow]
    assert path[1]["siblings"] == [a1, a2] and path[1]["version"] == 2
    store.switch_branch(cid, a1)
    assert [m["id"] for m in store.conversation_path(cid)] == [q, a1]
    store.switch_branch(cid, a2)     # back: the newest descendant of a2 is shown again
    assert [m["id"] for m in store.conversation_path(cid)][-1] == follow
    assert len(store.conversation_messages(cid)) == 4   # every branch is kept (and exported)


def test_flat_conversations_from_before_the_tree_become_a_chain(open_backend_store):
    store = open_backend_store()
    cid = store.create_conversation()
    ids = [store.add_message(cid, role, text) for role, text in
           (("user", "a"), ("assistant", "b"), ("user", "c"))]
    with store._connect(write=True) as conn:   # as an old database had them
        conn.execute("UPDATE messages SET parent_id = NULL")
        conn.execute("ALTER TABLE conversations DROP COLUMN leaf_id")
        conn.set_schema_version(2)
    store = open_backend_store()
    assert [m["id"] for m in store.conversation_path(cid)] == ids


@pytest.mark.sqlite_only   # files, WAL, corruption: SQLite's own
def test_data_folder_and_database_files_are_private(tmp_path):
    """Issue 10 item 4: other users of the machine cannot read the chats."""
    data = tmp_path / "private"
    store = Store(data)
    try:
        store.create_conversation()
        assert data.stat().st_mode & 0o777 == 0o700
        for path in data.iterdir():
            assert path.stat().st_mode & 0o077 == 0, (path.name, oct(path.stat().st_mode))
    finally:
        store.close()


@pytest.mark.sqlite_only   # files, WAL, corruption: SQLite's own
def test_an_open_folder_from_an_older_version_is_tightened(tmp_path):
    data = tmp_path / "old"
    data.mkdir(mode=0o755)
    (data / "streamchat.db").touch(mode=0o644)
    Store(data).close()
    assert data.stat().st_mode & 0o777 == 0o700
    assert (data / "streamchat.db").stat().st_mode & 0o777 == 0o600


def test_visible_ttft_is_kept_once_with_the_reply_and_its_newest_run(store):
    cid = store.create_conversation()
    mid = store.add_message(cid, "assistant", "hi", metrics={"ttft_s": 0.1})
    g = finished_generation()
    older = store.record_run(**run_fields_from_generation(g, source="chat", conversation_id=cid,
                                                           message_id=mid))
    newer = store.record_run(**run_fields_from_generation(g, source="chat", conversation_id=cid,
                                                           message_id=mid))
    assert store.record_visible_ttft(mid, 0.412)
    assert not store.record_visible_ttft(mid, 9.0)          # reported once: the first one stays
    assert not store.record_visible_ttft("no-such-message", 1.0)
    assert store.get_message(mid)["metrics"] == {"ttft_s": 0.1,
                                               "visible_ttft": {"value": 0.412, "source": "browser"}}
    by_id = {r["id"]: r["visible_ttft_s"] for r in store.runs()}
    assert by_id == {older: None, newer: 0.412}
    assert store.record_run_visible_ttft(older, 1.5) and not store.record_run_visible_ttft(older, 2.0)
    assert store.runs(id=older)[0]["visible_ttft_s"] == 1.5
