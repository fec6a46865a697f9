"""pages/shared.py in AppTest: a share link shows the conversation read-only with ▶ Replay; a
revoked or unknown token gets a clear message. (Wiring into app.py is separate.)"""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from streamchat import recording
from streamchat.store import Store
from tests.test_export_page import paper_recording

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "shared.py")


@pytest.fixture
def shared(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STREAMCHAT_DATA_DIR", str(tmp_path / "data"))
    store = Store(tmp_path / "data")
    cid = store.create_conversation("Demo chat", owner="alice-session-token")
    store.add_message(cid, "user", "Count to 200")
    mid = store.add_message(cid, "assistant", "w0 w1 w2", summary="TTFT 500 ms")
    rec = paper_recording("w0 ")
    rec.chunks = rec.chunks[:4]   # short: a replay of 3 tokens
    rec.text, rec.end = "w0 w1 w2 ", rec.chunks[-1].t
    store.save_recording(recording.encode(rec), message_id=mid)
    token = store.create_share("alice-session-token", conversation_id=cid)
    yield store, token, mid
    store.close()


def open_shared(token):
    at = AppTest.from_file(PAGE, default_timeout=30)
    if token is not None:
        at.query_params["share"] = token
    at.run()
    assert not at.exception
    return at


def test_a_share_link_shows_the_conversation_read_only_with_replay(shared):
    store, token, mid = shared
    at = open_shared(token)
    assert at.title[0].value == "Demo chat"
    assert len(at.chat_input) == 0 and len(at.text_input) == 0 and len(at.text_area) == 0
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    assert "alice-session-token" not in str(at)
    at.button(key=f"replay-start-msg-{mid}").click().run()
    assert not at.exception
    assert any("replay of 2025-01-02 09:30 UTC" in c.value for c in at.caption)


@pytest.mark.parametrize("state, words", [("revoked", "revoked"), ("unknown", "does not work"),
                                           ("missing", "does not work")])
def test_revoked_and_unknown_links_say_so(shared, state, words):
    store, token, _ = shared
    if state == "revoked":
        store.revoke_share(token, "alice-session-token")
    at = open_shared({"revoked": token, "unknown": "not-a-token", "missing": None}[state])
    assert words in at.error[0].value
    assert len(at.chat_message) == 0
