"""Issue 10 items 5 and 12: credentials in OPENAI_BASE_URL never reach the page, and a chat with
no usable model says the real cause."""
from __future__ import annotations

import socket

from streamlit.testing.v1 import AppTest

from tests.conftest import PAGE_SCRIPT
from tests.harness.scripted_server import Script, ScriptedServer


def everything_shown(at) -> str:
    parts = [str(w.value) for w in at.text_input] + [e.value for e in at.error]
    parts += [w.value for w in at.warning] + [c.value for c in at.caption]
    parts += [m.value for m in at.markdown] + [str(s.value) for s in at.selectbox]
    return "\n".join(parts)


def test_url_credentials_are_used_but_never_shown(open_page, monkeypatch):
    with ScriptedServer(Script(tokens=3, rate=0, token_text="ok{i} ")) as srv:
        at = open_page(srv)
        with_password = srv.base_url.replace("http://", "http://alice:S3CRETPASS@")
        monkeypatch.setenv("OPENAI_BASE_URL", with_password)
        at = AppTest.from_file(str(PAGE_SCRIPT), default_timeout=30)
        at.run()
        at.radio(key="opt_provider").set_value("remote").run()
        at.chat_input[0].set_value("hello").run()
        assert not at.exception
        assert at.text_input(key="opt_base_url").value == srv.base_url
        assert "S3CRETPASS" not in everything_shown(at)
        assert all("S3CRETPASS" not in w.id for w in at.selectbox)   # widget ids reach the page
        assert srv.requests()[-1].headers.get("authorization", "").startswith("Basic ")


def test_no_model_says_the_real_cause(open_page, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    with ScriptedServer(Script()) as srv:
        open_page(srv)
    monkeypatch.delenv("OPENAI_MODEL")
    monkeypatch.setenv("OPENAI_BASE_URL", dead)
    at = AppTest.from_file(str(PAGE_SCRIPT), default_timeout=30)
    at.run()
    at.chat_input[0].set_value("anyone?").run()
    assert not at.exception
    errors = [e.value for m in at.chat_message for e in m.error]
    assert any(f"Cannot reach {dead}" in e and "choose a model" in e for e in errors), errors
