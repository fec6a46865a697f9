"""A lone surrogate ("\\ud800", valid JSON, not valid UTF-8) in model output or user input
(issue 10 item 9): the reply finishes and renders, the input is sent cleaned and the user told."""
from __future__ import annotations

from streamchat.generation import DONE, Endpoint, GenerationRequest
from streamchat.inputs import clean_user_message
from tests.harness.scripted_server import Script, ScriptedServer

BROKEN = "before \ud800 after"


def test_a_lone_surrogate_in_a_chunk_becomes_a_replacement_character(runner):
    with ScriptedServer(Script(text=BROKEN)) as srv:
        g = runner.start(GenerationRequest(({"role": "user", "content": "hi"},)),
                         Endpoint("remote", srv.base_url, "scripted"))
        assert g.wait(10)
    assert g.state == DONE, g.error
    assert g.text == "before \ufffd after"
    g.text.encode("utf-8")


def test_the_chat_renders_such_a_reply_and_says_when_input_was_cleaned(open_page):
    with ScriptedServer(Script(text=BROKEN)) as srv:
        at = open_page(srv)
        # (AppTest cannot carry a lone surrogate to the app; a NUL is cleaned the same way.)
        at.chat_input[0].set_value("odd \x00input").run()
        assert not at.exception
        replies = [m.markdown[0].value for m in at.chat_message if m.name == "assistant"]
        assert replies[-1].startswith("before \ufffd after")
        assert srv.requests()[-1].body["messages"][-1]["content"] == "odd input"
        assert any("could not be read" in t.value for t in at.toast)


def test_clean_user_message_says_what_it_changed():
    assert clean_user_message("plain") == ("plain", None)
    text, problem = clean_user_message("a\x00b")
    assert text == "ab" and "could not be read" in problem
