from hypothesis import given
from hypothesis import strategies as st

from streamchat.blocks import BlockSplitter


def split_all(text, step=1):
    s = BlockSplitter()
    tail = ""
    for i in range(0, len(text) + 1, step):
        _, tail = s.feed(text[:i])
    _, tail = s.feed(text)
    return s.blocks, tail


def test_paragraphs_finish_at_blank_lines():
    blocks, tail = split_all("one\ntwo\n\nthree\n\nfour")
    assert blocks == ["one\ntwo", "three"]
    assert tail == "four"


def test_code_fence_with_blank_lines_stays_one_block_until_closed():
    text = "Intro\n```python\na = 1\n\nb = 2\n```\nafter"
    blocks, tail = split_all(text)
    assert blocks == ["Intro", "```python\na = 1\n\nb = 2\n```"]
    assert tail == "after"


def test_open_fence_stays_in_the_tail():
    blocks, tail = split_all("x\n\n```\ncode\n\nmore")
    assert blocks == ["x"]
    assert tail.startswith("```") and "more" in tail


def test_tilde_fence_is_not_closed_by_backticks():
    blocks, tail = split_all("~~~\na\n```\n\nb\n~~~\n")
    assert blocks == ["~~~\na\n```\n\nb\n~~~"]


def test_new_blocks_are_returned_once():
    s = BlockSplitter()
    assert s.feed("a\n\nb") == (["a"], "b")
    assert s.feed("a\n\nb\n\nc") == (["b"], "c")
    assert s.feed("a\n\nb\n\nc") == ([], "c")


@given(st.lists(st.sampled_from(["word ", "\n", "\n\n", "```", "~~~", " ", "x", "é", "```py\n"]),
                max_size=40), st.integers(min_value=1, max_value=7))
def test_blocks_and_tail_always_hold_all_the_text(parts, step):
    text = "".join(parts)
    blocks, tail = split_all(text, step)
    rebuilt = "".join(b for b in blocks) + tail
    assert rebuilt.replace("\n", "").replace(" ", "") == text.replace("\n", "").replace(" ", "")
    assert blocks == split_all(text, 1)[0]  # same result however the text arrived


def test_a_backtick_line_with_a_backtick_in_its_info_string_opens_no_fence():
    # CommonMark: "``` a`b" is a paragraph (an unclosed code span), so the blank line ends it.
    blocks, tail = split_all("``` a`b\n![x](y)\n\nnext\n")
    assert blocks == ["``` a`b\n![x](y)"]
    assert tail.strip() == "next"


def test_a_closing_fence_needs_at_least_the_opening_length_and_nothing_after():
    blocks, _ = split_all("````\n```\n```` x\n````\n")
    assert blocks == ["````\n```\n```` x\n````"]


def test_the_open_fence_and_where_the_tail_starts_are_known():
    s = BlockSplitter()
    s.feed("Intro\n\n  ```python {x}\nprint(1)\n")
    assert s.fence is not None and s.fence.language == "python" and s.fence.indent == 2
    assert s.tail_start == len("Intro\n\n")
    s.feed("Intro\n\n  ```python {x}\nprint(1)\n  ```\n")
    assert s.fence is None
