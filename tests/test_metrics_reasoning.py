"""Metrics of a reasoning model's reply (vLLM / AIPerf convention: thinking tokens are output
tokens), on generations with a known chunk timeline; and where the figures go (summary line,
saved message, Runs row, exports, Compare)."""
import json

import pytest

from streamchat import compare, export, metrics, replies
from streamchat.generation import (
    DONE,
    STREAMING,
    THINKING,
    WAITING_FIRST_TOKEN,
    Endpoint,
    Generation,
    GenerationRequest,
)
from streamchat.store import Store, run_fields_from_generation

USER = ({"role": "user", "content": "What is 2 + 2?"},)
SENT = 100.0
PREFILL, RATE, THINK, ANSWER = 1.0, 40.0, 60, 120


def reasoning_reply(*, think=THINK, answer=ANSWER, usage=True, usage_reasoning=True, stream=True,
                    finish=True, endpoint=None):
    """60 thinking then 120 answer chunks at 40/s after a 1.0 s prefill (one token each)."""
    g = Generation(GenerationRequest(USER, stream=stream), endpoint)
    g.t_sent = SENT
    g.state = WAITING_FIRST_TOKEN
    g._record_chunk(SENT + 0.01, "")                      # role-only chunk: no token
    for i in range(think + answer):
        t = SENT + PREFILL + i / RATE
        if i < think:
            g._record_chunk(t, "", f"r{i} ")
        else:
            g._record_chunk(t, f"a{i} ")
    if usage:
        g.usage = {"prompt_tokens": 10, "completion_tokens": think + answer,
                   "total_tokens": 10 + think + answer}
        if usage_reasoning:
            g.usage["completion_tokens_details"] = {"reasoning_tokens": think}
    g.finish_reason = "stop"
    if finish:
        g._finish(DONE)
    return g


def test_the_issue_numbers_come_out_right():
    m = metrics.compute(reasoning_reply())
    assert m.ttft.value == pytest.approx(1.0)                     # first token of any kind
    assert m.time_to_answer.value == pytest.approx(1.0 + THINK / RATE)
    assert m.thinking_s.value == pytest.approx((THINK - 1) / RATE)
    assert m.reasoning_tokens == metrics.Value(THINK, metrics.SERVER)
    assert m.output_tokens == metrics.Value(THINK + ANSWER, metrics.SERVER)
    assert m.decode_tps.value == pytest.approx(RATE)              # not 60.2
    assert m.tpot.value == pytest.approx(1 / RATE)
    assert m.e2e.value == pytest.approx(1.0 + (THINK + ANSWER - 1) / RATE)
    assert m.itl_p50.value == pytest.approx(1 / RATE) and m.itl_max.value == pytest.approx(1 / RATE)


def test_without_thinking_time_to_answer_equals_ttft_and_nothing_else_changes():
    m = metrics.compute(reasoning_reply(think=0))
    assert m.ttft.value == m.time_to_answer.value == pytest.approx(1.0)
    assert m.thinking_s.value is None
    assert m.reasoning_tokens == metrics.Value(0, metrics.SERVER)     # the server said 0
    assert metrics.compute(reasoning_reply(think=0, usage_reasoning=False)).reasoning_tokens.value \
        is None                                                        # nobody said anything
    assert m.output_tokens.value == ANSWER
    assert m.decode_tps.value == pytest.approx(RATE)
    assert m.e2e.value == pytest.approx(1.0 + (ANSWER - 1) / RATE)
    assert "thought" not in metrics.summary_line(m)
    assert not m.has_reasoning


def test_without_usage_the_chunks_estimate_all_output_tokens():
    m = metrics.compute(reasoning_reply(usage=False))
    assert m.output_tokens == metrics.Value(THINK + ANSWER, metrics.ESTIMATED)
    assert m.reasoning_tokens == metrics.Value(THINK, metrics.ESTIMATED)
    assert m.decode_tps.value == pytest.approx(RATE) and m.decode_tps.estimated


def test_usage_without_reasoning_details_counts_the_thinking_locally():
    g = reasoning_reply(usage_reasoning=False)
    live = metrics.compute(g)
    assert live.reasoning_tokens == metrics.Value(THINK, metrics.ESTIMATED)
    g.endpoint = Endpoint("remote", "http://127.0.0.1:9/v1", "some-model")
    final = metrics.final_metrics(g)
    assert final.output_tokens == metrics.Value(THINK + ANSWER, metrics.SERVER)
    assert final.reasoning_tokens.source == metrics.APPROXIMATE    # same tokenizer path as answers
    assert final.reasoning_tokens.value > 0
    # a recomputation from the saved arguments gives the same figures
    assert metrics.compute(g, **metrics.token_count_args(final)).reasoning_tokens == \
        final.reasoning_tokens


def test_a_server_zero_is_not_trusted_when_thinking_arrived():
    g = reasoning_reply()
    g.usage["completion_tokens_details"] = {"reasoning_tokens": 0}
    assert metrics.compute(g).reasoning_tokens == metrics.Value(THINK, metrics.ESTIMATED)
    plain = reasoning_reply(think=0)
    plain.usage["completion_tokens_details"] = {"reasoning_tokens": 0}
    assert metrics.compute(plain).reasoning_tokens == metrics.Value(0, metrics.SERVER)


def test_without_usage_final_counts_answer_and_thinking_with_one_tokenizer():
    g = reasoning_reply(usage=False, endpoint=Endpoint("remote", "http://127.0.0.1:9/v1", "m"))
    final = metrics.final_metrics(g)
    from streamchat.tokens import count_text_tokens
    answer = count_text_tokens(g.text, "m").n
    thinking = count_text_tokens(g.reasoning, "m").n
    assert final.output_tokens == metrics.Value(answer + thinking, metrics.APPROXIMATE)
    assert final.reasoning_tokens == metrics.Value(thinking, metrics.APPROXIMATE)
    assert final.decode_tps.value == pytest.approx(
        (answer + thinking - 1) / ((THINK + ANSWER - 1) / RATE))


def test_live_figures_while_thinking():
    g = reasoning_reply(answer=0, finish=False)
    assert g.state == THINKING and g.status_label == "thinking"
    now = SENT + PREFILL + (THINK - 1) / RATE + 0.01            # just after the last one
    m = metrics.compute(g, now=now)
    assert m.ttft.value == pytest.approx(1.0)
    assert m.time_to_answer.value is None
    assert m.thinking_s.value == pytest.approx((THINK - 1) / RATE + 0.01)  # first → now
    assert m.decode_tps.value == pytest.approx(RATE, rel=0.05)  # live rate over thinking chunks
    assert metrics.compute(g, now=now + 1).thinking_s.value == pytest.approx(
        (THINK - 1) / RATE + 1.01)                              # still thinking: it grows
    g._record_chunk(SENT + PREFILL + THINK / RATE, "Four.")
    assert g.state == STREAMING
    m = metrics.compute(g, now=now)
    assert m.thinking_s.value == pytest.approx((THINK - 1) / RATE)   # frozen once answering
    assert m.time_to_answer.value == pytest.approx(1.0 + THINK / RATE)


def test_non_stream_has_no_thinking_duration_but_counts():
    g = Generation(GenerationRequest(USER, stream=False))
    g.t_sent = SENT
    g._record_chunk(SENT + 3.0, "Four.", "Two and two.")
    g.usage = {"completion_tokens": 30, "completion_tokens_details": {"reasoning_tokens": 20}}
    g._finish(DONE)
    m = metrics.compute(g)
    assert m.ttft.value == m.time_to_answer.value == m.e2e.value == pytest.approx(3.0)
    assert m.thinking_s.value is None
    assert m.reasoning_tokens == metrics.Value(20, metrics.SERVER)
    assert metrics.summary_line(m).startswith("TTFT 3.00 s · thought: 20 tokens")


def test_summary_line_says_the_thinking_briefly():
    m = metrics.compute(reasoning_reply())
    line = metrics.summary_line(m)
    thought = metrics.format_seconds(m.thinking_s.value)     # 1.47 s (float: 1.4749…)
    assert line == f"TTFT 1.00 s · thought {thought} (60 tokens) · 40.0 tok/s · 180 tokens · 5.47 s"
    estimated = metrics.summary_line(metrics.compute(reasoning_reply(usage=False)))
    assert f"thought {thought} (~60 tokens)" in estimated


def test_help_covers_the_new_figures():
    for key in ("time_to_answer", "thinking_s", "reasoning_tokens"):
        assert metrics.HELP[key]
    assert "any kind" in metrics.HELP["ttft"] and "thinking" in metrics.HELP["output_tokens"].lower()


# ---- where the figures go ---------------------------------------------------------------------
class FakeStore:
    def __init__(self):
        self.message, self.runs = {}, []

    def update_message(self, message_id, **fields):
        self.message.update(fields)

    def record_run(self, **fields):
        self.runs.append(fields)


def test_saved_message_and_runs_row_carry_the_thinking():
    g = reasoning_reply()
    reply, store = replies.ActiveReply(g, "conv", "msg"), FakeStore()
    replies.save_generation(store, reply)
    assert store.message["reasoning"] == g.reasoning and store.message["content"] == g.text
    saved = store.message["metrics"]
    assert saved["time_to_answer"]["value"] == pytest.approx(2.5)
    assert saved["reasoning_tokens"] == {"value": 60, "source": "server"}
    assert saved["thinking_s"]["value"] == pytest.approx(59 / 40)
    run = store.runs[0]
    assert run["time_to_answer_s"] == pytest.approx(2.5) and run["reasoning_tokens"] == 60
    assert run["thinking_s"] == pytest.approx(59 / 40) and run["ttft_s"] == pytest.approx(1.0)
    assert json.loads(run["extra_json"])["reasoning_tokens_source"] == "server"


def test_store_keeps_the_thinking_and_history_never_sends_it(tmp_path):
    store = Store(tmp_path)
    try:
        cid = store.create_conversation()
        store.add_message(cid, "user", "What is 2 + 2?")
        mid = store.add_message(cid, "assistant", "", state="streaming")
        store.update_message(mid, content="Fo", reasoning="Two and")
        assert store.get_message(mid)["reasoning"] == "Two and"
        store.update_message(mid, content="Four.", reasoning="Two and two.", state="done")
        store.add_message(cid, "user", "And 3 + 3?")
        path = store.conversation_path(cid)
        assert path[1]["reasoning"] == "Two and two." and path[1]["content"] == "Four."
        sent = replies.history_for_request(path, system_prompt="Be brief.")
        assert sent == ({"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "What is 2 + 2?"},
                        {"role": "assistant", "content": "Four."},
                        {"role": "user", "content": "And 3 + 3?"})
        assert "Two and" not in json.dumps(sent)
        assert store.add_message(cid, "user", "x") and \
            store.conversation_path(cid)[-1]["reasoning"] is None
        # a Runs row with the new columns
        rid = store.record_run(**run_fields_from_generation(reasoning_reply(), source="chat"))
        row = store.runs(id=rid)[0]
        assert (row["reasoning_tokens"], row["time_to_answer_s"]) == (60, pytest.approx(2.5))
    finally:
        store.close()


def test_migration_006_adds_the_columns_to_an_older_database(tmp_path):
    import sqlite3
    store = Store(tmp_path)
    cid = store.create_conversation()
    store.add_message(cid, "user", "old")
    store.close()
    with sqlite3.connect(store.path) as conn:   # as a database from before migration 006
        conn.execute("ALTER TABLE messages DROP COLUMN reasoning")
        for column in ("time_to_answer_s", "thinking_s", "reasoning_tokens"):
            conn.execute(f"ALTER TABLE runs DROP COLUMN {column}")
        conn.execute("PRAGMA user_version = 5")
    store = Store(tmp_path)
    try:
        assert store.schema_version >= 6
        assert store.conversation_messages(cid)[0]["reasoning"] is None
        store.record_run(source="chat", thinking_s=1.5, reasoning_tokens=60, time_to_answer_s=2.5)
    finally:
        store.close()


def test_partial_flush_saves_the_thinking_as_it_streams():
    g = reasoning_reply(answer=0, finish=False)
    reply, store = replies.ActiveReply(g, "conv", "msg"), FakeStore()
    replies.flush_partial(store, reply)
    assert store.message == {"content": "", "reasoning": g.reasoning}
    g._record_chunk(SENT + 9, "Four.")
    replies.flush_partial(store, reply)
    assert store.message["content"] == "Four."


def test_exports_include_the_thinking_before_the_answer():
    conv = {"title": "Sums", "owner": "x"}
    messages = [{"role": "user", "content": "2 + 2?"},
                {"role": "assistant", "content": "Four.", "reasoning": "Two and two.\n\nIs four.",
                 "state": "done", "summary": "TTFT 1.00 s"}]
    md = export.conversation_markdown(conv, messages)
    assert "> **Thinking**\n>\n> Two and two.\n>\n> Is four.\n\nFour." in md
    assert md.index("Thinking") < md.index("Four.")
    assert json.loads(export.conversation_json(conv, messages))["messages"][1]["reasoning"] == \
        "Two and two.\n\nIs four."
    plain = export.conversation_markdown(conv, [{"role": "assistant", "content": "Hi",
                                                 "reasoning": None, "state": "done"}])
    assert "Thinking" not in plain


def test_compare_values_and_verdict_tell_thinking_and_answer_apart():
    stream, whole = reasoning_reply(), reasoning_reply(stream=False)
    v = compare.generation_values(stream)
    assert v["first_text_s"] == pytest.approx(1.0) and v["first_answer_s"] == pytest.approx(2.5)
    assert v["thinking_s"] == pytest.approx(59 / 40) and v["reasoning_tokens"] == 60
    pair = compare.pair(0, stream=stream, whole=whole)
    summary = compare.summarize([pair])
    assert [r["metric"] for r in summary][:4] == ["first_text_s", "first_answer_s", "thinking_s",
                                                   "reasoning_tokens"]
    verdict = compare.verdict(summary, compare.outcomes([pair]))
    assert "first answer words after 2.50 s; thinking visible after 1.00 s" in verdict
    plain = compare.summarize([compare.pair(0, stream=reasoning_reply(think=0),
                                                   whole=reasoning_reply(think=0, stream=False))])
    assert "first_answer_s" not in [r["metric"] for r in plain]
    assert "thinking" not in compare.verdict(plain)
    thinking_line = compare.visible_text_timeline(stream, compare.THINKING)
    answer_line = compare.visible_text_timeline(stream)
    assert thinking_line[1][0] == pytest.approx(1.0) and answer_line[1][0] == pytest.approx(2.5)


def test_cli_table_shows_the_thinking_rows_only_when_there_was_thinking():
    from streamchat.cli import format_table
    pair = compare.pair(0, stream=reasoning_reply(), whole=reasoning_reply(stream=False))
    table = format_table(compare.summarize([pair]))
    assert "Time to answer" in table and "Thinking tokens" in table
    plain = compare.pair(0, stream=reasoning_reply(think=0),
                                whole=reasoning_reply(think=0, stream=False))
    assert "Thinking" not in format_table(compare.summarize([plain]))
