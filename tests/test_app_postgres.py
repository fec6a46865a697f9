"""The app on PostgreSQL (STREAMCHAT_DATABASE_URL): a chat is kept in the database, not in the
data folder; a database that cannot be reached gets a message without the URL's password."""
from __future__ import annotations

import pytest

from streamchat.store import store_at
from tests.harness.scripted_server import Script, ScriptedServer


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(Script(tokens=3, rate=0, token_text="w{i} ")) as srv:
        yield srv


def test_a_chat_is_kept_in_postgresql(server, open_page, postgres_url, tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMCHAT_DATABASE_URL", postgres_url)
    at = open_page(server)
    at.chat_input[0].set_value("kept in postgres").run()
    assert not at.exception and not at.error
    assert any("w2" in m.markdown[0].value for m in at.chat_message if m.name == "assistant")
    assert not (tmp_path / "data" / "streamchat.db").exists()
    store = store_at(tmp_path / "unused", postgres_url)
    try:
        [conv] = store.list_conversations()
        messages = store.conversation_messages(conv["id"])
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[0]["content"] == "kept in postgres"
        assert [r["message_id"] for r in store.runs()] == [messages[1]["id"]]
    finally:
        store.close()


def test_a_database_that_cannot_be_reached_is_named_without_its_password(server, open_page, monkeypatch):
    secret = "n0t-f0r-the-page-4711"
    monkeypatch.setenv("STREAMCHAT_DATABASE_URL", f"postgresql://someone:{secret}@127.0.0.1:1/chats")
    at = open_page(server)
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("Cannot use the database" in e and "STREAMCHAT_DATABASE_URL" in e for e in errors), errors
    page = repr([*errors, *(w.value for w in at.warning), *(m.value for m in at.markdown)])
    assert secret not in page


def test_a_database_lost_while_the_app_runs_gets_a_message_not_a_traceback(server, open_page, postgres_url,
                                                                          monkeypatch):
    import psycopg

    monkeypatch.setenv("STREAMCHAT_DATABASE_URL", postgres_url)
    at = open_page(server)
    with psycopg.connect(postgres_url, autocommit=True) as admin:   # its tables gone
        admin.execute("DROP TABLE messages, conversations, runs, recordings, shares CASCADE")
    at.chat_input[0].set_value("hello?").run()
    assert not at.exception
    assert any("cannot be used right now" in e.value and "PostgreSQL" in e.value for e in at.error), \
        [e.value for e in at.error]
