import itertools
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamchat.stop_rules import (
    HIDDEN,
    MAX_TIME,
    MAX_TOKENS,
    NearMiss,
    Rule,
    RuleError,
    RuleHit,
    StopRuleEvaluator,
    hidden_text,
    make_limit_rule,
    make_regex_rule,
    parse_phrases,
)

PHONE = r"\b\d{3}-\d{4}\b"


def feed(rules, pieces, final=True):
    """Feed the text in pieces; return (index of the call that first returned a hit, hit)."""
    ev = StopRuleEvaluator(rules)
    text = ""
    first = None
    for i, piece in enumerate(pieces):
        text += piece
        hit = ev.check(text, elapsed=0.0, tokens=0)
        if hit is not None and first is None:
            first = i
    hit = ev.check(text, elapsed=0.0, tokens=0, final=final)
    if hit is not None and first is None:
        first = len(pieces)
    return first, hit


def one_shot(rules, text):
    return StopRuleEvaluator(rules).check(text, elapsed=0.0, tokens=0, final=True)


def splits(text, parts):
    for cuts in itertools.combinations(range(len(text) + 1), parts - 1):
        bounds = (0, *cuts, len(text))
        yield [text[a:b] for a, b in zip(bounds, bounds[1:])]


# ---------------------------------------------------------------------------- building rules

def test_parse_phrases_splits_on_commas_and_newlines_and_drops_blanks():
    rule = parse_phrases(" password, secret key\n\n, ,token\npassword")
    assert rule == Rule("phrases", ("password", "secret key", "token"))
    assert parse_phrases("") is None
    assert parse_phrases(" , \n ,") is None
    assert parse_phrases("Foo", case_sensitive=True).case_sensitive


def test_invalid_regex_gives_a_readable_error():
    with pytest.raises(RuleError) as e:
        make_regex_rule("(")
    assert str(e.value) == "Invalid regular expression /(/: missing ), unterminated subpattern at position 0"
    with pytest.raises(RuleError, match="Enter a regular expression"):
        make_regex_rule("")
    with pytest.raises(RuleError, match="empty text"):
        make_regex_rule("x*")
    with pytest.raises(RuleError, match="exponential"):
        make_regex_rule("(a+)+b")
    assert make_regex_rule(r"(\d{3}-)+\d{4}").kind == "regex"
    assert isinstance(RuleError("x"), ValueError)


@pytest.mark.parametrize("value", [0, -1, -0.5, "0", "abc", "", None, float("nan"), float("inf"), True])
@pytest.mark.parametrize("kind", [MAX_TIME, MAX_TOKENS])
def test_non_positive_or_non_numeric_limits_are_rejected(kind, value):
    with pytest.raises(RuleError, match="must be a positive"):
        make_limit_rule(kind, value)


def test_limit_values_are_normalised():
    assert make_limit_rule(MAX_TOKENS, "200") == Rule(MAX_TOKENS, 200)
    assert make_limit_rule(MAX_TIME, "2.5") == Rule(MAX_TIME, 2.5)
    with pytest.raises(RuleError):
        make_limit_rule(MAX_TOKENS, 2.5)
    with pytest.raises(RuleError, match="Unknown limit"):
        make_limit_rule("max_bytes", 10)


def test_evaluator_validates_rules_built_by_hand():
    with pytest.raises(RuleError):
        StopRuleEvaluator([Rule("regex", "(")])
    with pytest.raises(RuleError):
        StopRuleEvaluator([Rule("max_tokens", 0)])
    with pytest.raises(RuleError):
        StopRuleEvaluator([Rule("colour", "red")])


def test_describe():
    assert Rule("phrases", ("password",)).describe() == 'phrase "password"'
    assert Rule("phrases", ("a", "b")).describe() == 'phrases "a", "b"'
    assert Rule("phrases", tuple("abcde")).describe() == 'phrases "a", "b", "c" and 2 more'
    assert make_regex_rule(r"\d{4}").describe() == r"regex /\d{4}/"
    assert make_regex_rule(r"\d{4}", case_sensitive=True).describe() == r"regex /\d{4}/ (case-sensitive)"
    assert make_limit_rule(MAX_TIME, 10).describe() == "max time 10 s"
    assert make_limit_rule(MAX_TIME, 2.5).describe() == "max time 2.5 s"
    assert make_limit_rule(MAX_TOKENS, 200).describe() == "max 200 tokens"
    rule = parse_phrases("secret, password")
    hit = RuleHit(rule, 1233, 1241, "PassWord")
    assert hit.describe() == 'stopped by phrase "password" at character 1,234'
    limit = RuleHit(make_limit_rule(MAX_TOKENS, 200), 1234, 1234, "")
    assert limit.describe() == "stopped by max 200 tokens after 1,234 characters"


# ---------------------------------------------------------------------------- split matches

@pytest.mark.parametrize("parts", [2, 3])
def test_phrase_split_at_every_position_is_found_once_with_right_offsets(parts):
    text = "the pass is: password123 ok"
    start = text.index("password")
    rule = parse_phrases("password")
    for pieces in splits(text, parts):
        ev = StopRuleEvaluator([rule])
        grown = ""
        results = []
        for piece in pieces:
            grown += piece
            results.append(ev.check(grown, elapsed=0, tokens=0))
        fired = [i for i, r in enumerate(results) if r is not None]
        # it fires on the call whose text first contains the whole phrase, and stays fired
        expected = next(i for i in range(parts) if len("".join(pieces[:i + 1])) >= start + 8)
        assert fired == list(range(expected, parts)), pieces
        hit = results[expected]
        assert all(r is hit for r in results[expected:])
        assert (hit.start, hit.end, hit.matched) == (start, start + 8, "password")


@pytest.mark.parametrize("parts", [2, 3])
def test_regex_split_at_every_position_is_found_once_with_right_offsets(parts):
    text = "call 555-1234 now or 555-9999"
    rule = make_regex_rule(PHONE)
    for pieces in splits(text, parts):
        ev = StopRuleEvaluator([rule])
        grown = ""
        results = []
        for piece in pieces:
            grown += piece
            results.append(ev.check(grown, elapsed=0, tokens=0))
        fired = [i for i, r in enumerate(results) if r is not None]
        # the trailing \b needs one character after the match before the match is certain
        expected = next(i for i in range(parts) if len("".join(pieces[:i + 1])) >= 14)
        assert fired == list(range(expected, parts)), pieces
        hit = results[expected]
        assert (hit.start, hit.end, hit.matched) == (5, 13, "555-1234")


def test_regex_match_at_the_end_fires_on_the_final_call():
    rule = make_regex_rule(PHONE)
    ev = StopRuleEvaluator([rule])
    assert ev.check("call 555-1234", elapsed=0, tokens=0) is None
    hit = ev.check("call 555-1234", elapsed=0, tokens=0, final=True)
    assert (hit.start, hit.end) == (5, 13)
    # and does not fire on a longer number
    assert feed([rule], ["call 555-1234", "5 now"])[1] is None


def test_plain_word_regex_fires_as_soon_as_it_is_complete():
    ev = StopRuleEvaluator([make_regex_rule("password")])
    assert ev.check("my passwor", elapsed=0, tokens=0) is None
    assert ev.check("my password", elapsed=0, tokens=0).start == 3


def test_alternation_waits_until_the_longer_alternative_is_decided():
    rule = make_regex_rule("password|pass")
    assert feed([rule], ["my pass", "word!"])[1].matched == "password"
    assert feed([rule], ["my pass", "port"])[1].matched == "pass"
    assert feed([rule], list("my password"))[1].matched == "password"


def test_unbounded_regex_waits_for_the_match_to_end():
    rule = make_regex_rule(r"\d+")
    ev = StopRuleEvaluator([rule])
    assert ev.check("pin 12", elapsed=0, tokens=0) is None
    assert ev.check("pin 1234", elapsed=0, tokens=0) is None
    hit = ev.check("pin 1234.", elapsed=0, tokens=0)
    assert (hit.start, hit.end, hit.matched) == (4, 8, "1234")


def test_unbounded_regex_split_at_every_position():
    text = "see https://example.com/x?q=1 now"
    rule = make_regex_rule(r"https?://\S+")
    for pieces in splits(text, 3):
        hit = feed([rule], pieces)[1]
        assert hit.matched == "https://example.com/x?q=1", pieces


@pytest.mark.parametrize("pattern", [r"(?i:secret)\d+", r"((?i:secret)\d+)"])
def test_scoped_flags_in_case_sensitive_unbounded_patterns(pattern):
    rule = make_regex_rule(pattern, case_sensitive=True)
    for pieces in splits("the SECRET12 x", 2):
        hit = feed([rule], pieces)[1]
        assert hit is not None and hit.matched == "SECRET12", pieces


def test_lookahead_is_part_of_the_lookback():
    rule = make_regex_rule(r"foo(?=bar)")
    for pieces in splits("xx foobar", 2):
        hit = feed([rule], pieces)[1]
        assert (hit.start, hit.end) == (3, 6), pieces
    assert feed([rule], ["xx foo", "baz"])[1] is None


# ---------------------------------------------------------------------------- unicode

@pytest.mark.parametrize("phrase, text", [
    ("café", "un CAFÉ noir"),
    ("naïve", "so NAÏVE"),
    ("🔥 fire", "it's 🔥 FIRE!"),
    ("秘密", "这是秘密信息"),
    ("παράδειγμα", "ΈΝΑ ΠΑΡΆΔΕΙΓΜΑ"),
    ("σας", "ΣΑΣ"),
    ("istanbul", "İSTANBUL!"),      # "İ".lower() is two characters: offsets must not shift
    ("PassWord", "my password"),
    ("password", "my PassWord"),
])
def test_unicode_and_case_insensitive_phrases_point_into_the_original_text(phrase, text):
    rule = parse_phrases(phrase)
    for pieces in splits(text, 2):
        hit = feed([rule], pieces)[1]
        assert hit is not None, pieces
        assert text[hit.start:hit.end] == hit.matched
        assert re.fullmatch(re.escape(phrase), hit.matched, re.IGNORECASE)
        assert len(hit.matched) == len(phrase)


def test_offsets_after_length_changing_characters():
    text = "İİİ ok then secret"
    hit = feed([parse_phrases("secret")], [text[:5], text[5:]])[1]
    assert (hit.start, hit.end) == (text.index("secret"), len(text))


def test_case_sensitive_phrases():
    rule = parse_phrases("Secret", case_sensitive=True)
    assert feed([rule], ["a secret"])[1] is None
    assert feed([rule], ["a Secret"])[1].start == 2


def test_earliest_ending_phrase_wins():
    rule = parse_phrases("abcdef, cd")
    hit = one_shot([rule], "xabcdefx")
    assert (hit.start, hit.matched) == (3, "cd")
    # at the same end, the longer phrase
    hit = one_shot([parse_phrases("def, abcdef")], "xabcdefx")
    assert hit.matched == "abcdef"


# ---------------------------------------------------------------------------- anchors

def test_caret_matches_at_line_start_only():
    rule = make_regex_rule("^secret")
    hit = feed([rule], ["intro\nsec", "ret here"])[1]
    assert hit.start == 6
    assert feed([rule], ["not a sec", "ret here"])[1] is None
    assert feed([rule], ["sec", "ret"])[1].start == 0


def test_dollar_only_at_line_end():
    rule = make_regex_rule("foo$")
    assert feed([rule], ["a foo", "bar"])[1] is None
    hit = feed([rule], ["a foo", "\nmore"])[1]
    assert (hit.start, hit.end) == (2, 5)
    ev = StopRuleEvaluator([rule])
    assert ev.check("a foo", elapsed=0, tokens=0) is None
    assert ev.check("a foo", elapsed=0, tokens=0, final=True).start == 2


def test_lookbehind_sees_text_before_the_window():
    rule = make_regex_rule(r"(?<=user: )\w{4}")
    hit = feed([rule], ["x" * 50 + "user: ", "bob1 rest"])[1]
    assert hit.matched == "bob1"


# ---------------------------------------------------------------------------- limits

def test_max_tokens_fires_at_the_threshold():
    ev = StopRuleEvaluator([make_limit_rule(MAX_TOKENS, 5)])
    assert ev.check("abcd", elapsed=0.1, tokens=4) is None
    hit = ev.check("abcde", elapsed=0.2, tokens=5)
    assert (hit.rule.kind, hit.start, hit.end, hit.matched) == (MAX_TOKENS, 5, 5, "")


def test_max_time_fires_at_the_threshold_without_new_text():
    ev = StopRuleEvaluator([make_limit_rule(MAX_TIME, 2)])
    assert ev.check("abc", elapsed=1.99, tokens=3) is None
    hit = ev.check("abc", elapsed=2.0, tokens=3)  # the runner's timer call
    assert hit.rule.kind == MAX_TIME and hit.start == 3
    assert hit.describe() == "stopped by max time 2 s after 3 characters"


def test_text_match_earlier_in_the_chunk_beats_a_limit_in_the_same_call():
    rules = [make_limit_rule(MAX_TOKENS, 3), parse_phrases("stop")]
    hit = StopRuleEvaluator(rules).check("stop now", elapsed=0, tokens=3)
    assert hit.rule.kind == "phrases"


def test_shorter_text_starts_over():
    ev = StopRuleEvaluator([parse_phrases("secret")])
    assert ev.check("a secre", elapsed=0, tokens=0) is None
    assert ev.check("b", elapsed=0, tokens=0) is None
    assert ev.check("b secret", elapsed=0, tokens=0).start == 2


# ---------------------------------------------------------------------------- near misses

def test_partial_phrase_at_the_end_is_a_near_miss_and_goes_away():
    rule = parse_phrases("password")
    ev = StopRuleEvaluator([rule])
    misses = ev.near_misses("my PASS", elapsed=0, tokens=0)
    assert misses == [NearMiss(rule, "PASS", 0.5, "password")]
    assert misses[0].describe() == 'close to phrase "password": "PASS" (50%)'
    assert ev.near_misses("my pass is", elapsed=0, tokens=0) == []
    assert ev.near_misses("my p", elapsed=0, tokens=0) == []  # shorter than 2 characters


def test_regex_near_miss():
    pytest.importorskip("regex")  # partial matching comes from the third-party `regex` module
    rule = make_regex_rule(PHONE)
    ev = StopRuleEvaluator([rule])
    (miss,) = ev.near_misses("call 555-12", elapsed=0, tokens=0)
    assert miss.partial == "555-12" and miss.progress == pytest.approx(6 / 8)
    assert ev.near_misses("call 555-12 or", elapsed=0, tokens=0) == []


def test_limit_near_misses_from_80_percent():
    rules = [make_limit_rule(MAX_TOKENS, 200), make_limit_rule(MAX_TIME, 10)]
    ev = StopRuleEvaluator(rules)
    assert ev.near_misses("x", elapsed=7.9, tokens=150) == []
    misses = ev.near_misses("x", elapsed=8.1, tokens=180)
    assert [(m.partial, m.progress) for m in misses] == [("180/200 tokens", 0.9), ("8.1/10 s", pytest.approx(0.81))]
    assert ev.near_misses("x", elapsed=10, tokens=200) == []  # fired, not close


def test_near_misses_look_only_at_the_tail():
    ev = StopRuleEvaluator([parse_phrases("password"), make_regex_rule(PHONE), make_regex_rule(r"https?://\S+")])
    big = "x y " * 1_000_000 + "pass"
    start = time.process_time()
    for _ in range(200):
        misses = ev.near_misses(big, elapsed=0, tokens=0)
    assert [m.partial for m in misses] == ["pass"]
    # about 10 µs a call; scanning the 4 MB text 200 times would take well over a second
    assert time.process_time() - start < 0.2


# ---------------------------------------------------------------------------- hiding

def test_hidden_text_replaces_the_match():
    text = "my password is hunter2"
    hit = one_shot([parse_phrases("password")], text)
    assert hidden_text(text, hit) == f"my {HIDDEN} is hunter2"
    limit = RuleHit(make_limit_rule(MAX_TOKENS, 3), 5, 5, "")
    assert hidden_text(text, limit) == text


# ---------------------------------------------------------------------------- cost and equivalence

def _reply(size):
    words = ["pass", "secre", "555-12", "http", "word", "lorem", "ipsum", "12", "-", "\n", "foo", "confid"]
    out, n, i = [], 0, 0
    while n < size:
        w = words[i % len(words)] + ("x" if i % 7 == 0 else "") + " "
        out.append(w)
        n += len(w)
        i += 1
    return "".join(out)[:size]


def _feed_time(size):
    text = _reply(size)
    rules = [parse_phrases("password, secret key, confidential"), make_regex_rule(PHONE),
             make_regex_rule(r"https?://\S+"), make_regex_rule(r"^foo$"),
             make_limit_rule(MAX_TOKENS, 10**9), make_limit_rule(MAX_TIME, 10**9)]
    ev = StopRuleEvaluator(rules)
    grown = ""
    hits = 0
    start = time.process_time()  # CPU time: other processes on the machine do not count
    for i in range(0, len(text), 10):
        grown += text[i:i + 10]  # the evaluator keeps no reference, so this appends in place
        hits += ev.check(grown, elapsed=0.0, tokens=i // 4) is not None
    hits += ev.check(grown, elapsed=0.0, tokens=0, final=True) is not None
    elapsed = time.process_time() - start
    assert hits == 0
    return elapsed


def test_cost_is_linear_in_the_text():
    """1 MB fed in 10-character chunks costs about 5x 200 KB (a rescan of the text would be 25x)."""
    small = min(_feed_time(200_000) for _ in range(3))
    large = min(_feed_time(1_000_000) for _ in range(2))
    assert large / small < 8, (small, large)


RULE_SETS = [
    [parse_phrases("ab, ba, a-1")],
    [parse_phrases("AbA, b1")],
    [parse_phrases("a-b1, -b, b1 2")],          # a phrase inside a longer one ends first
    [make_regex_rule(PHONE)],
    [make_regex_rule(r"\b\d{2}-\d\b")],
    [make_regex_rule(r"^ab"), make_regex_rule(r"b1$")],
    [make_regex_rule(r"ab12|ab")],             # the longer alternative decides later
    [make_regex_rule(r"a(?=b1)")],
    [make_regex_rule(r"\d+b"), parse_phrases("bb")],
    [make_regex_rule(r"a[b1]*-"), make_regex_rule(r"1-\d")],
    [make_regex_rule(r"\d-\d{2}"), parse_phrases("ab1, 1-"), make_regex_rule(r"b+a")],
]

# fragments that make matches, near-matches and overlaps likely
TEXTS = st.lists(st.sampled_from(["a", "b", "1", "2", "-", " ", "\n", "A", "B", "ab", "a-b1", "12",
                                  "ab12", "1-23", "555-1234", "b1 2"]), max_size=16).map("".join)


@settings(max_examples=400, deadline=None)
@given(rule_set=st.sampled_from(range(len(RULE_SETS))), text=TEXTS,
       cuts=st.lists(st.integers(0, 80), max_size=10))
def test_incremental_checking_finds_the_same_hit_as_one_shot(rule_set, text, cuts):
    rules = RULE_SETS[rule_set]
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    pieces = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    assert feed(rules, pieces)[1] == one_shot(rules, text)


@settings(max_examples=200, deadline=None)
@given(rule_set=st.sampled_from(range(len(RULE_SETS))), text=TEXTS)
def test_character_by_character_fires_at_the_decision_point(rule_set, text):
    """Fed one character at a time: the same hit, and never before its match is complete."""
    rules = RULE_SETS[rule_set]
    first, hit = feed(rules, list(text))
    assert hit == one_shot(rules, text)
    if hit is not None and first < len(text):
        assert first + 1 >= hit.end
