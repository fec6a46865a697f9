"""The Compare verdict in words: sensible rounding, "about the same" for noise, never "-0 %"."""
import re

import pytest

from streamchat import compare


def rows(first, e2e, nbytes):
    return [{"metric": m, "stream_median": s, "non_stream_median": w}
            for m, (s, w) in (("first_text_s", first), ("e2e_s", e2e), ("bytes", nbytes))]


@pytest.mark.parametrize("e2e_stream, e2e_whole", [
    (2.399, 2.4),      # -0.04 %: used to read "total time -0 %"
    (2.4, 2.4),
    (2.401, 2.4),
    (2.3, 2.4),        # -4 %: noise between two runs of one request
    (2.5, 2.4),        # +4 %
    (0.110, 0.100),    # +10 %, but only 10 ms on a tiny reply
])
def test_small_differences_in_total_time_read_about_the_same(e2e_stream, e2e_whole):
    verdict = compare.verdict(rows((0.1, e2e_whole), (e2e_stream, e2e_whole), (3100, 1000)))
    assert "total time about the same" in verdict, verdict
    assert "%" not in verdict


@pytest.mark.parametrize("e2e_stream, e2e_whole, words", [
    (2.75, 2.4, "total time 15 % longer"),
    (2.0, 2.4, "total time 17 % shorter"),
    (4.8, 2.4, "total time 100 % longer"),
])
def test_real_differences_in_total_time_are_whole_percentages_in_words(e2e_stream, e2e_whole,
                                                                       words):
    verdict = compare.verdict(rows((0.1, e2e_whole), (e2e_stream, e2e_whole), (3100, 1000)))
    assert words in verdict, verdict


def test_never_minus_zero_or_a_signed_zero():
    for e2e_stream in (x / 1000 for x in range(1500, 3500, 3)):
        verdict = compare.verdict(rows((0.1, 2.4), (e2e_stream, 2.4), (3100, 1000)))
        assert not re.search(r"[-+−]0 ?%", verdict), verdict
        assert not re.search(r"\b0 %", verdict), verdict


def test_a_typical_verdict_reads_well():
    assert compare.verdict(rows((0.1, 2.4), (2.45, 2.4), (3100, 1000))) == \
        "Streaming showed text 24× sooner; total time about the same; 3.1× the bytes"


def test_first_text_within_noise_is_about_the_same_time_not_1_0x():
    verdict = compare.verdict(rows((1.00, 1.01), (2.4, 2.4), (1000, 1000)))
    assert verdict.startswith("Both showed text at about the same time"), verdict
    assert "1.0×" not in verdict and "about the same bytes" in verdict


def test_summary_labels_are_short_enough_for_a_table_column():
    labels = [label for _, label, _, _ in compare.ROWS]
    assert all(len(label) <= 18 for label in labels), labels
    tok = next(r for r in compare.ROWS if r[0] == "tok_per_s")
    assert "decode" in tok[3] and "effective" in tok[3]   # the explanation moved to the help
