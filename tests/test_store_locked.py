"""A database write-locked by another program loses nothing (issue 10 item 7): the store waits it
out with backoff beyond SQLite's busy timeout, a finished reply is kept in memory and saved once
the lock is gone (its Runs row too), and the user is told while it is not saved.
On PostgreSQL the lock is another replica's write transaction (the store's advisory write lock)."""
from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from streamchat import replies
from streamchat.generation import Endpoint, GenerationRequest
from streamchat.store import DatabaseBusy, StoreUnavailable
from tests.harness.scripted_server import Script, ScriptedServer


@pytest.fixture
def store(backend_store):
    return backend_store


class Locker:
    """Another connection holding the write lock until released."""

    def __init__(self, path):
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self):
        self.conn.execute("COMMIT")
        self.conn.close()


class PostgresLocker(Locker):
    """Another replica in the middle of a write: its transaction holds the store's write lock."""

    def __init__(self, url):
        import psycopg

        from streamchat.database import WRITE_LOCK
        self.conn = psycopg.connect(url)
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))

    def release(self):
        self.conn.commit()
        self.conn.close()


@pytest.fixture
def locker(store, backend, request):
    """locker() -> a Locker holding the write lock of the store's database."""
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
        return lambda: PostgresLocker(url)
    return lambda: Locker(store.path)


def wait_until(check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.mark.sqlite_only   # SQLite's busy timeout; PostgreSQL waits for the lock itself
def test_a_write_outlasts_a_lock_longer_than_the_busy_timeout(store, monkeypatch):
    monkeypatch.setattr("streamchat.database.BUSY_TIMEOUT_S", 0.2)
    cid = store.create_conversation()
    lock = Locker(store.path)
    done = []
    writer = threading.Thread(target=lambda: done.append(store.add_message(cid, "user", "hi")))
    writer.start()
    wait_until(lambda: store.lock_waits >= 2)        # past the busy timeout, still trying
    lock.release()
    writer.join(10)
    assert done and store.get_message(done[0])["content"] == "hi"


def test_a_write_gives_up_with_a_clear_error_after_its_patience(store, locker, monkeypatch):
    monkeypatch.setattr("streamchat.database.BUSY_TIMEOUT_S", 0.05)
    store.write_patience = 0.3
    cid = store.create_conversation()
    lock = locker()
    try:
        with pytest.raises(DatabaseBusy, match="locked") as caught:
            store.add_message(cid, "user", "hi")
        assert isinstance(caught.value, StoreUnavailable)     # what the reply saver retries on
        assert store.get_conversation(cid) is not None       # reads do not wait for the writer
    finally:
        lock.release()
    assert store.add_message(cid, "user", "hi")


def test_a_reply_finishing_under_a_lock_is_saved_whole_when_it_lifts(store, locker, runner, monkeypatch):
    monkeypatch.setattr("streamchat.database.BUSY_TIMEOUT_S", 0.05)
    monkeypatch.setattr(replies, "SAVE_RETRY_S", 0.05)
    store.write_patience = 0.2
    cid = store.create_conversation()
    store.add_message(cid, "user", "go")
    # Held after 30 tokens until the client goes: the reply ends (Stop) while the lock is held.
    held = Script(tokens=100, rate=0, token_text="z{i} ", stall_after=30, stall_timeout=60)
    with ScriptedServer(held) as srv:
        endpoint = Endpoint("remote", srv.base_url, "scripted", "sk-test-key-123456")
        reply = replies.start_reply(runner, store, cid, GenerationRequest(
            ({"role": "user", "content": "go"},)), endpoint)
        wait_until(lambda: reply.text.endswith("z29 "))
        lock = locker()
        try:
            reply.generation.stop()
            assert reply.generation.wait(10)
            wait_until(lambda: reply.save_attempts >= 2)
            assert not reply.saved.is_set() and "Not saved yet" in reply.save_problem
            assert reply.text.endswith("z29 ")              # kept in memory meanwhile
        finally:
            lock.release()
        assert reply.saved.wait(10)
    assert reply.save_problem is None
    saved = store.get_message(reply.message_id)
    assert (saved["state"], saved["content"]) == ("stopped", reply.text)
    assert [r["message_id"] for r in store.runs()] == [reply.message_id]


def test_a_message_sent_under_a_lock_is_kept_on_screen_to_send_again(open_page, tmp_path,
                                                                     monkeypatch):
    from components.context import shared_store
    monkeypatch.setattr("streamchat.database.BUSY_TIMEOUT_S", 0.05)
    with ScriptedServer(Script(tokens=3, rate=0, token_text="ok{i} ")) as srv:
        at = open_page(srv)
        app_store = shared_store(str(tmp_path / "data"))
        app_store.write_patience = 0.2
        lock = Locker(app_store.path)
        try:
            at.chat_input[0].set_value("please keep me").run()
        finally:
            lock.release()
        assert not at.exception
        assert any("could not be saved" in e.value for e in at.error)
        assert any(c.value == "please keep me" for c in at.code)
        next(b for b in at.button if b.label == "Send again").click().run()
        assert not at.exception
        assert [m.markdown[0].value for m in at.chat_message if m.name == "user"] == ["please keep me"]
        assert not any("could not be saved" in e.value for e in at.error)
