"""Regenerate, edit, continue, versions and stop rules in a real Chromium."""
import pytest

from tests.harness.browser import TextWatch, send_prompt, wait_for_text, wait_idle

pytestmark = pytest.mark.timeout(180)


def click(page, name):
    page.get_by_role("button", name=name, exact=True).last.click()
    wait_idle(page)


def test_regenerate_edit_and_switch_versions(stack, page):
    srv = stack[0]
    srv.queue({"text": "alpha reply"}, {"text": "beta reply"}, {"text": "edited reply"})
    send_prompt(page, "first question")
    wait_for_text(page, "alpha reply", timeout=15)
    wait_idle(page)
    click(page, "🔁 Regenerate")
    wait_for_text(page, "beta reply", timeout=15)
    wait_for_text(page, "2/2")
    click(page, "‹")
    wait_for_text(page, "alpha reply")
    assert page.locator('[data-testid="stChatMessage"]').filter(has_text="beta reply").count() == 0
    click(page, "✏️ Edit")
    box = page.get_by_label("Edit message")
    box.fill("second question")
    click(page, "Send edited")
    wait_for_text(page, "edited reply", timeout=15)
    wait_idle(page)
    chat = page.locator('[data-testid="stChatMessage"]')
    assert chat.filter(has_text="first question").count() == 0   # the other branch is hidden
    assert chat.filter(has_text="second question").count() == 1
    assert srv.requests()[-1].body["messages"][-1]["content"] == "second question"


def test_continue_a_stopped_reply(stack, page):
    srv = stack[0]
    srv.queue({"tokens": 2000, "rate": 40, "token_text": "c{i} "}, {"text": " and the end."})
    watch = TextWatch(page, markers=["c5"])
    send_prompt(page, "long one")
    watch.wait_for_marker("c5", timeout=15)
    click(page, "Stop")
    click(page, "▶ Continue")
    wait_for_text(page, "and the end.", timeout=15)
    last = srv.requests()[-1].body["messages"][-1]
    assert last["role"] == "assistant" and last["content"].startswith("c0 c1 c2")
    wait_for_text(page, "c5")                  # the partial text stayed


def test_a_stop_rule_stops_a_reply_with_a_live_hint_first(stack, page):
    srv = stack[0]
    words = " ".join(f"w{i}" for i in range(8)) + " the forbidden password here " + \
        " ".join(f"x{i}" for i in range(200))
    srv.queue({"text": words, "rate": 4})   # slow, so "forbidden " alone is on screen a while
    page.get_by_text("Stop rules", exact=True).click()
    box = page.get_by_label("Words or phrases (comma or newline separated)")
    box.fill("forbidden password")
    box.press("Control+Enter")
    wait_idle(page)
    send_prompt(page, "say it")
    wait_for_text(page, 'close to phrase "forbidden password"', timeout=20)   # seen live
    wait_for_text(page, 'stopped by phrase "forbidden password"', timeout=20)
    wait_idle(page)
    record = srv.requests()[-1]
    assert record.t_disconnected is not None
    assert page.get_by_text("x3").count() == 0
