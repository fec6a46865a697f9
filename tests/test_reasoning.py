"""The inline <think> splitter, the reasoning-field readers and how a Generation takes them in
(streamchat.reasoning; runner.absorb_text is the one path the runner uses for every chunk)."""
import itertools

import pytest
from openai.types.chat import ChatCompletionMessage
from openai.types.chat.chat_completion_chunk import ChoiceDelta

from streamchat.generation import STREAMING, THINKING, WAITING_FIRST_TOKEN, Generation, GenerationRequest
from streamchat.reasoning import (
    CLOSE,
    OPEN,
    ThinkSplitter,
    delta_reasoning,
    message_reasoning,
    split_whole,
    usage_reasoning_tokens,
)
from streamchat.runner import absorb_text, release_held

REQUEST = GenerationRequest(({"role": "user", "content": "hi"},))


def feed(chunks, *, fields=None):
    """Run the chunks through the runner's path into a Generation: (reasoning, answer, g)."""
    g = Generation(REQUEST)
    g.state = WAITING_FIRST_TOKEN
    for i, chunk in enumerate(chunks):
        absorb_text(g, float(i), chunk, (fields or {}).get(i, ""))
    release_held(g)
    return g.reasoning, g.text, g


def splits(text, pieces):
    """Every way to cut `text` into `pieces` chunks (empty chunks included)."""
    for cuts in itertools.combinations_with_replacement(range(len(text) + 1), pieces - 1):
        bounds = (0, *cuts, len(text))
        yield [text[a:b] for a, b in zip(bounds, bounds[1:])]


# ---- inline tags at every split position ----------------------------------------------------
@pytest.mark.parametrize("text, reasoning, answer", [
    ("<think>Let me see.</think>The answer.", "Let me see.", "The answer."),
    ("<think>\nhmm\n</think>\n\nYes.", "\nhmm\n", "\n\nYes."),
    ("<think></think>Yes.", "", "Yes."),
])
def test_tags_split_at_every_pair_of_positions(text, reasoning, answer):
    for chunks in splits(text, 3):
        assert feed(chunks)[:2] == (reasoning, answer), chunks


def test_tags_one_character_per_chunk():
    assert feed(list("<think>a < b </thinking> </think>ok <think>"))[:2] == (
        "a < b </thinking> ", "ok <think>")


def test_opening_tag_after_leading_whitespace_at_every_split():
    for chunks in splits("\n \n<think>plan</think>Done.", 3):
        reasoning, answer, g = feed(chunks)
        assert reasoning.strip() == "plan" and answer == "Done.", chunks
        assert reasoning.endswith("plan")


def test_leading_whitespace_shown_then_taken_back_when_think_follows():
    reasoning, answer, g = feed(["\n\n", "<think>", "x", "</think>", "y"])
    assert (reasoning, answer) == ("x", "y")
    assert g.answer_restarts == 1
    # the whitespace chunk is a token chunk: TTFT counts it
    assert g.token_times[0] == 0.0 and g.content_times == [4.0]


def test_close_only_at_every_split_position():
    text = "I should add them.\n</think>\n\n2 + 2 = 4"
    for chunks in splits(text, 3):
        reasoning, answer, g = feed(chunks)
        assert (reasoning, answer) == ("I should add them.\n", "\n\n2 + 2 = 4"), chunks


def test_close_only_streams_as_answer_until_the_tag_then_moves_to_the_thinking():
    g = Generation(REQUEST)
    g.state = WAITING_FIRST_TOKEN
    absorb_text(g, 1.0, "Thinking about it")
    assert g.text == "Thinking about it" and g.state == STREAMING   # provisional
    absorb_text(g, 1.1, " more")
    absorb_text(g, 1.2, "</think>")
    assert g.text == "" and g.reasoning == "Thinking about it more" and g.state == THINKING
    assert g.answer_restarts == 1
    assert g.reasoning_times == [1.0, 1.1] and g.content_times == []
    assert [c.text for c in g.chunks] == ["", "", ""]
    assert [c.reasoning for c in g.chunks] == ["Thinking about it", " more", ""]
    absorb_text(g, 1.3, "Answer")
    assert g.text == "Answer" and g.state == STREAMING and g.t_first_content == 1.3
    assert g.token_times == [1.0, 1.1, 1.2, 1.3]


@pytest.mark.parametrize("chunks, answer", [
    (["```python\nx = '", "</think>'\n```"], "```python\nx = '</think>'\n```"),      # in a fence
    (["Use `", "</think>` to close."], "Use `</think>` to close."),                # inline code
    (["Here: ``", "`\n</think>\n```"], "Here: ```\n</think>\n```"),               # fence split
])
def test_close_tag_that_is_answer_text(chunks, answer):
    assert feed(chunks)[:2] == ("", answer)


def test_only_the_first_close_tag_counts():
    assert feed(["Fine.</think>", " and </think> again"])[:2] == ("Fine.", " and </think> again")
    assert feed(["<think>a</think>b</think>c"])[:2] == ("a", "b</think>c")


def test_close_only_is_off_once_the_server_sends_reasoning_fields():
    reasoning, answer, _ = feed(["", "The tag ", "</think> closes it."], fields={0: "thought"})
    assert (reasoning, answer) == ("thought", "The tag </think> closes it.")


def test_open_tag_later_in_the_answer_is_text():
    # "Sure." does not open with <think>: a </think> later makes it a close-only reply
    assert feed(["Sure. <think>", "x</think> y"])[:2] == ("Sure. <think>x", " y")
    assert feed(["Sure. <think>x"])[:2] == ("", "Sure. <think>x")


def test_unclosed_thinking_is_all_reasoning_and_held_tail_is_released():
    assert feed(["<think>still going </thi"])[:2] == ("still going </thi", "")
    assert feed(["<thi"])[:2] == ("", "<thi")          # never became a tag
    assert feed(["a <", "/th"])[:2] == ("", "a </th")
    assert feed(["  "])[:2] == ("", "  ")


def test_only_a_possible_tag_is_held_back():
    s = ThinkSplitter()
    assert s.feed("Hello <").answer == "Hello "
    assert s.feed("b>").answer == "<b>"
    s = ThinkSplitter()
    assert s.feed("<think>abc</th").reasoning == "abc"
    assert s.feed("inking").reasoning == "</thinking"


def test_work_per_chunk_is_bounded_by_the_chunk():
    """O(new text): the splitter keeps at most a tag's length of text between chunks."""
    for start in ("<think>", "", "plain answer "):
        s = ThinkSplitter()
        s.feed(start)
        for i in range(2000):
            out = s.feed(f"word{i} </th"[i % 3:])
            assert len(s._held) < len(CLOSE) and len(s._lead) <= len(OPEN)
            assert len(out.reasoning) + len(out.answer) <= 20
    s = ThinkSplitter()
    for _ in range(2000):                      # a reply of nothing but whitespace so far
        assert s.feed(" \n").answer == " \n" and len(s._lead) == 0


def test_split_whole_for_non_streamed_content():
    assert split_whole("<think>a</think>b") == split_whole("a</think>b")
    assert split_whole("<think>a</think>b").reasoning == "a"
    assert split_whole("no thinking").answer == "no thinking"
    assert split_whole("").answer == ""


def test_generation_states_and_times_with_reasoning_fields():
    g = Generation(REQUEST)
    g.state = WAITING_FIRST_TOKEN
    absorb_text(g, 1.0, "", "Let")
    assert g.state == THINKING and g.text == "" and g.reasoning == "Let"
    absorb_text(g, 1.1, "", " me")
    absorb_text(g, 1.2, "Hi", "")
    assert g.state == STREAMING
    assert (g.t_first_token, g.t_first_reasoning, g.t_last_reasoning, g.t_first_content) == (
        1.0, 1.0, 1.1, 1.2)
    assert g.token_times == [1.0, 1.1, 1.2] and g.reasoning_times == [1.0, 1.1]
    assert g.status_label == "streaming"


# ---- fields -----------------------------------------------------------------------------------
def test_delta_reasoning_from_either_field():
    assert delta_reasoning(ChoiceDelta.model_validate({"reasoning_content": "a"})) == "a"
    assert delta_reasoning(ChoiceDelta.model_validate({"reasoning": "b"})) == "b"
    both = ChoiceDelta.model_validate({"reasoning_content": "same", "reasoning": "same"})
    assert delta_reasoning(both) == "same"                       # never twice
    assert delta_reasoning(ChoiceDelta.model_validate({"content": "x"})) == ""
    assert delta_reasoning(ChoiceDelta.model_validate({"reasoning_content": None,
                                                       "reasoning": "c"})) == "c"
    assert delta_reasoning({"reasoning": "d"}) == "d"
    with pytest.raises(TypeError):
        delta_reasoning(ChoiceDelta.model_validate({"reasoning_content": {"x": 1}}))


def test_message_reasoning():
    msg = ChatCompletionMessage.model_validate({"role": "assistant", "content": "4",
                                                "reasoning_content": "2+2"})
    assert message_reasoning(msg) == "2+2"
    assert message_reasoning(ChatCompletionMessage.model_validate(
        {"role": "assistant", "content": "4", "reasoning": "r"})) == "r"
    assert message_reasoning(ChatCompletionMessage.model_validate(
        {"role": "assistant", "content": "4"})) == ""


def test_usage_reasoning_tokens():
    assert usage_reasoning_tokens({"completion_tokens": 9,
                                   "completion_tokens_details": {"reasoning_tokens": 6}}) == 6
    assert usage_reasoning_tokens({"completion_tokens": 9}) is None
    assert usage_reasoning_tokens(None) is None
    assert usage_reasoning_tokens({"completion_tokens_details": {"reasoning_tokens": "6"}}) is None
