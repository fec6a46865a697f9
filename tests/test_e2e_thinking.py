"""A thinking model in Chromium (issue 11): the thinking streams visibly before the first answer
token, then folds into "Thought for …"; the reply is held by the scripted server (no timing)."""
from __future__ import annotations

import pytest

from tests.harness.browser import MAIN, click_stop, send_prompt, wait_for_text, wait_idle

pytestmark = pytest.mark.timeout(180)


def visible(page, text: str) -> bool:
    return page.get_by_text(text, exact=False).first.is_visible()


def test_thinking_is_shown_live_then_folded_when_the_answer_starts(stack, page):
    srv = stack[0]
    # 30 thinking tokens, then held before any answer token.
    srv.queue({"reasoning_tokens": 30, "tokens": 10, "rate": 0, "stall_after": 30,
               "stall_timeout": 60, "token_text": "ans{i} "})
    send_prompt(page, "think hard")
    wait_for_text(page, "think29", timeout=30, root=MAIN)
    assert visible(page, "think29")
    wait_for_text(page, "Thinking…", root=MAIN)
    assert "ans0" not in page.locator(MAIN).inner_text()
    click_stop(page)
    wait_idle(page)
    wait_for_text(page, "stopped while thinking", root=MAIN)

    # 10 thinking tokens and 10 of the answer, then held: the thinking is folded away.
    srv.queue({"reasoning_tokens": 10, "tokens": 30, "rate": 0, "stall_after": 20,
               "stall_timeout": 60, "token_text": "ans{i} ", "reasoning_token_text": "deep{i} "})
    send_prompt(page, "and again")
    wait_for_text(page, "ans9", timeout=30, root=MAIN)
    wait_for_text(page, "Thought for", root=MAIN)
    assert not page.get_by_text("deep9").first.is_visible()       # folded…
    page.get_by_text("Thought for").last.click()                  # …and can be opened
    page.get_by_text("deep9").first.wait_for(state="visible", timeout=5000)
    click_stop(page)
    wait_idle(page)
