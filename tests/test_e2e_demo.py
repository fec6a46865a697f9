"""What a person demoing the chat sees, in Chromium (issue 9 items 1, 5, 6, 10, 13).

Timing-free: a reply is held mid-stream by the scripted server (`stall_after`: N tokens, then
silence until the client disconnects), checked while held, and released with Stop.
Screenshots of the held state go to $STREAMCHAT_SHOTS (default: the test's tmp dir).
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from tests.harness.browser import (
    MAIN,
    app_page,
    click_stop,
    send_prompt,
    stop_button,
    wait_for_text,
    wait_idle,
)

pytestmark = pytest.mark.timeout(300)
SIDEBAR = '[data-testid="stSidebar"]'
HELD = {"tokens": 400, "rate": 0, "token_text": "held{i} ", "paragraph_every": 25,
        "stall_after": 150, "stall_timeout": 120}
VISIBLE_STALE_JS = f"""() => [...document.querySelectorAll('{MAIN} [data-stale="true"]')]
    .filter(e => e.offsetParent !== null && e.getBoundingClientRect().height > 0)
    .map(e => e.innerText.slice(0, 60))"""


def shots_dir(tmp_path) -> Path:
    path = Path(os.environ.get("STREAMCHAT_SHOTS") or tmp_path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def exchange(page, srv, n: int) -> None:
    srv.queue({"tokens": 30, "rate": 0, "token_text": f"a{n}w{{i}} ", "paragraph_every": 12})
    send_prompt(page, f"question number {n}")
    wait_for_text(page, f"a{n}w29", timeout=30)
    wait_idle(page)


def on_screen(box: dict | None, height: int) -> bool:
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height


def hold_a_reply(page, srv, prompt: str = "a long follow-up") -> None:
    srv.queue(HELD)
    send_prompt(page, prompt)
    wait_for_text(page, "held149", timeout=30)


@pytest.mark.parametrize("viewport", [(1280, 720), (1920, 1080)])
def test_presenter_view_keeps_metrics_and_the_growing_reply_in_view(stack, tmp_path, viewport):
    srv, url, browser = stack
    srv.reset()
    width, height = viewport
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        with app_page(browser, url) as page:
            pass   # warm: the app's first load compiles nothing for the measured page
        page = context.new_page()
        page.goto(url)
        page.locator('[data-testid="stChatInputTextArea"]').wait_for(state="visible")
        wait_idle(page)
        for n in range(10):                       # a 20-message chat
            exchange(page, srv, n)
        page.get_by_text("Presenter view", exact=True).click()
        wait_idle(page)
        hold_a_reply(page, srv)
        # The page sticks to the bottom as the reply grows: wait (bounded) until the growing end
        # is on screen, however busy the machine; if it never scrolls there, this fails.
        deadline = time.perf_counter() + 15
        while not on_screen(page.get_by_text("held149").bounding_box(), height):
            assert time.perf_counter() < deadline, "the growing end of the reply never came into view"
            page.wait_for_timeout(50)
        page.screenshot(path=str(shots_dir(tmp_path) / f"presenter-{width}x{height}.png"))
        panel = page.locator(".st-key-presenter-metrics").bounding_box()
        tail = page.get_by_text("held149").bounding_box()
        assert panel is not None and tail is not None
        assert panel["y"] >= 0 and panel["y"] + panel["height"] <= height, panel
        metric = page.locator('.st-key-presenter-metrics [data-testid="stMetricValue"]').first
        assert metric.is_visible() and metric.bounding_box()["y"] >= 0
        # The growing end of the reply is on screen, below the panel, not under it.
        assert tail["y"] >= panel["y"] + panel["height"] - 1, (panel, tail)
        assert tail["y"] + tail["height"] <= height, (tail, height)
        assert page.evaluate(VISIBLE_STALE_JS) == []
        click_stop(page)
        wait_idle(page)
    finally:
        context.close()


def test_nothing_stale_is_visible_while_a_follow_up_streams(stack, page, tmp_path):
    srv = stack[0]
    for n in range(2):
        exchange(page, srv, n)
    hold_a_reply(page, srv)
    page.screenshot(path=str(shots_dir(tmp_path) / "follow-up-held.png"), full_page=True)
    assert page.evaluate(VISIBLE_STALE_JS) == []
    # One Regenerate at most (the held reply has Stop instead), one figures line per reply.
    assert page.get_by_role("button", name="🔁 Regenerate").count() == 0
    main = page.locator(MAIN).inner_text()
    assert main.count("30 tokens") == 2, main[-600:]
    click_stop(page)
    wait_idle(page)


def busy_mark(page, title: str) -> str:
    button = page.locator(SIDEBAR).get_by_role("button", name=title)
    return button.locator("p").evaluate("p => getComputedStyle(p, '::before').content")


def test_sidebar_follows_the_reply_busy_mark_and_delete(stack, page):
    srv = stack[0]
    hold_a_reply(page, srv, "mark me busy")
    assert "▶" in busy_mark(page, "mark me busy")
    delete = page.locator(SIDEBAR).get_by_role("button", name="🗑 Delete this chat")
    assert delete.is_enabled()                    # deleting a busy chat stops its reply first
    click_stop(page)
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stSidebar"] button p')]
             .every(p => !getComputedStyle(p, '::before').content.includes('▶'))""", timeout=5000)
    assert delete.is_enabled()


def test_the_first_reply_shows_no_skeletons_and_one_clock(stack, page):
    srv = stack[0]
    page.evaluate("""() => {
        window.__skeletons = 0;
        new MutationObserver(() => {
            const sk = [...document.querySelectorAll('[data-testid="stSkeleton"]')]
                .find(e => e.offsetParent !== null && e.getBoundingClientRect().height > 0);
            if (sk) { window.__skeletons++; window.__where = (sk.closest('[data-testid="stSidebar"]') ? 'sidebar ' : 'main ') + (sk.parentElement.closest('[class*="st-key-"]') || {className: ''}).className.slice(0, 80); }
        }).observe(document.body, {subtree: true, childList: true});
    }""")
    srv.queue({"ttft": 120, "prefill_silent": True})     # held before the first token
    send_prompt(page, "first of this session")
    wait_for_text(page, "waiting for first token", timeout=15, root=MAIN)
    # Both timers (the chat's waiting line and the sidebar status), sampled in one go many
    # times: they go out in the same frame, so they differ by one 0.1 s step at most, only while
    # one of the two updates is on its way (the sidebar used to lag by up to half a second).
    samples = []
    for _ in range(25):
        chat, side = page.evaluate(f"""() => [
            [...document.querySelectorAll('{MAIN} [data-testid="stCaptionContainer"]')]
              .map(e => e.innerText).find(t => t.includes('waiting for first token')),
            [...document.querySelectorAll('{SIDEBAR} [data-testid="stMarkdownContainer"]')]
              .map(e => e.innerText).find(t => t.includes('waiting for first token'))]""")
        assert chat is not None and side is not None, (chat, side)
        samples.append((float(re.search(r"([\d.]+) s", chat)[1]),
                        float(re.search(r"([\d.]+) s", side)[1])))
        page.wait_for_timeout(60)
    assert max(abs(a - b) for a, b in samples) <= 0.1 + 1e-9, samples
    assert sum(a == b for a, b in samples) >= len(samples) // 2, samples
    click_stop(page)
    wait_idle(page)
    assert page.evaluate("window.__skeletons") == 0, page.evaluate("window.__where")


def test_versions_cut_off_reason_and_regenerate_in_one_place(stack, page):
    srv = stack[0]
    srv.queue({"tokens": 12, "rate": 0, "token_text": "cut{i} ", "finish_reason": "length"})
    send_prompt(page, "a reply cut at max tokens")
    wait_for_text(page, "cut11", timeout=30)
    wait_idle(page)
    wait_for_text(page, "cut off at the max tokens limit", root=MAIN)
    assert page.get_by_role("button", name="▶ Continue").is_visible()
    live_place = page.get_by_role("button", name="🔁 Regenerate").bounding_box()
    page.get_by_role("button", name="✏️ Edit").first.hover()
    page.get_by_text("Presenter view", exact=True).click()   # any re-run redraws the chat
    page.get_by_text("Presenter view", exact=True).click()
    wait_idle(page)
    assert page.get_by_role("button", name="🔁 Regenerate").bounding_box() == live_place

    srv.queue({"tokens": 3, "rate": 0, "token_text": "again{i} "})
    page.get_by_role("button", name="🔁 Regenerate").click()
    wait_for_text(page, "again2", timeout=30)
    wait_idle(page)
    back = page.get_by_role("button", name="‹").bounding_box()
    forward = page.get_by_role("button", name="›").bounding_box()
    label = page.get_by_text("2/2", exact=True)
    assert forward["x"] - (back["x"] + back["width"]) < 80, (back, forward)   # side by side
    assert label.evaluate("e => !e.closest('[data-testid=\"stCaptionContainer\"]')")   # not pale
    assert back["height"] >= 28 and forward["height"] >= 28
    assert stop_button(page).count() == 0
