"""Visible TTFT measured in the browser (Enter/click -> first answer words painted): shown beside
the server's TTFT, kept with the reply and its run, on Runs and in the footer after a reload; the
same on the Compare page (the Runs page's column: test_app_runs_page). How closely it agrees with an outside observer (target 50 ms) is a
`make bench` figure; here the bound only says the two watched the same event."""
import re
import sqlite3

import pytest

from tests.harness.browser import TextWatch, click_stop, send_prompt, wait_for_text, wait_idle

pytestmark = pytest.mark.timeout(180)

SEEN = re.compile(r"You saw the first (?:streamed )?words after (\d+(?:\.\d+)?) (ms|s)")
SAME_EVENT_S = 0.2


def seconds_in(text: str) -> float:
    match = SEEN.search(text)
    assert match, text
    value = float(match.group(1))
    return value / 1000 if match.group(2) == "ms" else value


def sidebar_text(page) -> str:
    return page.locator('[data-testid="stSidebar"]').inner_text()


def runs(data_dir) -> list[tuple]:
    with sqlite3.connect(data_dir / "streamchat.db") as conn:
        return conn.execute("SELECT source, ttft_s, visible_ttft_s FROM runs ORDER BY id").fetchall()


def test_the_browser_times_enter_to_first_words_and_keeps_it(stack, page, data_dir):
    srv, url, _ = stack
    before = len(runs(data_dir))
    srv.queue({"ttft": 0.3, "tokens": 30, "rate": 50, "token_text": "v{i} "})
    watch = TextWatch(page, markers=["v0", "v29"])
    send_prompt(page, "time my first words")
    watch.wait_for_marker("v29", timeout=20)
    wait_for_text(page, "You saw the first words after", timeout=15, root='[data-testid="stSidebar"]')
    shown = seconds_in(sidebar_text(page))
    seen = watch.read()
    outside = seen.marks["v0"] - seen.last_click("Enter")
    assert abs(shown - outside) < SAME_EVENT_S, (shown, outside)
    assert "measured in your browser" in sidebar_text(page)
    assert "network+app" in sidebar_text(page)
    # Kept with the run (once), and with the message: its footer says it after a reload.
    new = runs(data_dir)[before:]
    assert len(new) == 1 and new[0][0] == "chat"
    _, server_ttft, stored = new[0]
    assert stored is not None and abs(stored - outside) < SAME_EVENT_S
    assert server_ttft <= stored, "the browser cannot see words before the server sent them"
    page.reload()
    wait_for_text(page, "v29", timeout=20)
    footer = page.locator('[data-testid="stChatMessage"]').last.inner_text()
    seen_in_footer = re.search(r"seen after (\d+) ms", footer)
    assert seen_in_footer and abs(int(seen_in_footer.group(1)) / 1000 - stored) < 0.0015, footer


def test_a_reply_stopped_before_any_words_gets_no_figure(stack, page, data_dir):
    srv, _, _ = stack
    before = len(runs(data_dir))
    srv.queue({"ttft": 60, "prefill_silent": True})
    send_prompt(page, "never mind")
    srv.wait_for_request(1, timeout=15)
    wait_for_text(page, "waiting for first token", timeout=10)
    click_stop(page)
    wait_idle(page)
    wait_for_text(page, "stopped")
    # The next reply is timed from its own Enter, not from the stopped one's.
    srv.queue({"ttft": 0.2, "tokens": 5, "rate": 50, "token_text": "n{i} "})
    watch = TextWatch(page, markers=["n0"])
    send_prompt(page, "now answer")
    wait_for_text(page, "You saw the first words after", timeout=20, root='[data-testid="stSidebar"]')
    seen = watch.read()
    outside = seen.marks["n0"] - seen.last_click("Enter")
    assert abs(seconds_in(sidebar_text(page)) - outside) < SAME_EVENT_S
    stopped, answered = runs(data_dir)[before:]
    assert stopped[2] is None and answered[2] is not None


def test_compare_times_run_to_the_first_streamed_words(stack, page, data_dir):
    srv, _, _ = stack
    srv.set_script(ttft=0.3, tokens=20, rate=40, token_text="c{i} ")
    try:
        page.get_by_role("link", name="Compare").click()
        run = page.get_by_role("button", name="Run comparison")
        run.wait_for(timeout=30_000)
        wait_idle(page)
        watch = TextWatch(page, markers=["c0"])
        run.click()
        wait_for_text(page, "You saw the first streamed words after", timeout=30,
                      root='[data-testid="stSidebar"]')
        seen = watch.read()
        outside = seen.marks["c0"] - seen.last_click("Run comparison")
        assert abs(seconds_in(sidebar_text(page)) - outside) < SAME_EVENT_S
        stored = [r for r in runs(data_dir) if r[0] == "compare" and r[2] is not None]
        assert len(stored) == 1 and abs(stored[0][2] - outside) < SAME_EVENT_S
    finally:
        srv.set_script(tokens=20, rate=0)
