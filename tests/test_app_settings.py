"""Sidebar settings with AppTest (issue 9 items 4, 7, 13): stop rules parsed one by one, the
defaults of the chosen provider, the embedded model's real thread count, the chat-only group."""
import time

import pytest

from streamchat import local_server, presets, stop_rules
from streamchat.config import LOCAL, REMOTE
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


def options(at):
    return at.session_state["_page_context"].options


def errors(at):
    return [e.value for e in at.error]


def active_caption(at):
    return next((c.value for c in at.sidebar.caption if c.value.startswith("Active:")), None)


def test_an_invalid_regex_is_reported_and_skipped_and_max_time_still_stops_the_reply(app, server):
    app.text_input(key="rule_regex").set_value("(unclosed")
    app.number_input(key="rule_max_time").set_value(1.0).run()
    assert not app.exception
    kinds = [r.kind for r in options(app).stop_rules]
    assert kinds == [stop_rules.MAX_TIME]
    assert active_caption(app) == "Active: max time 1 s"
    assert any("Regular expression" in e and "(unclosed" in e for e in errors(app)), errors(app)

    server.queue(Script(tokens=200, rate=20, token_text="w{i} "))   # 10 s unless stopped
    t0 = time.perf_counter()
    app.chat_input[0].set_value("go on and on").run()
    assert not app.exception
    assert time.perf_counter() - t0 < 6
    assert any("max time 1 s" in c.value for m in app.chat_message for c in m.caption)


def test_valid_rules_stay_active_beside_an_invalid_one(app):
    app.text_area(key="rule_phrases").set_value("goodbye")
    app.text_input(key="rule_regex").set_value("(a+)+")        # nested repetition: rejected
    app.number_input(key="rule_max_tokens").set_value(50).run()
    assert not app.exception
    assert len(errors(app)) == 1 and "(a+)+" in errors(app)[0]
    assert [r.kind for r in options(app).stop_rules] == [stop_rules.PHRASES, stop_rules.MAX_TOKENS]
    assert active_caption(app) == 'Active: phrase "goodbye"; max 50 tokens'
    app.text_input(key="rule_regex").set_value(r"\bbye\b").run()   # fixed: no error, three rules
    assert not errors(app) and len(options(app).stop_rules) == 3


def test_defaults_follow_the_chosen_provider_and_the_caption_states_the_real_threads(app, server):
    assert options(app).provider == REMOTE
    assert app.slider(key="opt_temperature").value == presets.default_params(REMOTE).temperature
    assert app.number_input(key="opt_max_tokens").value == presets.default_params(REMOTE).max_tokens
    assert not [s for s in app.slider if s.key == "opt_repeat_penalty"]   # llama.cpp only

    app.radio(key="opt_provider").set_value(LOCAL).run()
    assert not app.exception
    local = presets.default_params(LOCAL)
    assert app.slider(key="opt_temperature").value == local.temperature
    assert app.number_input(key="opt_max_tokens").value == local.max_tokens
    assert app.slider(key="opt_repeat_penalty").value == local.repeat_penalty
    params = options(app).params
    assert (params.repeat_penalty, params.dry_multiplier, params.repeat_last_n) == \
        (local.repeat_penalty, local.dry_multiplier, local.repeat_last_n)
    threads = local_server.default_threads()
    expected = f"{threads} CPU thread{'' if threads == 1 else 's'}"
    caption = next(c.value for c in app.sidebar.caption if "xllamacpp" in c.value)
    assert caption.endswith(expected) and "2 CPU threads" not in caption.replace(expected, "")
    assert options(app).model_label.startswith("SmolLM2-135M-Instruct")

    app.radio(key="opt_provider").set_value(REMOTE).run()
    assert app.slider(key="opt_temperature").value == presets.default_params(REMOTE).temperature
    assert options(app).params.repeat_penalty is None


def test_a_value_the_user_sets_is_kept_and_sent(app, server):
    app.slider(key="opt_temperature").set_value(1.2).run()
    app.number_input(key="opt_max_tokens").set_value(99).run()
    app.chat_input[0].set_value("hello").run()
    assert not app.exception
    assert app.slider(key="opt_temperature").value == 1.2
    body = server.requests()[-1].body
    assert body["temperature"] == 1.2 and body["max_tokens"] == 99
    assert "repeat_penalty" not in body and "dry_multiplier" not in body   # remote endpoint


def _find_block(node, key):
    if getattr(node, "key", None) == key and hasattr(node, "children"):
        return node
    for child in getattr(node, "children", {}).values():
        found = _find_block(child, key)
        if found is not None:
            return found
    return None


def _descendants(node):
    for child in getattr(node, "children", {}).values():
        yield child
        yield from _descendants(child)


def test_stream_toggle_and_stop_rules_sit_in_the_chat_only_container(app):
    block = _find_block(app.sidebar, "sidebar-chat-only")
    assert block is not None
    inside = list(_descendants(block))
    assert any(getattr(n, "key", None) == "opt_stream" for n in inside)
    assert any(getattr(n, "label", None) == "Stop rules" for n in inside)
    assert {"rule_phrases", "rule_regex", "rule_max_time", "rule_max_tokens", "rule_hide"} <= \
        {getattr(n, "key", None) for n in inside}
    assert not any(getattr(n, "key", None) == "opt_temperature" for n in inside)
