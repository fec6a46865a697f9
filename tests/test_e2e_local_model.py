"""One run of the whole app in Chromium against the real embedded model (no key, no network)."""
import pytest

from tests.harness.browser import (
    TextWatch,
    app_page,
    chromium,
    send_prompt,
    streamlit_app,
    wait_for_text,
    wait_idle,
)

pytestmark = pytest.mark.timeout(240)


def test_chat_with_the_embedded_model(tmp_path, local_model):
    env = {"STREAMCHAT_DATA_DIR": str(tmp_path)}   # no OPENAI_*: the embedded model is used
    with streamlit_app("app.py", env) as url, chromium() as browser, app_page(browser, url) as page:
        page.get_by_text("Settings", exact=True).click()
        box = page.get_by_label("Max tokens", exact=True)
        box.fill("120")
        box.press("Enter")
        wait_idle(page)
        watch = TextWatch(page)
        send_prompt(page, "Tell me a long story about a lighthouse keeper.")
        page.wait_for_selector(".st-key-live-reply", timeout=60_000)
        wait_idle(page, timeout=120)
        wait_for_text(page, "tokens", timeout=10)          # the summary line of the reply
        lengths = [n for n in watch.read().lengths() if n > 0]
        assert len(set(lengths)) >= 2, lengths               # it streamed, not one paint
        ttft = page.locator('[data-testid="stMetric"]').filter(has_text="TTFT").first
        assert "ms" in ttft.inner_text() or " s" in ttft.inner_text()
        tokens = page.locator('[data-testid="stMetric"]').filter(has_text="Output tokens").first
        value = tokens.locator('[data-testid="stMetricValue"]').inner_text()
        assert value.isdigit() and 0 < int(value) <= 120     # server-reported usage, no "~"
