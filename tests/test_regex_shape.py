"""The regex-shape analysis reads CPython's private `re._parser`. If a Python upgrade changes it,
these tests fail loudly (the stop-rule evaluator itself would silently fall back to a capped
window and stop rejecting empty or exponential patterns)."""

import re

import pytest

from streamchat import regex_shape

CAP = 1000
FLAGS = re.MULTILINE | re.IGNORECASE


def test_the_private_api_is_all_there():
    regex_shape.check_private_api()


@pytest.mark.parametrize(
    "pattern, min_width, reach",
    [
        ("password", 8, 8),
        (r"\b\d{3}-\d{4}\b", 8, 9),  # \b looks one character past the match
        ("foo$", 3, 5),  # $ may look at a line end two characters on (\r\n)
        ("^foo", 3, 3),  # a start anchor looks only back
        ("pass(?=word)", 4, 8),  # the lookahead's width counts
        (r"\d+", 1, None),  # unbounded
        ("a?", 0, 1),
    ],
)
def test_widths_and_reach(pattern, min_width, reach):
    shape = regex_shape.shape(pattern, FLAGS)
    assert shape.min_width == min_width
    assert shape.reach(CAP) == reach


@pytest.mark.parametrize(
    "pattern, nested",
    [("(a+)+", True), (r"(\w+\s)*", True), ("(a{1,3})+", True),
     ("(ab?)+", False), (r"(\d{3}-)+", False), ("(a++)+", False), ("(?>a+)+", False)],
)  # fmt: skip
def test_nested_repetitions(pattern, nested):
    assert regex_shape.shape(pattern, FLAGS).nested_repeat is nested


def test_the_bounded_head_of_an_unbounded_pattern():
    head = regex_shape.bounded_head(regex_shape.shape(r"https?://\S+", FLAGS), CAP)
    assert head is not None
    compiled, reach = head
    assert reach == len("https://") + 1
    assert compiled.match("https://x") and compiled.match("http://x")
    assert not compiled.match("https:/x")
    assert regex_shape.bounded_head(regex_shape.shape(r"\d+", FLAGS), CAP) is not None
    assert regex_shape.bounded_head(regex_shape.shape(r"\d*x", FLAGS), CAP) is None
