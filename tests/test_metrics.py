"""Metrics math on hand-built timelines: definitions as in docs/ARCHITECTURE.md (vLLM's)."""
import pytest

from streamchat import metrics
from streamchat.generation import DONE, STREAMING, Generation, GenerationRequest


def make_generation(times, *, sent=0.0, usage=None, finished=True, texts=None):
    g = Generation(GenerationRequest(messages=({"role": "user", "content": "hi"},)))
    g.t_sent = sent
    g._record_chunk(sent + 0.01, "")  # role-only first chunk: not content
    for i, t in enumerate(times):
        g._record_chunk(t, (texts or {}).get(i, f"t{i} "))
    g.usage = usage
    if finished:
        g._finish(DONE)
    return g


def test_ttft_counts_first_non_empty_content_not_role_chunk():
    g = make_generation([0.5, 0.6, 0.7])
    m = metrics.compute(g)
    assert m.ttft.value == pytest.approx(0.5)
    assert m.ttft.source == metrics.MEASURED


def test_tpot_and_decode_rate_use_server_token_count():
    # 11 chunks from t=1.0 to t=2.0, but the server says 21 tokens (2 tokens per chunk).
    times = [1.0 + i * 0.1 for i in range(11)]
    g = make_generation(times, usage={"completion_tokens": 21, "prompt_tokens": 5})
    m = metrics.compute(g)
    assert m.output_tokens.value == 21 and m.output_tokens.source == metrics.SERVER
    assert m.tpot.value == pytest.approx(1.0 / 20)
    assert m.decode_tps.value == pytest.approx(20.0)
    assert m.e2e.value == pytest.approx(2.0)


def test_without_usage_tokens_are_estimated_from_chunks():
    g = make_generation([0.2, 0.3, 0.4])
    m = metrics.compute(g)
    assert m.output_tokens.value == 3 and m.output_tokens.source == metrics.ESTIMATED


def test_local_count_replaces_chunk_estimate():
    g = make_generation([0.2, 0.3, 0.4])
    m = metrics.compute(g, local_token_count=7, local_token_source="exact")
    assert m.output_tokens.value == 7 and m.output_tokens.source == "exact"
    assert m.decode_tps.value == pytest.approx(6 / 0.2) and m.decode_tps.source == "exact"


def test_a_rate_from_estimated_tokens_is_itself_an_estimate():
    m = metrics.compute(make_generation([0.2, 0.3, 0.4]))
    assert m.decode_tps.source == m.tpot.source == metrics.ESTIMATED
    assert metrics.summary_line(m) == "TTFT 200 ms · ~10.0 tok/s · ~3 tokens · 400 ms"


def test_itl_percentiles():
    times = [0.0, 0.1, 0.2, 0.3, 1.3]   # gaps .1 .1 .1 1.0
    m = metrics.compute(make_generation(times))
    assert m.itl_p50.value == pytest.approx(0.1)
    assert m.itl_max.value == pytest.approx(1.0)
    assert 0.1 < m.itl_p95.value <= 1.0


def test_live_decode_rate_is_over_the_last_two_seconds():
    times = [i * 0.01 for i in range(1, 301)]  # 100 tok/s for 3 s
    g = make_generation(times, finished=False)
    assert g.state == STREAMING
    m = metrics.compute(g, now=3.0)
    assert m.decode_tps.value == pytest.approx(100, rel=0.02)
    assert m.decode_tps.source == metrics.ESTIMATED
    assert m.e2e.value is None  # not finished yet
    assert m.elapsed == pytest.approx(3.0)


def test_empty_generation_has_no_numbers():
    g = Generation(GenerationRequest(messages=()))
    m = metrics.compute(g)
    assert m.ttft.value is None and m.tpot.value is None and m.decode_tps.value is None
    assert metrics.summary_line(m) == "0 tokens"


def test_summary_line():
    times = [0.18 + i * (1 / 74) for i in range(312)]
    m = metrics.compute(make_generation(times, usage={"completion_tokens": 312}))
    assert metrics.summary_line(m) == "TTFT 180 ms · 74.0 tok/s · 312 tokens · 4.38 s"


def test_percentile_interpolates():
    assert metrics.percentile([1, 2, 3, 4], 0.5) == 2.5
    assert metrics.percentile([], 0.5) is None


@pytest.mark.parametrize("seconds, shown", [
    (0.0004, "0 ms"), (0.0987, "99 ms"), (0.980, "980 ms"), (0.9996, "1.00 s"), (1.02, "1.02 s"),
    (1.0249, "1.02 s"), (9.994, "9.99 s"), (9.996, "10.0 s"), (12.44, "12.4 s"), (99.96, "100 s"),
    (123.6, "124 s")])
def test_times_to_the_millisecond_under_a_second_then_three_significant_digits(seconds, shown):
    assert metrics.format_seconds(seconds) == shown
