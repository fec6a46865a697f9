"""The runner against the real embedded llama.cpp server (SmolLM2-135M on the CPU)."""
import time

import pytest

from streamchat import metrics
from streamchat.generation import DONE, STOPPED, GenerationParams, GenerationRequest

pytestmark = pytest.mark.timeout(180)
PROMPT = ({"role": "user", "content": "Write a long story about a lighthouse keeper."},)


@pytest.fixture(scope="module")
def endpoint(local_endpoint):
    return local_endpoint


def test_a_reply_streams_with_usage_and_server_timings(runner, endpoint):
    g = runner.start(GenerationRequest(PROMPT, params=GenerationParams(max_tokens=40, seed=1,
                                                                       temperature=0)), endpoint)
    assert g.wait(60) and g.state == DONE, g.error
    assert g.text.strip()
    assert g.usage["completion_tokens"] == 40 and g.finish_reason == "length"
    m = metrics.compute(g)
    assert m.output_tokens.source == metrics.SERVER
    assert m.server_decode_tps.value and m.ttft.value < m.e2e.value


def test_stop_frees_the_slot_so_the_next_request_starts_at_once(runner, endpoint):
    # Fill both slots with long replies, stop them mid-stream, then a new reply must start fast:
    # if the server kept generating for the stopped ones it would queue behind them.
    long = GenerationParams(max_tokens=2000, temperature=0.8)
    gens = [runner.start(GenerationRequest(PROMPT, params=long), endpoint) for _ in range(2)]
    deadline = time.perf_counter() + 60
    while not all(g.content_chunk_count >= 5 for g in gens):
        assert time.perf_counter() < deadline, [g.state for g in gens]
        time.sleep(0.02)
    for g in gens:
        g.stop()
    assert all(g.wait(5) and g.state == STOPPED for g in gens)
    nxt = runner.start(GenerationRequest(PROMPT, params=GenerationParams(max_tokens=5)), endpoint)
    assert nxt.wait(60) and nxt.state == DONE
    assert metrics.compute(nxt).ttft.value < 3.0
