"""Compare page in Chromium at 1280×720: the side waiting for its turn says "queued" (and which
runs first), the summary table's labels are not cut, the timeline is a readable colour pair with a
legend; Runs exports times with the browser's offset. Screenshots go to $STREAMCHAT_SHOTS
(default /tmp/streamchat-shots) for a person to look at."""
import csv
import os
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.harness.browser import CHAT_INPUT, wait_for_text, wait_idle

pytestmark = pytest.mark.timeout(180)

SHOTS = Path(os.environ.get("STREAMCHAT_SHOTS", "/tmp/streamchat-shots"))
SLOW = {"ttft": 0.2, "tokens": 30, "rate": 20}   # about 1.7 s a reply: long enough to look at


@pytest.fixture
def page720(stack):
    """The app at 1280×720 in a browser set to New York time, on the Compare page."""
    srv, url, browser = stack
    srv.reset()
    srv.set_script(**SLOW)
    context = browser.new_context(viewport={"width": 1280, "height": 720},
                                  timezone_id="America/New_York")
    try:
        page = context.new_page()
        page.goto(url, timeout=30_000)
        page.locator(CHAT_INPUT).wait_for(state="visible", timeout=30_000)
        wait_idle(page)
        page.get_by_role("link", name="Compare").click()
        page.get_by_role("button", name="Run comparison").wait_for(timeout=30_000)
        wait_idle(page)
        yield page
    finally:
        srv.set_script(tokens=20, rate=0)
        context.close()


def column(page, heading: str):
    return page.locator('[data-testid="stColumn"]').filter(
        has=page.get_by_role("heading", name=heading, exact=True))


def shot(page, name: str, locator=None) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    if locator is not None:
        locator.scroll_into_view_if_needed()
    page.screenshot(path=str(path))
    return path


def until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def run_comparison(page, repeat: int = 1) -> None:
    if repeat != 1:
        box = page.get_by_label("Repeat")
        box.fill(str(repeat))
        box.press("Tab")
        wait_idle(page)
    page.get_by_role("button", name="Run comparison").click()


def test_the_side_waiting_its_turn_says_queued_and_which_runs_first(page720):
    page = page720
    run_comparison(page, repeat=2)
    # Repeat 1: streaming runs first, non-streaming waits (also during the warm-up).
    waiting = column(page, "Non-streaming")
    waiting.get_by_text("Queued", exact=True).wait_for(timeout=15_000)
    text = waiting.inner_text()
    assert "runs second" in text and "streaming has finished" in text
    wait_for_text(page, "Streaming first, then non-streaming", timeout=15)
    running = column(page, "Streaming")
    until(lambda: "Queued" not in running.inner_text(), 10)   # streaming has started
    assert "Queued" in waiting.inner_text()                    # and this side still waits
    shot(page, "compare-queued-repeat1", waiting)
    # Repeat 2: the order alternates, and now streaming waits for non-streaming.
    waiting = column(page, "Streaming")
    waiting.get_by_text("Queued", exact=True).wait_for(timeout=20_000)
    assert "runs second, when non-streaming has finished" in waiting.inner_text()
    wait_for_text(page, "Non-streaming first, then streaming", timeout=5)
    shot(page, "compare-queued-repeat2", waiting)
    wait_for_text(page, "Summary over 2 repeats", timeout=30)
    wait_idle(page)
    # Finished: no side is left saying queued.
    assert "Queued" not in page.locator('[data-testid="stMain"]').inner_text()


def test_summary_labels_fit_and_the_timeline_is_readable_at_1280x720(page720):
    page = page720
    run_comparison(page)
    wait_for_text(page, "Summary", timeout=30)
    wait_idle(page)
    table = page.locator('[data-testid="stTable"]').first
    table.wait_for(timeout=10_000)
    shot(page, "compare-summary-1280x720", table)
    cells = table.locator("th, td")
    assert cells.count() >= 3 * 7   # a header row and a row per lane; the lane and six figures
    cut = cells.evaluate_all(
        "els => els.filter(e => e.scrollWidth > e.clientWidth + 1 || e.innerText.includes('…'))"
        "          .map(e => e.innerText)")
    assert cut == [], f"cut labels: {cut}"
    text = table.inner_text()
    for label in ("Time to first text", "Total time (E2E)", "Tok/s", "Non-streaming"):
        assert label in text
    # The long explanation moved out of the table into the caption under it.
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert "decode rate 1 / TPOT" in body and "effective rate" in body
    assert "-0 %" not in body

    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    chart.scroll_into_view_if_needed()
    shot(page, "compare-timeline-1280x720", chart)
    strokes = chart.evaluate(
        """el => Array.from(el.querySelectorAll('path')).map(p => [
             (p.getAttribute('stroke') || '').toUpperCase(),
             parseFloat(p.getAttribute('stroke-width') || '1')])""")
    widths = {colour: max(w for c, w in strokes if c == colour) for colour, _ in strokes}
    assert widths.get("#E69F00", 0) >= 3 and widths.get("#0072B2", 0) >= 3, widths
    legend = chart.evaluate("el => Array.from(el.querySelectorAll('.role-legend text'))"
                            ".map(t => t.textContent).join(' | ')")
    assert "Streaming" in legend and "Non-streaming" in legend, legend


def test_runs_export_has_the_browsers_offset_and_no_nan(page720):
    page = page720
    run_comparison(page)
    wait_for_text(page, "Summary", timeout=30)
    wait_idle(page)
    page.get_by_role("link", name="Runs").click()
    wait_for_text(page, "America/New_York", timeout=15)
    wait_idle(page)
    page.wait_for_function("() => { const g = document.querySelector("
                           "'[data-testid=\"stDataFrame\"]');"
                           " return g && g.getBoundingClientRect().height > 100; }",
                           timeout=10_000)
    shot(page, "runs-1280x720")
    with page.expect_download() as download:
        page.get_by_role("button", name="⬇ CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert "nan" not in text.lower()
    rows = list(csv.DictReader(text.splitlines()))
    assert rows
    for row in rows:
        offset = datetime.fromisoformat(row["created_at"]).utcoffset().total_seconds() / 3600
        assert offset in (-5, -4), row["created_at"]   # New York, winter or summer
    whole = next(r for r in rows if r["mode"] == "non-stream")
    assert whole["decode_tps"] == ""


def test_chat_only_controls_are_hidden_on_the_compare_page(page720):
    """Issue 9 item 11: the Stream toggle and the stop rules act on the chat only."""
    page = page720
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert not sidebar.get_by_text("Stream", exact=True).is_visible()
    assert not sidebar.get_by_text("Stop rules", exact=True).is_visible()
    page.get_by_role("link", name="Chat").click()
    sidebar.get_by_text("Stream", exact=True).wait_for(state="visible", timeout=15_000)
    assert sidebar.get_by_text("Stop rules", exact=True).is_visible()
