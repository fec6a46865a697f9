"""Thinking models in the chat (issue 11), with AppTest against the scripted server."""
from __future__ import annotations

import pytest

from streamchat.store import Store
from tests.harness.scripted_server import Script, ScriptedServer

THINKS = dict(reasoning_text="Let me think about the secret plan first. ", tokens=5, rate=0,
              token_text="ans{i} ")


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(Script(tokens=3, rate=0)) as srv:
        yield srv


@pytest.fixture
def app(server, open_page):
    server.reset()
    return open_page(server)


def test_a_rule_watching_the_thinking_stops_a_reply_while_it_thinks(app, server, tmp_path):
    app.text_area(key="rule_phrases").set_value("secret").run()
    server.queue(Script(**THINKS))
    app.chat_input[0].set_value("plain rule").run()            # answer only: not stopped
    assert not app.exception
    assert server.requests()[-1].outcome == "completed"
    app.checkbox(key="rule_phrases_thinking").check().run()
    # Held after the thinking until the client goes: only a rule that fired lets it end soon.
    server.queue(Script(**THINKS, stall_after=8, stall_timeout=30))
    app.chat_input[0].set_value("watching rule").run()
    assert not app.exception
    assert server.requests()[-1].outcome == "disconnected"        # stopped during the thinking
    store = Store(tmp_path / "data")
    reply = store.conversation_path(store.list_conversations()[0]["id"])[-1]
    assert reply["state"] == "stopped" and reply["content"] == ""
    assert "secret" in reply["reasoning"]


def test_runs_page_has_the_thinking_figures_and_filter(server, open_page):
    chat = open_page(server)
    server.queue(Script(reasoning_tokens=6, tokens=4, rate=0, usage_reasoning=True))
    chat.chat_input[0].set_value("think first").run()
    server.queue(Script(tokens=4, rate=0))
    chat.chat_input[0].set_value("no thinking").run()
    runs = open_page(server, "runs")
    assert not runs.exception
    table = runs.dataframe[0].value
    assert {"answer (s)", "thinking (s)", "thinking tokens"} <= set(table.columns)
    assert sorted(table["thinking tokens"].fillna(0).tolist()) == [0, 6]
    runs.multiselect(key="runs_thinking").select("with thinking").run()
    assert runs.dataframe[0].value["thinking tokens"].tolist() == [6]


def test_compare_draws_the_thinking_beside_the_answer(server, open_page):
    page = open_page(server, "compare")
    server.set_script(Script(reasoning_tokens=6, tokens=8, rate=0, usage_reasoning=True))
    page.button(key="cmp_run").click().run()
    page.run()
    assert not page.exception
    assert any("thinking" in s.value for s in [*page.success, *page.warning]), \
        [s.value for s in [*page.success, *page.warning]]
    chart = page.get("vega_lite_chart")[0].proto.spec
    assert '"thinking"' in chart and "strokeDash" in chart


def test_a_saved_reply_shows_its_thinking_folded_after_a_reload(server, open_page):
    from streamlit.testing.v1 import AppTest
    chat = open_page(server)
    server.queue(Script(reasoning_tokens=6, tokens=4, rate=0, usage_reasoning=True))
    chat.chat_input[0].set_value("think first").run()
    assert not chat.exception
    url = {name: value[0] if isinstance(value, list) else value
           for name, value in chat.query_params.items()}
    again = AppTest.from_file(chat._script_path, default_timeout=30)
    for name, value in url.items():
        again.query_params[name] = value
    again.run()
    assert not again.exception
    folded = [e for e in again.expander if e.label.startswith("💭 Thought for")]
    assert len(folded) == 1 and "6 tokens" in folded[0].label
    assert "think0" in " ".join(m.value for m in folded[0].markdown)
    answer = [m for m in again.chat_message if m.name == "assistant"][0]
    assert "think0" not in " ".join(m.value for m in answer.markdown if m not in folded[0].markdown)
