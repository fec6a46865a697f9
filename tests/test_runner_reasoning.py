"""The runner with a reasoning model (scripted server): every form of thinking, stream and
non-stream, figures within 5 % of the server's schedule, Stop and stop rules while thinking,
timeouts, and the thinking saved and restored."""
import time

import pytest

from streamchat import metrics, replies
from streamchat.generation import DONE, FAILED, STOPPED, THINKING, Endpoint, GenerationRequest, Timeouts
from streamchat.stop_rules import make_limit_rule, parse_phrases
from streamchat.store import Store
from tests.harness.bounds import PROMPTLY_S, follows
from tests.harness.scripted_server import REASONING_FORMS, Script, ScriptedServer

USER = ({"role": "user", "content": "What is 2 + 2?"},)
THINK_WORDS = "Two and two. Adding them gives four, I think. "
ANSWER_WORDS = "The answer is 4."


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(Script()) as srv:
        yield srv


@pytest.fixture(autouse=True)
def fresh(server):
    server.reset()
    server.set_script(Script())


def endpoint(server):
    return Endpoint("remote", server.base_url, "scripted", "sk-test-secret-key")


def start(runner, server, script, *, stream=True, timeouts=Timeouts(), rules=()):
    server.queue(script)
    return runner.start(GenerationRequest(USER, stream=stream, timeouts=timeouts,
                                          stop_rules=tuple(rules)), endpoint(server))


def run(runner, server, script, *, wait=20, **kwargs):
    g = start(runner, server, script, **kwargs)
    assert g.wait(wait), f"generation still {g.state}"
    return g


def wait_until(predicate, timeout=10.0, interval=0.002):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    raise AssertionError("condition not met in time")


# ---- the issue's numbers ----------------------------------------------------------------------
def test_issue_schedule_with_and_without_thinking_follows_the_server(runner, server):
    """Prefill 1.0 s, then 60 thinking + 120 answer tokens at 40 tok/s, usage with
    reasoning_tokens; and the same reply without thinking (120 tokens). Both run at once."""
    run(runner, server, Script(tokens=1, rate=0))          # warm the connection pool
    server.reset()
    thinking = start(runner, server, Script(ttft=1.0, reasoning_tokens=60, tokens=120, rate=40,
                                            usage_reasoning=True))
    plain = start(runner, server, Script(ttft=1.0, tokens=120, rate=40))
    seen_thinking = []
    while not thinking.wait(0.02):   # the thinking is readable while it streams, before the answer
        if thinking.state == THINKING:
            seen_thinking.append((len(thinking.reasoning), thinking.text))
    assert plain.wait(10)
    assert any(n > 0 and text == "" for n, text in seen_thinking)
    assert thinking.state == plain.state == DONE

    # Each figure against the server's own record of the same moment (the schedule's accuracy on
    # a quiet machine, within 3 %, is a make bench figure).
    rec_thinking, rec_plain = sorted(server.requests(), key=lambda r: r.tokens_sent, reverse=True)[:2]
    m = metrics.final_metrics(thinking)
    assert follows(m.ttft.value, rec_thinking.t_first_content_sent - thinking.t_sent)
    assert follows(m.time_to_answer.value, rec_thinking.t_first_answer_sent - thinking.t_sent)
    assert follows(m.e2e.value, rec_thinking.t_last_content_sent - thinking.t_sent)
    assert m.ttft.value >= 1.0 and m.time_to_answer.value >= 1.0 + 60 / 40 - 0.01
    assert m.decode_tps.value == pytest.approx(179 / (m.e2e.value - m.ttft.value))
    assert m.output_tokens == metrics.Value(180, metrics.SERVER)
    assert m.reasoning_tokens == metrics.Value(60, metrics.SERVER)
    assert 0 < m.thinking_s.value <= m.time_to_answer.value - m.ttft.value
    assert thinking.reasoning == "".join(f"think{i} " for i in range(60))
    assert thinking.text == "tok " * 120

    p = metrics.final_metrics(plain)
    assert follows(p.ttft.value, rec_plain.t_first_content_sent - plain.t_sent)
    assert p.time_to_answer.value == p.ttft.value
    assert follows(p.e2e.value, rec_plain.t_last_content_sent - plain.t_sent)
    assert p.decode_tps.value == pytest.approx(119 / (p.e2e.value - p.ttft.value))
    assert p.output_tokens == metrics.Value(120, metrics.SERVER)
    assert p.reasoning_tokens.value is None and p.thinking_s.value is None


# ---- every form, stream and non-stream --------------------------------------------------------
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "non-stream"])
@pytest.mark.parametrize("form", REASONING_FORMS)
def test_each_form_gives_thinking_and_answer_apart(runner, server, form, stream):
    g = run(runner, server, Script(reasoning_text=THINK_WORDS, text=ANSWER_WORDS, rate=0,
                                   reasoning_form=form), stream=stream)
    assert g.state == DONE, g.error
    assert g.reasoning == THINK_WORDS and g.text == ANSWER_WORDS
    m = metrics.final_metrics(g)
    assert m.output_tokens.value == len(THINK_WORDS.split()) + len(ANSWER_WORDS.split())
    if stream:
        assert g.t_first_reasoning <= g.t_last_reasoning < g.t_first_content
        assert m.ttft.value < m.time_to_answer.value


@pytest.mark.parametrize("split", [None, *range(0, 9)])
@pytest.mark.parametrize("form", ["think_tags", "think_close_only"])
def test_inline_tags_split_across_chunks_at_every_position(runner, server, form, split):
    g = run(runner, server, Script(reasoning_tokens=3, tokens=3, rate=0, reasoning_form=form,
                                   think_split_at=split))
    assert (g.reasoning, g.text) == ("think0 think1 think2 ", "tok tok tok "), split
    assert g.state == DONE


def test_opening_tag_after_leading_whitespace(runner, server):
    g = run(runner, server, Script(reasoning_tokens=3, tokens=2, rate=0, think_lead="\n\n",
                                   reasoning_form="think_tags", think_split_at=4))
    assert (g.reasoning, g.text) == ("think0 think1 think2 ", "tok tok ")


def test_thinking_without_answer_is_a_reply(runner, server):
    g = run(runner, server, Script(reasoning_tokens=4, tokens=0, rate=0,
                                   reasoning_form="think_tags", finish_reason="length"))
    assert g.state == DONE and g.text == "" and g.reasoning == "think0 think1 think2 think3 "
    assert g.finish_reason == "length"


# ---- Stop and stop rules while thinking -------------------------------------------------------
def test_stop_during_thinking_closes_the_connection(runner, server):
    g = start(runner, server, Script(ttft=0.1, reasoning_tokens=2000, tokens=10, rate=50))
    wait_until(lambda: g.state == THINKING and g.reasoning_chunk_count >= 5)
    t_stop = time.perf_counter()
    g.stop()
    t_gone = server.wait_for_disconnect(timeout=5)
    assert t_gone - t_stop < PROMPTLY_S
    assert g.wait(5) and g.state == STOPPED
    assert g.text == "" and g.reasoning.startswith("think0 think1 think2 think3 think4 ")
    assert server.requests()[-1].reasoning_sent < 2000


def test_a_watch_thinking_rule_fires_on_the_thinking(runner, server):
    script = Script(reasoning_text="I will say the secret word soon. " * 3 + "pad " * 200,
                    text="No secrets here.", rate=200)
    g = run(runner, server, script, rules=[parse_phrases("secret", watch_thinking=True)])
    assert g.state == STOPPED and g.rule_hit is not None and g.rule_hit.in_thinking
    assert g.reasoning[g.rule_hit.start:g.rule_hit.end] == "secret"
    assert "of the thinking" in g.rule_hit.describe()
    assert server.wait_for_end().outcome == "disconnected"
    assert g.text == ""


def test_a_normal_rule_ignores_the_thinking(runner, server):
    script = Script(reasoning_text="I will say the secret word soon. ", text="Nothing to hide.",
                    rate=0)
    g = run(runner, server, script, rules=[parse_phrases("secret")])
    assert g.state == DONE and g.rule_hit is None and "secret" in g.reasoning


def test_a_normal_rule_still_watches_the_answer_of_a_thinking_model(runner, server):
    script = Script(reasoning_text="Hmm. ", text="The secret is out. " + "pad " * 300, rate=200)
    g = run(runner, server, script, rules=[parse_phrases("secret")])
    assert g.state == STOPPED and not g.rule_hit.in_thinking
    assert g.text[g.rule_hit.start:g.rule_hit.end] == "secret"


def test_max_tokens_counts_thinking_only_when_asked(runner, server):
    script = Script(reasoning_tokens=30, tokens=20, rate=0)
    g = run(runner, server, script, rules=[make_limit_rule("max_tokens", 40, watch_thinking=True)])
    assert g.state == STOPPED and g.rule_hit.rule.kind == "max_tokens"
    g = run(runner, server, script, rules=[make_limit_rule("max_tokens", 40)])
    assert g.state == DONE


# ---- timeouts -----------------------------------------------------------------------------------
def test_thinking_ends_the_first_token_wait_and_keeps_the_stream_alive(runner, server):
    """First-token timeout 0.4 s and idle 0.4 s: 1.5 s of thinking (a chunk every 50 ms) and
    the answer after it must not time out."""
    g = run(runner, server, Script(ttft=0.1, reasoning_tokens=30, tokens=5, rate=20),
            timeouts=Timeouts(first_token=0.4, idle=0.4))
    assert g.state == DONE, g.error
    assert g.text == "tok " * 5


def test_a_stall_during_thinking_is_a_stall(runner, server):
    g = run(runner, server, Script(ttft=0.05, reasoning_tokens=10, tokens=5, rate=100,
                                   stall_after=5, stall_timeout=5),
            timeouts=Timeouts(first_token=2, idle=0.3))
    assert g.state == FAILED and g.error.kind == "stalled"
    assert g.reasoning.startswith("think0 ")


# ---- saved and restored -----------------------------------------------------------------------
def test_reply_with_thinking_is_saved_and_restored_and_never_sent_back(runner, server, tmp_path):
    store = Store(tmp_path)
    try:
        cid = store.create_conversation()
        store.add_message(cid, "user", USER[0]["content"])
        server.queue(Script(reasoning_text=THINK_WORDS, text=ANSWER_WORDS, rate=200,
                            usage_reasoning=True))
        reply = replies.start_reply(runner, store, cid, GenerationRequest(USER), endpoint(server))
        assert reply.generation.wait(10)
        assert reply.saved.wait(10) and reply.save_problem is None
        saved = store.conversation_path(cid)[-1]
        assert saved["reasoning"] == THINK_WORDS and saved["content"] == ANSWER_WORDS
        assert saved["metrics"]["reasoning_tokens"]["value"] == len(THINK_WORDS.split())
        assert "thought" in saved["summary"]
        run_row = store.runs(message_id=saved["id"])[0]
        assert run_row["reasoning_tokens"] == len(THINK_WORDS.split())
        assert run_row["time_to_answer_s"] > run_row["ttft_s"] > 0

        store.add_message(cid, "user", "And 3 + 3?")
        history = replies.history_for_request(store.conversation_path(cid))
        assert history[1] == {"role": "assistant", "content": ANSWER_WORDS}
        server.queue(Script(tokens=2, rate=0))
        g = runner.start(GenerationRequest(history), endpoint(server))
        assert g.wait(10)
        sent = server.requests()[-1].body["messages"]
        assert all(set(m) == {"role", "content"} for m in sent)
        assert not any("Two and two" in m["content"] for m in sent)
    finally:
        store.close()
