"""The stream vs non-stream comparison engine against the scripted server."""
import socket
import time

import pytest

from streamchat import compare
from streamchat.compare import NON_STREAM, RACE, SEQUENTIAL, STREAM, Comparison
from streamchat.generation import DONE, FAILED, STOPPED, Endpoint
from streamchat.store import Store
from tests.harness.bounds import PROMPTLY_S
from tests.harness.scripted_server import Script, ScriptedServer

USER = [{"role": "user", "content": "Count to 200"}]
PAPER = Script(ttft=0.5, tokens=200, rate=100)   # the numbers: 0.5 s vs ~2.5 s
QUICK = "script:ttft=0.05,tokens=20,rate=200"      # a model name the server reads as a script


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(PAPER) as srv:
        yield srv


@pytest.fixture(autouse=True)
def fresh(server):
    server.reset()
    server.set_script(PAPER)


def endpoint(server, model="scripted"):
    return Endpoint("remote", server.base_url, model, "sk-test-secret-key")


def run(runner, server, model="scripted", wait=30, **kwargs):
    c = Comparison(USER, endpoint(server, model), runner=runner, **kwargs).start()
    assert c.wait(wait), f"comparison still running: {c.progress}"
    return c


def row(summary, metric):
    return next(r for r in summary if r["metric"] == metric)


def wait_until(predicate, timeout=5.0):
    deadline = time.perf_counter() + timeout
    while not predicate():
        assert time.perf_counter() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_sequential_shows_first_text_sooner_and_same_total_time(runner, server):
    c = run(runner, server, repeat=2)
    assert c.is_finished and c.error is None and c.progress == (4, 4)
    assert [g.state for p in c.pairs for g in p.generations] == [DONE] * 4
    summary = c.summary()
    first, e2e = row(summary, "first_text_s"), row(summary, "e2e_s")
    assert first["stream_n"] == first["non_stream_n"] == 2
    # The scripted schedule (first token 0.5 s, the whole reply 2.5 s): never early, late only by
    # what a busy machine adds (the exact figures are `make bench`'s).
    assert 0.5 <= first["stream_median"] < 0.5 + PROMPTLY_S
    assert 2.5 <= first["non_stream_median"] < 2.5 + PROMPTLY_S
    assert first["stream_median"] < first["non_stream_median"]
    assert e2e["stream_median"] >= 0.5 + 199 / 100 and e2e["non_stream_median"] >= 2.5
    assert abs(e2e["stream_median"] - e2e["non_stream_median"]) < PROMPTLY_S
    assert row(summary, "bytes")["stream_median"] > row(summary, "bytes")["non_stream_median"]
    tokens = row(summary, "output_tokens")
    assert tokens["stream_median"] == tokens["non_stream_median"] == 200
    assert row(summary, "chunks")["non_stream_median"] == 1
    assert "sooner" in c.verdict()
    # An uncounted warm-up, then one after the other, and the side that goes first alternates.
    warmup, *reqs = server.requests()
    assert warmup.body["max_tokens"] == 1 and c.warmup_generation not in c.pairs[0].generations
    assert [r.stream for r in reqs] == [True, False, False, True]
    assert all(a.t_last_content_sent < b.t_received for a, b in zip(reqs, reqs[1:]))
    assert [p.stream_first for p in c.pairs] == [True, False]
    # Same request on both sides: deterministic sampling, same messages.
    assert {r.body["temperature"] for r in reqs} == {0.0} and len({r.body["seed"] for r in reqs}) == 1
    assert all(r.body["messages"] == USER for r in reqs)


def test_race_runs_both_at_once(runner, server):
    c = run(runner, server, "script:ttft=0.2,tokens=20,rate=50", mode=RACE, repeat=1, warmup=False)
    assert [g.state for g in c.pairs[0].generations] == [DONE, DONE]
    a, b = (server.wait_for_end(r.id) for r in server.requests())
    assert a.stream != b.stream
    assert a.t_received < b.t_end and b.t_received < a.t_end   # their lifetimes overlap


@pytest.mark.parametrize("mode", [SEQUENTIAL, RACE])
def test_stop_ends_the_generations_in_flight_and_starts_no_more(runner, server, mode):
    c = Comparison(USER, endpoint(server, "script:ttft=0,tokens=10000,rate=100"), runner=runner,
                   repeat=3, mode=mode, warmup=False).start()
    wait_until(lambda: c.current and c.current.stream and c.current.stream.content_chunk_count >= 3)
    # Both requests of the race in flight at the server before Stop (on a busy machine the
    # non-stream one could still be on its way; Stop would then rightly never send it).
    server.wait_for_requests(2 if mode == RACE else 1)
    c.stop()
    assert c.wait(2) and c.is_finished and c.stopped
    pair, = c.pairs
    assert [g.state for g in pair.generations] == [STOPPED] * (2 if mode == RACE else 1)
    for rec in server.requests():
        server.wait_for_disconnect(rec.id)
    time.sleep(0.2)
    assert len(server.requests()) == (2 if mode == RACE else 1)
    assert row(c.summary(), "first_text_s")["stream_n"] == 0
    assert "stopped" in c.verdict()


@pytest.mark.parametrize("repeat", [0, 21, -1, "3", 2.0, True, None])
def test_repeat_out_of_range_is_a_clear_value_error(repeat):
    with pytest.raises(ValueError, match="repeat must be a whole number from 1 to 20"):
        Comparison(USER, Endpoint("remote", "http://127.0.0.1:1/v1", "m"), repeat=repeat)


def test_unknown_mode_is_a_value_error():
    with pytest.raises(ValueError, match="mode must be one of sequential, race"):
        Comparison(USER, Endpoint("remote", "http://127.0.0.1:1/v1", "m"), mode="both")


def test_done_hook_is_called_once_per_generation_and_records_to_store(runner, server, tmp_path):
    calls = []
    store = Store(tmp_path)
    record = compare.record_to_store(store)

    def hook(g, side):
        calls.append((g.id, side, g.state))
        record(g, side)

    c = run(runner, server, QUICK, repeat=2, warmup=False, on_generation_done=hook)
    assert sorted(calls) == sorted((g.id, STREAM if g.request.stream else NON_STREAM, DONE)
                                   for p in c.pairs for g in p.generations)
    assert len(calls) == 4
    rows = store.runs(source="compare")
    assert sorted(r["mode"] for r in rows) == ["non-stream", "non-stream", "stream", "stream"]
    assert all("sk-test-secret-key" not in str(r) for r in rows)
    store.close()


def test_warmup_is_one_uncounted_request(runner, server):
    calls = []
    c = run(runner, server, QUICK, repeat=1, on_generation_done=lambda g, side: calls.append(g))
    warmup, *measured = server.requests()
    assert warmup.stream and warmup.body["max_tokens"] == 1 and len(measured) == 2
    assert c.warmup_generation.state == DONE and warmup.outcome == "completed"
    assert len(calls) == 2 and c.warmup_generation not in calls and c.progress == (2, 2)


def test_warmup_is_stopped_soon_after_its_first_text_when_max_tokens_is_ignored(runner, server):
    c = Comparison(USER, endpoint(server, "script:ttft=0,tokens=10000,rate=100"), runner=runner)
    c.start()
    wait_until(lambda: c.current is not None)
    c.stop()
    assert c.wait(2)
    g = c.warmup_generation
    assert g.state == STOPPED
    # Stopped by the grace timer (not earlier, not by the end of a 100 s stream).
    assert compare.WARMUP_GRACE_S - 0.01 <= g.t_stop_requested - g.t_first_content < compare.WARMUP_GRACE_S + PROMPTLY_S
    assert server.requests()[0].outcome == "disconnected"


def test_a_broken_hook_is_reported_not_raised(runner, server):
    def hook(g, side):
        raise OSError("disk full")

    c = run(runner, server, QUICK, repeat=1, on_generation_done=hook)
    assert c.progress == (2, 2) and "disk full" in c.error


def test_a_failed_side_is_reported_in_summary_and_verdict(runner, server):
    server.set_script(Script.from_model(QUICK))
    server.queue(Script(status=500))          # the first request (streaming) fails
    c = run(runner, server, repeat=1, warmup=False)
    assert c.error is None
    assert c.pairs[0].stream.state == FAILED and c.pairs[0].whole.state == DONE
    first = row(c.summary(), "first_text_s")
    assert first["stream_n"] == 0 and first["stream_median"] is None and first["non_stream_n"] == 1
    assert c.outcomes()[STREAM]["failed"] == 1
    verdict = c.verdict()
    assert "Streaming failed" in verdict and "500" in verdict


def test_a_partly_failed_side_still_compares_and_says_so(runner, server):
    server.set_script(Script.from_model(QUICK))
    server.queue(Script(status=500))
    c = run(runner, server, repeat=2, warmup=False)
    verdict = c.verdict()
    assert "sooner" in verdict and "1 of 2 stream runs did not finish" in verdict


def test_an_unreachable_endpoint_stops_after_the_first_pair(runner):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = Comparison(USER, Endpoint("remote", f"http://127.0.0.1:{port}/v1", "m"), runner=runner,
                   repeat=5, warmup=False).start()
    assert c.wait(10)
    assert len(c.pairs) == 1 and c.pairs[0].stream.error.kind == "unreachable"
    assert c.verdict().startswith("No comparison: Streaming failed: Cannot reach")


def test_state_is_readable_while_running(runner, server):
    c = Comparison(USER, endpoint(server, "script:ttft=0.1,tokens=30,rate=100"), runner=runner,
                   repeat=2).start()
    seen = set()
    while not c.wait(0.01):
        seen.add(c.progress)
        assert c.current is not None or not c.pairs
    assert (0, 4) in seen and c.progress == (4, 4)
    assert any(0 < done < 4 for done, _ in seen)


def test_visible_text_timeline(runner, server):
    c = run(runner, server, QUICK, repeat=1)
    pair = c.pairs[0]
    stream = compare.visible_text_timeline(pair.stream)
    assert stream[0] == (0.0, 0) and stream[-1][1] == len(pair.stream.text)
    assert len(stream) == 21   # start + one point per content chunk
    assert all(a[0] <= b[0] and a[1] < b[1] for a, b in zip(stream, stream[1:]))
    whole = compare.visible_text_timeline(pair.whole)
    e2e = compare.generation_values(pair.whole)["e2e_s"]
    assert whole == [(0.0, 0), (pytest.approx(e2e), 0), (pytest.approx(e2e), len(pair.whole.text))]


def test_verdict_wording_from_plain_rows():
    def rows(first, e2e, nbytes):
        return [{"metric": m, "stream_median": s, "non_stream_median": w}
                for m, (s, w) in (("first_text_s", first), ("e2e_s", e2e), ("bytes", nbytes))]
    assert compare.verdict(rows((0.1, 2.4), (2.45, 2.4), (3100, 1000))) == \
        "Streaming showed text 24× sooner; total time about the same; 3.1× the bytes"
    assert compare.verdict(rows((None, None), (None, None), (None, None))).startswith("No comparison")
    assert compare.verdict([]).startswith("No comparison")
