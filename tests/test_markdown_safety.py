"""streamchat.markdown_safety: no remote image, no nesting bomb, no quadratic growing block
(issue 10 items 14-16). Unit and property tests, then the chat page with AppTest."""
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamchat.markdown_safety import (
    IMAGE_MARK,
    MAX_BLOCK_CHARS,
    MAX_CODE_CHARS,
    MAX_DEPTH,
    SEGMENT_CHARS,
    LiveMarkdown,
    Piece,
    escape_markdown,
    merge_markdown,
    message_pieces,
    nesting_depth,
    neutralize_images,
)
from tests.harness.scripted_server import Script, ScriptedServer

WJ = "\u2060"


def image_starts(md: str) -> list[int]:
    """Where a "!" that is not backslash-escaped stands right before a "[" (could open an image)."""
    out = []
    for m in re.finditer(r"(\\*)!\[", md):
        if len(m.group(1)) % 2 == 0:
            out.append(m.start())
    return out


# ---------------------------------------------------------------- images

def test_an_inline_image_becomes_a_link_to_the_same_url():
    assert neutralize_images("see ![a cat](http://t.test/p.gif \"title\") here") == \
        f"see [{IMAGE_MARK} a cat](http://t.test/p.gif \"title\") here"


def test_reference_style_images_become_links_to_their_references():
    md = ("![full][px] ![collapsed][] ![px] ![Px  ] ![nowhere]\n\n"
          "[px]: http://t.test/p.gif\n[collapsed]: http://t.test/c.gif")
    out = neutralize_images(md)
    assert f"[{IMAGE_MARK} full][px]" in out
    assert f"[{IMAGE_MARK} collapsed][collapsed]" in out
    assert f"[{IMAGE_MARK} px][px]" in out
    assert f"[{IMAGE_MARK} Px  ][Px  ]" in out              # labels match case-insensitively
    assert f"[{IMAGE_MARK} nowhere]" in out and "[nowhere][nowhere]" not in out
    assert image_starts(out) == []


def test_escapes_inline_code_and_bang_runs():
    assert neutralize_images(r"\![not an image](x)") == r"\![not an image](x)"
    assert neutralize_images(r"\\![x](y)") == rf"\\[{IMAGE_MARK} x](y)"    # the backslash is escaped
    assert neutralize_images("!![x](y)") == rf"\![{IMAGE_MARK} x](y)"      # shows "!" then the link
    assert neutralize_images("`![c](d)` and ``a ![e](f)``") == f"`!{WJ}[c](d)` and ``a !{WJ}[e](f)``"
    assert neutralize_images("no images here [link](x)!") == "no images here [link](x)!"


MARKDOWNISH = st.lists(st.sampled_from(
    ["!", "[", "]", "(u)", "\\", "`", "``", "x", " ", "\n", "\n\n", "![", "![a](u)", "![r]", "[]",
     "[r]: http://t.test/r\n", "> ", "- ", "```\n", "é", "🖼", "*"]), max_size=40).map("".join)


@given(MARKDOWNISH)
def test_no_image_can_be_left_whatever_the_text(md):
    out = neutralize_images(md)
    assert image_starts(out) == []
    if "![" not in md:
        assert out == md


@given(MARKDOWNISH)
def test_a_whole_message_has_no_image_outside_code(md):
    for piece in message_pieces(md):
        if piece.kind == "markdown":
            assert image_starts(piece.text) == []


def test_images_are_kept_when_the_user_allows_them():
    assert message_pieces("![a](http://t.test/a.png)", allow_images=True) == \
        [Piece("markdown", "![a](http://t.test/a.png)")]


# ---------------------------------------------------------------- code blocks

def test_fenced_code_is_a_code_piece_with_its_language_and_exact_text():
    text = "Intro ![i](http://t.test/i.png)\n\n```python\nif not ![x](y): pass\n\n    deep = 1\n```\n\nAfter"
    assert message_pieces(text) == [
        Piece("markdown", f"Intro [{IMAGE_MARK} i](http://t.test/i.png)"),
        Piece("code", "if not ![x](y): pass\n\n    deep = 1", "python"),
        Piece("markdown", "After")]


def test_a_fence_in_a_list_item_loses_the_item_indentation_and_tildes_work():
    pieces = message_pieces("1. Run:\n\n   ```sh\n   ls\n     -l\n   ```\n\n2. Done")
    assert pieces[1] == Piece("code", "ls\n  -l", "sh")
    assert message_pieces("~~~\n```\n~~~")[0] == Piece("code", "```")


def test_a_backtick_line_with_a_backtick_in_its_info_string_is_not_a_fence():
    pieces = message_pieces("``` a`b\n![x](http://t.test/x.png)\n```\ncode\n```")
    assert pieces[0].kind == "markdown" and image_starts(pieces[0].text) == []


def test_an_unclosed_fence_runs_to_the_end():
    assert message_pieces("Code:\n```js\nlet a = 1;") == [Piece("markdown", "Code:"), Piece("code", "let a = 1;", "js")]


def test_a_huge_code_block_is_shown_without_highlighting():
    code = "x = 1\n" * (MAX_CODE_CHARS // 6 + 1)
    note, piece = message_pieces(f"```python\n{code}```")
    assert note.kind == "note" and piece == Piece("code", code[:-1], None)


# ---------------------------------------------------------------- nesting and size

@pytest.mark.parametrize("bomb", [
    "- " * 10_000 + "x",                                  # the 20 KB message
    "> " * 10_000 + "x",
    ">" * 10_000 + "x",
    "1. " * 6_000 + "x",
    "*a " * 3_000 + "x" + " a*" * 3_000,                  # emphasis nested 3,000 deep
    "[" * 6_000 + "a" + "]" * 6_000,
    "\n".join("  " * i + "- x" for i in range(60)),      # nested by indentation
])
def test_a_nesting_bomb_is_shown_as_plain_text_with_a_caption(bomb):
    assert nesting_depth(bomb) > MAX_DEPTH
    note, plain = message_pieces(bomb)
    assert note.kind == "note" and "plain text" in note.text and "levels deep" in note.text
    assert plain == Piece("plain", bomb)


def test_ordinary_markdown_renders_as_markdown():
    reply = ("# Plan\n\n1. **First** step with `code` and a [link](https://example.com)\n"
             "   - nested *detail*\n     - deeper _still_\n       > a quote\n2. Second ~~step~~\n\n"
             "| a | b |\n|---|---|\n| 1 | 2 |\n\nDone: snake_case, 2 * 3 * 4, a*b, ~/path, [1] [2]")
    assert nesting_depth(reply) <= 8
    assert message_pieces(reply) == [Piece("markdown", reply)]


@given(st.integers(min_value=1, max_value=60))
def test_the_depth_estimate_is_never_below_the_real_nesting(depth):
    assert nesting_depth("\n".join("  " * i + "- item" for i in range(depth))) >= depth
    assert nesting_depth("> " * depth + "x") >= depth
    assert nesting_depth("- " * depth + "x") >= depth
    assert nesting_depth("**a " * depth + "x" + " a**" * depth) >= depth


def test_a_block_over_the_size_cap_is_plain_text_and_blocks_are_merged_otherwise():
    long = "word " * (MAX_BLOCK_CHARS // 5 + 1)
    pieces = message_pieces(f"first\n\nsecond\n\n{long}\n\nlast")
    assert [p.kind for p in pieces] == ["markdown", "note", "plain", "markdown"]
    assert pieces[0].text == "first\n\nsecond" and "characters long" in pieces[1].text


# ---------------------------------------------------------------- error texts

def test_an_error_text_is_escaped_but_ordinary_sentences_are_left_alone():
    plain = 'The server rejected the API key (401). Check the API key in the sidebar. Said: "no, 3.5".'
    assert escape_markdown(plain) == plain
    assert escape_markdown("![x](http://t.test/e.gif)") == r"!\[x\](http://t.test/e.gif)"
    assert escape_markdown("**b** <img src=x> :red[r] `c`") == r"\*\*b\*\* \<img src=x\> \:red\[r\] \`c\`"
    assert escape_markdown("# h\n- i\n1. j\n    code") == "\\# h  \n\\- i  \n1\\. j  \ncode"


ANY_TEXT = st.lists(st.sampled_from(list("ab 1.#-+=*_`~[]()<>!|$&:;\\\n\t") + ["é", "\r\n", "&amp;", ":x"]),
                    max_size=40).map("".join)


@given(ANY_TEXT)
def test_escaped_text_reads_as_written(text):
    out = escape_markdown(text)
    unescaped = re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", out.replace("  \n", "\n"))
    assert unescaped == "\n".join(line.lstrip(" \t") for line in text.replace("\r\n", "\n").split("\n"))
    for m in re.finditer(r"(\\*)([`*\[\]<>~|$])", out):
        assert len(m.group(1)) % 2 == 1, (text, out)       # every markup character is escaped


# ---------------------------------------------------------------- a growing reply

def play(text: str, ends: list[int], segment_chars: int = SEGMENT_CHARS) -> tuple[list[Piece], int, int]:
    """Feed `text` growing to each of `ends`, then complete; apply each frame to a model of the
    page. Returns (the page's pieces at the end, total characters sent, longest tail sent)."""
    plan = LiveMarkdown(segment_chars=segment_chars)
    page: list = []          # Piece, or a list: the open area of segments
    area = None
    sent = longest_tail = 0
    shown_tail = None
    for end in sorted(ends) + [None]:
        frame = plan.feed(text if end is None else text[:end], final=end is None)
        for piece in [p for _, pieces in frame.ops for p in pieces] + frame.tail:
            # never a bomb, never an image, whatever the frame
            assert piece.kind != "markdown" or (nesting_depth(piece.text) <= MAX_DEPTH
                                                and len(piece.text) <= MAX_BLOCK_CHARS
                                                and image_starts(piece.text) == [])
        for op, pieces in frame.ops:
            sent += sum(len(p.text) for p in pieces)
            if op == "append":
                assert area is None or page[-1] is not area
                page += pieces
            elif op == "segment":
                if area is None:
                    area = []
                    page.append(area)
                assert page[-1] is area               # segments only ever grow the last block
                area += pieces
            else:
                assert area is not None and page[-1] is area
                page[-1:] = pieces
                area = None
        if frame.tail != shown_tail:
            sent += sum(len(p.text) for p in frame.tail)
            longest_tail = max([longest_tail] + [len(p.text) for p in frame.tail])
            shown_tail = frame.tail
    assert area is None
    return page + frame.tail, sent, longest_tail


def test_a_1mb_code_block_streamed_in_2kb_chunks_costs_under_three_times_its_size():
    text = "```python\n" + "".join(f"x{i:05d}=" + "y" * 2040 + "\n" for i in range(512)) + "```\n\nDone."
    ends = list(range(2048 * 3, len(text), 2048 * 3))          # 50 tokens/s at 15 frames/s
    page, sent, longest_tail = play(text, ends)
    assert sent <= 2.5 * len(text)          # segments once, the whole block once, partial lines
    assert longest_tail <= SEGMENT_CHARS + 3 * 2048
    assert page == message_pieces(text)                         # one code block at the end


def test_a_code_block_of_one_huge_line_is_cut_while_it_grows():
    text = "```json\n" + '{"k": "' + "v" * 300_000 + '"}\n```\n'
    page, sent, longest_tail = play(text, list(range(2048, len(text), 2048)))
    assert page == message_pieces(text) and sent <= 3 * len(text)
    assert longest_tail <= 2 * SEGMENT_CHARS + 2048


def test_a_deep_block_growing_is_plain_text_from_the_frame_it_goes_too_deep():
    text = "Intro\n\n" + "- " * 10_000 + "x\n\nafter"
    page, sent, longest_tail = play(text, list(range(100, len(text), 300)))
    assert page == message_pieces(text)
    # 300 characters a frame: the plain tail is re-sent until 2,000 are frozen, about 4x
    assert sent <= 6 * len(text) and longest_tail <= SEGMENT_CHARS + 300


def test_asking_again_for_the_same_finished_text_changes_nothing():
    plan = LiveMarkdown()
    first = plan.feed("a\n\nb", final=True)
    assert first.ops == [("append", [Piece("markdown", "a")])] and first.tail == [Piece("markdown", "b")]
    again = plan.feed("a\n\nb", final=True)
    assert again.ops == [] and again.tail == first.tail


GROWING = st.lists(st.sampled_from(
    ["word ", "\n", "\n\n", "```py\n", "```\n", "~~~\n", "- ", "> ", "![i](u) ", "`c` ", "x" * 30,
     "- " * 40 + "\n", "y" * 90 + "\n", "é"]), max_size=30).map("".join)


@settings(max_examples=300, deadline=None)
@given(GROWING, st.lists(st.integers(min_value=0, max_value=1500), max_size=12), st.integers(1, 60))
def test_the_live_page_ends_as_the_saved_message_however_the_text_arrived(text, ends, segment_chars):
    page, _, _ = play(text, [e for e in ends if e <= len(text)], segment_chars)
    assert merge_markdown(page) == message_pieces(text)


# ---------------------------------------------------------------- the chat page (AppTest)

@pytest.fixture(scope="module")
def server():
    with ScriptedServer(Script(tokens=3, rate=0, token_text="w{i} ")) as srv:
        yield srv


def test_a_nested_user_message_is_plain_text_with_a_caption_in_the_chat(server, open_page):
    server.reset()
    at = open_page(server)
    bomb = "- " * 10_000 + "x"
    at.chat_input[0].set_value(bomb).run()
    assert not at.exception
    user = next(m for m in at.chat_message if m.name == "user")
    assert [t.value for t in user.text] == [bomb] and not user.markdown
    assert any("Shown as plain text" in c.value for c in user.caption)


def test_an_image_in_a_reply_is_a_link_live_and_saved(server, open_page):
    server.reset()
    server.queue(Script(text="Look ![px](http://t.test/px.gif) END", rate=0))
    at = open_page(server)
    at.chat_input[0].set_value("a picture").run()
    for _ in range(2):                                       # live, then redrawn from the store
        shown = " ".join(md.value for m in at.chat_message if m.name == "assistant" for md in m.markdown)
        assert f"[{IMAGE_MARK} px](http://t.test/px.gif)" in shown and "![" not in shown
        at.run()
    assert not at.exception


def test_a_server_error_is_shown_as_plain_text(server, open_page):
    server.reset()
    server.queue(Script(status=400, error_body={"error": {"message": "![x](http://t.test/e.gif) **no**"}}))
    at = open_page(server)
    at.chat_input[0].set_value("fail").run()
    errors = [e.value for m in at.chat_message for e in m.error]
    assert any(r"!\[x\](http://t.test/e.gif) \*\*no\*\*" in e for e in errors), errors


def test_a_long_growing_paragraph_is_frozen_in_segments_and_closed_whole():
    """A model thinking aloud in one long paragraph: what is re-sent per frame stays bounded."""
    plan = LiveMarkdown(segment_chars=200)
    text, resent, segments = "", 0, []
    for i in range(600):
        text += f"Sentence {i} is *here*. "
        frame = plan.feed(text)
        segments += [p.text for op, pieces in frame.ops if op == "segment" for p in pieces]
        resent += sum(len(p.text) for p in frame.tail)
    assert segments and all(s.count("*") % 2 == 0 for s in segments)
    assert resent < 600 * 2 * 400               # the tail never outgrows two segments
    closing = plan.feed(text + "\n\n")
    (op, pieces), = [o for o in closing.ops if o[0] == "close"]
    assert pieces[0].text.strip() == text.strip()   # the whole paragraph replaces its segments


def test_lists_and_tables_are_not_cut_while_they_grow():
    plan = LiveMarkdown(segment_chars=100)
    text = ""
    for i in range(200):
        text += f"- item {i} of the list\n"
        assert not [op for op, _ in plan.feed(text).ops if op == "segment"]
