"""Replay and read-only share links in a real Chromium (issue 14): a recorded reply replays in its
place at its recorded pace with the recorded figures; a share link shows the chat read-only in a
fresh browser, and says so once revoked."""
import time

import pytest

from tests.harness.browser import CHAT_INPUT, TextWatch, have_chromium, send_prompt, wait_for_text, wait_idle

pytestmark = [pytest.mark.skipif(not have_chromium(), reason="needs /usr/bin/chromium"),
              pytest.mark.timeout(240)]

REPLY = {"ttft": 0.5, "tokens": 200, "rate": 50, "token_text": "r{i} "}
RECORDED_TTFT_S, RECORDED_LAST_S = 0.5, 0.5 + 199 / 50


def metric_value(page, label):
    metric = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return metric.locator('[data-testid="stMetricValue"]').inner_text()


def test_a_recorded_reply_replays_at_its_pace_with_its_figures(stack, page):
    srv = stack[0]
    srv.queue(REPLY)
    send_prompt(page, "record me")
    wait_for_text(page, "r199", timeout=30)
    wait_idle(page)
    recorded = {label: metric_value(page, label) for label in ("TTFT", "Output tokens")}
    requests_before = len(srv.requests())

    page.get_by_role("button", name="🔁 Replay").last.click()
    play = page.get_by_role("button", name="▶ Play")
    play.wait_for(state="visible", timeout=10_000)
    clicked = time.perf_counter()
    play.click()
    # The replay plays in a place of its own: watch only there (the original says r0 too).
    replayed = '[class*="st-key-replayed-"]'
    page.locator(replayed).first.wait_for(state="attached", timeout=10_000)
    watch = TextWatch(page, markers=["r0", "r199"], selector=replayed, root=replayed)
    watch.wait_for_marker("r199", timeout=30)
    seen = watch.read()
    first, last = seen.marks["r0"] - clicked, seen.marks["r199"] - clicked
    print(f"replay: first words {first:.3f} s, last {last:.3f} s after the click")
    # Never sooner than recorded, then the pace of the original: first to last word as long as
    # recorded. (How close the first words come to the recorded TTFT after the click is a figure
    # for a quiet machine; the bounds here allow for a loaded one.)
    span = RECORDED_LAST_S - RECORDED_TTFT_S
    assert RECORDED_TTFT_S - 0.05 <= first < RECORDED_TTFT_S + 1.5, first
    assert span * 0.9 <= last - first <= span * 1.15, (first, last)
    wait_idle(page)
    assert {label: metric_value(page, label) for label in recorded} == recorded
    assert len(srv.requests()) == requests_before, "a replay asks no model"


def test_a_share_link_is_read_only_in_another_browser_and_can_be_revoked(stack, page):
    srv, url, browser = stack
    srv.queue({"tokens": 5, "rate": 0, "token_text": "shared{i} "})
    send_prompt(page, "share this chat")
    wait_for_text(page, "shared4", timeout=30)
    wait_idle(page)
    page.get_by_role("button", name="🔗 Share").click()
    page.get_by_role("button", name="Make a link").click()
    link = page.locator('[data-testid="stCode"]').filter(has_text="?share=").first
    link.wait_for(timeout=10_000)
    address = link.inner_text().strip()
    assert address.startswith(url.rstrip("/")) and len(address.split("?share=")[1]) >= 22

    other = browser.new_context()
    try:
        guest = other.new_page()
        guest.goto(address)
        wait_for_text(guest, "shared4", timeout=30)
        assert guest.locator(CHAT_INPUT).count() == 0
        assert "share this chat" in guest.locator("body").inner_text()
        assert guest.get_by_text("Conversations").count() == 0   # nothing else of the owner's
        page.get_by_role("button", name="Revoke").first.click()
        wait_idle(page)
        guest.reload()
        wait_for_text(guest, "revoked", timeout=30)
        assert "shared4" not in guest.locator("body").inner_text()
    finally:
        other.close()
