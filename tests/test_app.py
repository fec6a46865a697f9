"""Page logic with Streamlit's AppTest, against the scripted server (no browser)."""
import pytest
from streamlit.testing.v1 import AppTest

from streamchat.presets import EXAMPLE_PROMPTS
from streamchat.store import Store
from streamchat.tokens import count_text_tokens
from tests.conftest import PAGE_SCRIPT
from tests.harness.scripted_server import Script, ScriptedServer


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(Script(tokens=12, rate=0, token_text="w{i} ")) as srv:
        yield srv


@pytest.fixture
def app(server, open_page):
    server.reset()
    server.set_script(Script(tokens=12, rate=0, token_text="w{i} "))
    return open_page(server)


def assistant_texts(at):
    return [" ".join(md.value for md in m.markdown) for m in at.chat_message if m.name == "assistant"]


def captions(at):
    return [c.value for m in at.chat_message for c in m.caption]


def test_empty_chat_offers_example_prompts_that_start_a_reply(app, server):
    example = next(b for b in app.button if b.label == EXAMPLE_PROMPTS[0])
    example.click().run()
    assert not app.exception
    assert server.requests()[-1].body["messages"][-1]["content"] == EXAMPLE_PROMPTS[0]
    assert assistant_texts(app)[-1].startswith("w0 w1")
    assert any("12 tokens" in c for c in captions(app))


def test_reply_streams_saves_and_shows_summary_and_metrics(app, server, tmp_path):
    app.chat_input[0].set_value("hello").run()
    assert not app.exception
    assert "w11" in assistant_texts(app)[-1]
    labels = {m.label: m.value for m in app.metric}
    assert set(labels) >= {"TTFT", "Decode tok/s", "Output tokens", "E2E"}
    assert labels["Output tokens"] == "12"
    body = server.requests()[-1].body
    assert body["stream"] is True and body["model"] == "scripted"
    assert body["messages"][0]["role"] == "system"
    store = Store(tmp_path / "data")
    conv = store.list_conversations()[0]
    assert conv["title"] == "hello"
    states = [(m["role"], m["state"]) for m in store.conversation_messages(conv["id"])]
    assert states == [("user", "done"), ("assistant", "done")]
    assert store.runs()[0]["output_tokens"] == 12


def test_stream_toggle_off_sends_a_non_stream_request_and_ttft_equals_e2e(app, server):
    app.toggle(key="opt_stream").set_value(False).run()
    app.chat_input[0].set_value("whole please").run()
    assert not app.exception
    assert server.requests()[-1].body.get("stream") in (False, None)
    labels = {m.label: m.value for m in app.metric}
    assert labels["TTFT"] == labels["E2E"]
    assert "w11" in assistant_texts(app)[-1]


def test_history_is_sent_and_reload_keeps_the_conversation(app, server, tmp_path):
    app.chat_input[0].set_value("first").run()
    app.chat_input[0].set_value("second").run()
    sent = [m["content"] for m in server.requests()[-1].body["messages"]]
    assert sent[1:] == ["first", "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 ", "second"]
    def reload(**params):
        at = AppTest.from_file(app._script_path, default_timeout=30)
        for name, value in params.items():
            at.query_params[name] = value
        at.run()
        return [m.markdown[0].value for m in at.chat_message if m.name == "user"]

    url = {name: value[0] if isinstance(value, list) else value
           for name, value in app.query_params.items()}
    assert set(url) == {"c"}                               # the URL never carries an identity
    assert reload(**url) == ["first", "second"]           # a reload keeps the whole URL



def test_errors_keep_the_user_message_and_show_a_clear_message(app, server, tmp_path):
    server.queue(Script(status=401))
    app.chat_input[0].set_value("will fail").run()
    assert not app.exception
    errors = [e.value for m in app.chat_message for e in m.error]
    assert any("API key" in e for e in errors)
    assert all("sk-apptest-secret" not in e for e in errors)
    users = [m.markdown[0].value for m in app.chat_message if m.name == "user"]
    assert users == ["will fail"]
    app.chat_input[0].set_value("works now").run()   # and the next request works
    assert "w11" in assistant_texts(app)[-1]


def test_partial_reply_kept_when_connection_drops(app, server):
    server.queue(Script(tokens=12, rate=0, token_text="w{i} ", drop_after=4))
    app.chat_input[0].set_value("drop").run()
    assert assistant_texts(app)[-1].startswith("w0 w1 w2 w3")
    assert any("partial reply is kept" in e.value for m in app.chat_message for e in m.error)


def test_whitespace_message_is_not_sent(app, server):
    before = len(server.requests())
    app.chat_input[0].set_value("   \n ").run()
    assert not app.exception
    assert len(server.requests()) == before


def test_nul_characters_are_dropped(app, server):
    app.chat_input[0].set_value("a\x00b c").run()
    assert not app.exception
    assert server.requests()[-1].body["messages"][-1]["content"] == "ab c"


def test_invalid_base_url_gets_a_message(app, server):
    app.radio(key="opt_provider").set_value("remote").run()
    app.text_input(key="opt_base_url").set_value("not a url").run()
    assert not app.exception
    assert any("not a valid base URL" in e.value for e in app.sidebar.error)
    app.chat_input[0].set_value("hi").run()
    assert not app.exception
    assert any("not a valid base URL" in e.value for m in app.chat_message for e in m.error)


def test_new_chat_switch_and_delete(app, server, tmp_path):
    app.chat_input[0].set_value("one").run()
    app.button(key="conv_new").click().run()
    assert not [m for m in app.chat_message]
    app.chat_input[0].set_value("two").run()
    store = Store(tmp_path / "data")
    titles = [c["title"] for c in store.list_conversations()]
    assert titles == ["two", "one"]
    one = store.list_conversations()[1]["id"]
    app.button(key=f"conv_{one}").click().run()
    assert [m.markdown[0].value for m in app.chat_message if m.name == "user"] == ["one"]
    app.button(key="conv_delete").click().run()
    assert [c["title"] for c in store.list_conversations()] == ["two"]


def test_model_output_html_is_not_rendered_as_html(app, server):
    server.queue(Script(text='<img src=x onerror="window.pwned=1"> hi'))
    app.chat_input[0].set_value("xss").run()
    md = [md for m in app.chat_message if m.name == "assistant" for md in m.markdown]
    assert md and all(not md_el.proto.allow_html for md_el in md)


def test_without_server_usage_tokens_are_counted_locally_and_labelled(app, server, tmp_path):
    server.queue(Script(tokens=12, rate=0, token_text="w{i} ", send_usage=False))
    app.chat_input[0].set_value("count yourself").run()
    run = Store(tmp_path / "data").runs()[0]
    assert run["output_tokens_source"] == "approximate"   # tiktoken cl100k for an unknown model
    expected = count_text_tokens("".join(f"w{i} " for i in range(12)), "scripted").n
    assert run["output_tokens"] == expected != 12         # counted, not the chunk estimate


def test_presenter_view_shows_metrics_large_in_the_main_area_and_keeps_settings(app, server):
    app.number_input(key="opt_max_tokens").set_value(77).run()
    app.toggle(key="presenter").set_value(True).run()
    app.chat_input[0].set_value("demo").run()
    assert not app.exception
    assert {m.label for m in app.main.metric} >= {"TTFT", "Decode tok/s", "Output tokens", "E2E"}
    assert not list(app.sidebar.metric)
    assert server.requests()[-1].body["max_tokens"] == 77   # hidden settings still apply


def test_retry_resends_the_last_user_message_and_keeps_the_failed_reply(app, server, tmp_path):
    server.queue(Script(status=503))
    app.chat_input[0].set_value("try me").run()
    retry = next(b for b in app.button if b.label == "🔁 Retry")
    retry.click().run()
    assert not app.exception
    assert [r.body["messages"][-1]["content"] for r in server.requests()] == ["try me", "try me"]
    conv = Store(tmp_path / "data").list_conversations()[0]
    states = [(m["role"], m["state"]) for m in Store(tmp_path / "data").conversation_messages(conv["id"])]
    assert states == [("user", "done"), ("assistant", "failed"), ("assistant", "done")]


def test_context_overflow_offers_trim_and_retry_leaving_the_oldest_out(app, server):
    for text in ("one", "two", "three"):
        app.chat_input[0].set_value(text).run()
    server.queue(Script(status=400, error_body={"error": {
        "message": "This model's maximum context length is 4096 tokens"}}))
    app.chat_input[0].set_value("four").run()
    assert any("Trim the oldest" in e.value for e in app.error)
    trim = next(b for b in app.button if b.label.startswith("✂️ Trim"))
    trim.click().run()
    assert not app.exception
    sent = [m["content"] for m in server.requests()[-1].body["messages"] if m["role"] != "system"]
    assert sent[-1] == "four" and "one" not in sent and len(sent) < 7
    assert any("oldest messages are left out" in c.value for c in app.caption)


def test_a_corrupt_database_is_moved_aside_with_a_message(server, open_page, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "streamchat.db").write_bytes(b"this is not a database" * 100)
    at = open_page(server)
    assert any("moved aside" in w.value for w in at.warning)
    at.chat_input[0].set_value("still works").run()
    assert not at.exception and "w11" in assistant_texts(at)[-1]
    assert list(data.glob("streamchat.db.corrupt-*"))


def test_an_unwritable_data_folder_gets_a_message(server, open_page, tmp_path, monkeypatch):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    monkeypatch.setenv("STREAMCHAT_DATA_DIR", str(blocker / "data"))
    at = AppTest.from_file(str(PAGE_SCRIPT))
    at.run()
    assert not at.exception
    assert any("Cannot use the data folder" in e.value for e in at.error)
