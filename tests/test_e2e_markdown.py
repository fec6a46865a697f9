"""Markdown that breaks the page (issue 10 items 14-16), in a real Chromium against `streamlit run`:
a 10,000-level nested message renders at once without blocking the tab, a 1 MB code-block reply
costs websocket bytes linear in its size, and images in replies and error texts are never fetched.
The figures come from the same measurements as `make bench` (bench/apps.py)."""
import pytest

from bench.apps import (
    BIG_CODE_TARGET_RATIO,
    MAIN_THREAD_TARGET_S,
    big_code_text,
    measure_big_code,
    measure_nesting,
)
from tests.harness.browser import MAIN, TextWatch, send_prompt, wait_for_text, wait_idle

pytestmark = pytest.mark.timeout(300)

TRACKER = "pixel.tracker.test"    # never resolves; a request to it would still be seen


@pytest.mark.parametrize("kind", ["list", "quote"])
def test_ten_thousand_nesting_levels_render_as_text_without_blocking_the_tab(stack, kind):
    """Before: the tab froze for about a minute, then showed a RangeError stack trace. The 200 ms
    bound holds in the best of 3 tries: the 2 cores are shared, and a busy machine stretches any
    task (an ordinary message then shows ~100-300 ms tasks too)."""
    srv, url, browser = stack
    tries = []
    for _ in range(3):
        result = measure_nesting(browser, url, srv, kind)
        assert not result["range_error"]
        assert result["plain_text_caption"]                # said so in a caption
        assert result["send_to_reply_s"] < 20 and result["reopen_s"] < 20
        tries.append(result["longest_task_s"])
        if result["longest_task_s"] <= MAIN_THREAD_TARGET_S:
            break
    assert min(tries) <= MAIN_THREAD_TARGET_S, tries


def test_one_megabyte_code_block_costs_websocket_bytes_linear_in_its_size(stack):
    srv, url, browser = stack
    result = measure_big_code(browser, url, srv)
    assert result["ws_bytes_per_text_byte"] <= BIG_CODE_TARGET_RATIO, result
    assert result["code_elements_at_end"] == 1, result     # one code block once it is complete


def test_a_code_block_sent_in_segments_ends_as_one_code_block_with_all_its_lines(stack, page):
    srv = stack[0]
    text = big_code_text(lines=12).replace("y" * 2040, "y" * 300) + " tail"
    srv.queue({"text": text, "rate": 6, "ttft": 0.1})      # slow: segments are sent while it grows
    watch = TextWatch(page, ["BIG-CODE-END"])
    send_prompt(page, "some code")
    watch.wait_for_marker("BIG-CODE-END", timeout=30)
    wait_idle(page)
    codes = page.locator(f'{MAIN} [data-testid="stChatMessage"] [data-testid="stCode"]')
    assert codes.count() == 1
    shown = codes.first.inner_text()
    assert all(f"x{i:05d}=" in shown for i in range(12)) and "```" not in shown


def image_reply(host: str) -> str:
    return (f"Look: ![pixel](http://{host}/inline.gif) and ![ref][px] and ![px]\n\n"
            f"[px]: http://{host}/ref.gif\n\n"
            f"`![code](http://{host}/code.gif)` $\\includegraphics{{http://{host}/katex.png}}$ IMG-END")


def remote_images(page) -> list[str]:
    return page.evaluate("""() => [...document.querySelectorAll('img')]
        .map(i => i.getAttribute('src') || '').filter(s => /^(https?:)?\\/\\//.test(s))""")


def test_images_in_a_reply_are_links_and_are_never_fetched(stack, page):
    srv = stack[0]
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    srv.queue({"text": image_reply(TRACKER), "rate": 200})
    send_prompt(page, "show me a picture")
    wait_for_text(page, "IMG-END", timeout=30)
    wait_idle(page)
    assert remote_images(page) == []
    links = page.locator(f'{MAIN} [data-testid="stChatMessage"] a[href*="{TRACKER}"]')
    assert "🖼 pixel" in links.all_inner_texts()
    inline_code = page.locator(f'{MAIN} [data-testid="stChatMessage"] code').all_inner_texts()
    assert any(c.replace("\u2060", "").startswith("![code](http://") for c in inline_code)  # its look
    # The saved message (another path: redrawn from the store) after a reload.
    page.reload()
    wait_for_text(page, "IMG-END", timeout=30)
    wait_idle(page)
    assert remote_images(page) == []
    assert "🖼 pixel" in links.all_inner_texts()
    assert [u for u in requested if TRACKER in u] == []


def test_an_error_text_is_shown_as_plain_text_and_its_image_is_never_fetched(stack, page):
    srv = stack[0]
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    message = f"Bad **request** ![x](http://{TRACKER}/err.gif) :red[ERR-END]"
    srv.queue({"status": 400, "error_body": {"error": {"message": message}}})
    send_prompt(page, "make the server fail")
    wait_for_text(page, "ERR-END", timeout=30)
    wait_idle(page)
    assert remote_images(page) == []
    assert [u for u in requested if TRACKER in u] == []
    alert = page.locator(f'{MAIN} [data-testid="stAlertContentError"]').first.inner_text()
    assert f"Bad **request** ![x](http://{TRACKER}/err.gif) :red[ERR-END]" in alert   # as written
