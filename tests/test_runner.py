"""The generation runner against the scripted OpenAI-compatible server."""
import time

import pytest

from streamchat import metrics
from streamchat.generation import (
    DONE,
    FAILED,
    STOPPED,
    STREAMING,
    WAITING_FIRST_TOKEN,
    Endpoint,
    GenerationRequest,
    Timeouts,
)
from tests.harness.bounds import PROMPTLY_S, follows
from tests.harness.scripted_server import Script, ScriptedServer

USER = ({"role": "user", "content": "Count to 100"},)


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(Script()) as srv:
        yield srv


@pytest.fixture(autouse=True)
def fresh(server):
    server.reset()
    server.set_script(Script())


def endpoint(server, model="scripted", key="sk-test-secret-key"):
    return Endpoint("remote", server.base_url, model, key)


def run(runner, server, script=None, *, stream=True, timeouts=Timeouts(), messages=USER, wait=10):
    if script is not None:
        server.queue(script)
    g = runner.start(GenerationRequest(messages, stream=stream, timeouts=timeouts), endpoint(server))
    assert g.wait(wait), f"generation still {g.state}"
    return g


def wait_until(predicate, timeout=5.0, interval=0.005):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def test_stream_collects_text_usage_bytes_and_timeline(runner, server):
    g = run(runner, server, Script(tokens=30, rate=500, token_text="w{i} "))
    assert g.state == DONE
    assert g.text == "".join(f"w{i} " for i in range(30))
    assert g.usage["completion_tokens"] == 30
    assert g.content_chunk_count == 30
    assert g.finish_reason == "stop"
    assert g.bytes_received > len(g.text)
    assert g.t_sent < g.t_headers <= g.t_first_content <= g.t_last_content
    body = server.requests()[-1].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_server_that_ignores_include_usage_still_works(runner, server):
    g = run(runner, server, Script(tokens=10, rate=0, send_usage=False))
    assert g.state == DONE and g.usage is None
    m = metrics.compute(g)
    assert m.output_tokens.value == 10 and m.output_tokens.source == metrics.ESTIMATED


def test_llama_cpp_timings_are_kept(runner, server):
    g = run(runner, server, Script(tokens=5, rate=0, timings=True))
    assert g.timings and "predicted_per_second" in g.timings
    assert metrics.compute(g).server_decode_tps.source == metrics.SERVER


def test_ttft_e2e_and_decode_rate_follow_what_the_server_did(runner, server):
    g = run(runner, server, Script(ttft=0.5, tokens=100, rate=100))
    m = metrics.compute(g)
    rec = server.requests()[-1]
    assert rec.t_first_content_sent - g.t_sent >= 0.5     # the server is never early
    assert follows(m.ttft.value, rec.t_first_content_sent - g.t_sent)
    assert follows(m.e2e.value, rec.t_last_content_sent - g.t_sent)
    assert m.decode_tps.value == pytest.approx(99 / (m.e2e.value - m.ttft.value))   # 1 / TPOT


def test_non_stream_goes_through_same_runner_and_ttft_equals_e2e(runner, server):
    g = run(runner, server, Script(ttft=0.2, tokens=20, rate=100), stream=False)
    assert g.state == DONE and g.text == "tok " * 20
    assert server.requests()[-1].body.get("stream") in (False, None)
    m = metrics.compute(g)
    assert m.ttft.value == m.e2e.value
    assert follows(m.e2e.value, server.requests()[-1].t_last_content_sent - g.t_sent)
    assert m.output_tokens.value == 20 and m.output_tokens.source == metrics.SERVER


def test_states_progress_and_are_readable_while_running(runner, server):
    server.queue(Script(ttft=0.3, tokens=50, rate=50))
    g = runner.start(GenerationRequest(USER), endpoint(server))
    wait_until(lambda: g.state == WAITING_FIRST_TOKEN)
    wait_until(lambda: g.state == STREAMING and len(g.text) > 0)
    partial = g.text
    wait_until(lambda: len(g.text) > len(partial))
    assert g.wait(5) and g.state == DONE


@pytest.mark.parametrize("phase", ["prefill", "streaming"])
def test_stop_closes_the_connection_promptly(runner, server, phase):
    script = (Script(ttft=30, prefill_silent=True) if phase == "prefill"
              else Script(ttft=0, tokens=10_000, rate=50))
    server.queue(script)
    g = runner.start(GenerationRequest(USER), endpoint(server))
    if phase == "prefill":
        wait_until(lambda: server.requests() and server.requests()[-1].t_received)
    else:
        wait_until(lambda: g.content_chunk_count >= 5)
    kept = g.text
    t_stop = time.perf_counter()
    g.stop()
    t_server_saw = server.wait_for_disconnect(timeout=2)
    assert t_server_saw - t_stop < PROMPTLY_S
    assert g.wait(2) and g.state == STOPPED
    assert g.text.startswith(kept)
    assert (g.text != "") == (phase == "streaming")


def test_stop_before_the_request_is_sent(runner, server):
    g = runner.start(GenerationRequest(USER), endpoint(server))
    g.stop()
    assert g.wait(2) and g.state in (STOPPED, DONE)


ERROR_CASES = [
    (Script(status=401), "auth", "API key"),
    (Script(status=403), "auth", "403"),
    (Script(status=404, error_body={"error": {"message": "model 'nope' not found"}}),
     "model_not_found", "not found"),
    (Script(status=429, retry_after=7), "rate_limited", "Retry after 7 s"),
    (Script(status=400, error_body={"error": {"message": "the request exceeds the available "
                                              "context size, try increasing it"}}),
     "context_length", "Trim the oldest"),
    (Script(status=500), "server_error", "500"),
    (Script(status=503), "server_error", "503"),
    (Script(tokens=20, rate=200, drop_after=5), "dropped", "partial reply is kept"),
    (Script(tokens=20, rate=200, malformed_after=5), "malformed", "malformed"),
    (Script(empty=True), "empty_reply", "empty"),
]


@pytest.mark.parametrize("script,kind,words", ERROR_CASES, ids=[c[1] + str(c[0].status) for c in ERROR_CASES])
def test_errors_are_values_with_clear_messages(runner, server, script, kind, words):
    g = run(runner, server, script)
    assert g.state == FAILED
    assert g.error.kind == kind, g.error
    assert words in g.error.message
    assert "Traceback" not in g.error.message and "sk-test-secret-key" not in g.error.message
    if script.drop_after or script.malformed_after:
        assert g.text == "tok " * 5   # the partial text is kept
    if kind == "rate_limited":
        assert g.error.retry_after == 7


def test_timeout_before_first_token(runner, server):
    g = run(runner, server, Script(ttft=5, prefill_silent=True),
            timeouts=Timeouts(first_token=0.3))
    assert g.state == FAILED and g.error.kind == "first_token_timeout"
    assert "0.3 s" in g.error.message
    server.wait_for_disconnect(timeout=2)   # and the connection was closed


def test_stall_mid_stream(runner, server):
    g = run(runner, server, Script(tokens=50, rate=200, stall_after=4), timeouts=Timeouts(idle=0.3))
    assert g.state == FAILED and g.error.kind == "stalled"
    assert g.text == "tok " * 4


def test_connection_refused(runner):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    g = runner.start(GenerationRequest(USER), Endpoint("remote", f"http://127.0.0.1:{port}/v1", "m"))
    assert g.wait(5) and g.state == FAILED
    assert g.error.kind == "unreachable" and f"127.0.0.1:{port}" in g.error.message


def test_endpoint_resolution_failure_is_a_value(runner):
    def broken():
        raise RuntimeError("model file missing")
    g = runner.start(GenerationRequest(USER), broken)
    assert g.wait(5) and g.state == FAILED and "model file missing" in g.error.message


def test_many_generations_at_once_share_one_loop(runner, server):
    server.set_script(Script(tokens=40, rate=100))
    gens = [runner.start(GenerationRequest(USER), endpoint(server)) for _ in range(10)]
    assert all(g.wait(10) for g in gens)
    assert all(g.state == DONE and g.text == "tok " * 40 for g in gens)
    wait_until(lambda: runner.active_count == 0)


def test_a_fired_stop_rule_closes_the_connection_promptly(runner, server):
    from streamchat.stop_rules import parse_phrases
    server.queue(Script(tokens=1000, rate=100, token_text="w{i} "))
    request = GenerationRequest(USER, stop_rules=(parse_phrases("w30"),))
    g = runner.start(request, endpoint(server))
    t_server_saw = server.wait_for_disconnect(timeout=5)
    assert g.wait(2) and g.state == STOPPED
    hit = g.rule_hit
    assert hit.matched == "w30" and g.text[hit.start:hit.end] == "w30"
    t_match = g.content_times[30]          # the chunk "w30 " that completed the match
    assert t_server_saw - t_match < PROMPTLY_S
    assert "w40" not in g.text


def test_a_max_time_rule_fires_without_any_chunk_during_prefill(runner, server):
    from streamchat.stop_rules import make_limit_rule
    server.queue(Script(ttft=30, prefill_silent=True))
    g = runner.start(GenerationRequest(USER, stop_rules=(make_limit_rule("max_time", 0.3),)),
                     endpoint(server))
    t_server_saw = server.wait_for_disconnect(timeout=5)
    assert g.wait(2) and g.state == STOPPED and g.rule_hit.rule.kind == "max_time"
    assert 0.3 <= t_server_saw - g.t_sent < 0.3 + PROMPTLY_S


def test_a_connection_lost_before_any_response_is_sent_once_more(runner, server):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    calls = []

    def endpoint_that_moves():
        # First a dead port (like an embedded server that died while idle), then the live one.
        calls.append(1)
        port_url = f"http://127.0.0.1:{dead}/v1" if len(calls) == 1 else server.base_url
        return Endpoint("remote", port_url, "scripted", "k")

    g = runner.start(GenerationRequest(USER), endpoint_that_moves)
    assert g.wait(10) and g.state == DONE and len(calls) == 2
    assert len(server.requests()) == 1
