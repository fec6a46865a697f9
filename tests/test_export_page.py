"""Export as a page (streamchat.export_page): one self-contained HTML file that replays a reply at
its recorded pace; model output stays text. Parsed here, then opened from disk in Chromium with
the network blocked."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from streamchat import export_page
from streamchat.recording import Chunk, Recording, decode, encode
from tests.harness.bounds import PROMPTLY_S
from tests.harness.browser import CHROMIUM_ARGS, CHROMIUM_PATH, have_chromium

XSS = ('<script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2">'
       '</script><!-- <a href="http://evil.example/x">link</a> & &amp; \u2028 ')
TTFT, TOKENS, RATE = 0.5, 200, 50.0


def paper_recording(payload: str = XSS, *, side: str | None = None, stream: bool = True) -> Recording:
    """The issue's reply (TTFT 0.5 s, 200 tokens at 50 tok/s) with `payload` as its first token."""
    words = [payload] + [f"w{i} " for i in range(1, TOKENS)]
    chunks = [Chunk(0.0, "", "", 300, False)]   # the role-only first chunk
    chunks += [Chunk(TTFT + i / RATE, w, "", 300 + 60 * (i + 1), True) for i, w in enumerate(words)]
    last = chunks[-1].t
    tpot = (last - TTFT) / (TOKENS - 1)
    figures = {"ttft": {"value": TTFT, "source": "measured"}, "e2e": {"value": last, "source": "measured"},
               "output_tokens": {"value": TOKENS, "source": "server"},
               "decode_tps": {"value": 1 / tpot, "source": "measured"},
               "tpot": {"value": tpot, "source": "measured"},
               "itl_p50": {"value": 0.02, "source": "measured"}, "itl_p95": {"value": 0.02, "source": "measured"},
               "itl_max": {"value": 0.02, "source": "measured"}, "ttfb": {"value": 0.01, "source": "measured"},
               "bytes": {"value": chunks[-1].bytes_total, "source": "measured"}, "chunks": len(chunks)}
    return Recording(chunks=chunks, end=last + 0.001, headers=0.01, bytes=chunks[-1].bytes_total,
                     text="".join(words), metrics=figures, usage={"completion_tokens": TOKENS},
                     settings={"model": "scripted <b>model</b>", "stream": stream, "provider": "remote"},
                     prompt="Say <script>alert(1)</script>", created_at="2025-01-02T09:30:00+00:00",
                     side=side, finish_reason="stop")


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.data: dict[str, str] = {}
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in = dict(attrs).get("id") or tag

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in:
            self.data[self._in] = self.data.get(self._in, "") + data


def conversation_html(rec: Recording) -> str:
    messages = [{"id": "u", "role": "user", "content": rec.prompt},
                {"id": "a", "role": "assistant", "content": rec.text, "summary": "TTFT 500 ms"},
                {"id": "old", "role": "assistant", "content": "an old reply", "summary": ""}]
    return export_page.conversation_page({"title": "Demo </title><script>x()</script>"}, messages,
                                         {"a": decode(encode(rec))})


def test_the_page_loads_nothing_and_keeps_the_payload_as_data():
    page = conversation_html(paper_recording())
    tags = Tags()
    tags.feed(page)
    names = [t for t, _ in tags.tags]
    assert names.count("script") == 2 and "img" not in names and "a" not in names
    assert "link" not in names and "iframe" not in names
    for tag, attrs in tags.tags:   # no attribute points anywhere
        for name, value in attrs.items():
            assert name not in ("src", "href", "action", "srcset", "onerror", "onload"), (tag, name)
            assert not re.search(r"(https?:)?//", value or "") or name == "content", (tag, name, value)
    csp = next(a["content"] for t, a in tags.tags if a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "'unsafe-inline'" not in csp.split("style-src")[0]
    # The data block: no markup inside, and JSON.parse (here json.loads) gives the text back.
    raw = tags.data["replay-data"]
    assert "<" not in raw and ">" not in raw and "&" not in raw
    data = json.loads(raw)
    assert data["messages"][1]["content"].startswith(XSS) and data["messages"][1]["rec"]["c"][1] == XSS
    assert data["messages"][0]["content"] == "Say <script>alert(1)</script>"
    assert "rec" not in data["messages"][2]   # an old reply: no recording
    assert data["no_recording"] == "no recording"
    assert "<title>Demo &lt;/title&gt;&lt;script&gt;x()&lt;/script&gt;</title>" in page
    # Outside the data block, the payload never appears as markup.
    outside = page.replace(raw, "")
    assert "__pwned" not in outside and "evil.example" not in outside


def test_a_compare_page_has_both_sides():
    page = export_page.compare_page([paper_recording("a ", side="stream"),
                                     paper_recording("b ", side="non-stream", stream=False)])
    tags = Tags()
    tags.feed(page)
    data = json.loads(tags.data["replay-data"])
    assert [s["heading"] for s in data["sides"]] == ["Streaming", "Non-streaming"]
    assert data["mark"] == "replay of 2025-01-02 09:30 UTC, scripted <b>model</b>"
    assert data["title"] == "Streaming vs non-streaming"


def test_a_compare_page_of_three_lanes_names_each_and_lays_them_out_in_three_columns():
    page = export_page.compare_page([paper_recording("a ", side="fast"), paper_recording("b ", side="slow"),
                                     paper_recording("c ", side="fast-whole", stream=False)])
    tags = Tags()
    tags.feed(page)
    data = json.loads(tags.data["replay-data"])
    model = "scripted <b>model</b>"   # text only: the page sets it with textContent
    assert [s["heading"] for s in data["sides"]] == [
        f"fast · {model} · streaming", f"slow · {model} · streaming", f"fast-whole · {model} · non-streaming"]
    assert data["title"] == "3 lanes compared"
    assert '"sides n" + data.sides.length' in page and ".sides.n3 {" in page


# ---- Chromium: opened from disk, network blocked --------------------------------------------------
@pytest.mark.skipif(not have_chromium(), reason="needs /usr/bin/chromium")
@pytest.mark.timeout(120)
def test_the_page_replays_from_disk_with_the_network_blocked_and_runs_no_payload(tmp_path):
    from playwright.sync_api import sync_playwright

    path = tmp_path / "reply.html"
    path.write_text(conversation_html(paper_recording()), encoding="utf-8")
    url = path.as_uri()
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(offline=True)
            context.route("**/*", lambda route: route.continue_() if route.request.url == url
                          else route.abort())
            page = context.new_page()
            page.on("request", lambda r: requests.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.get_by_role("button", name="▶ Replay").wait_for()
            assert errors == []
            body = page.locator(".msg.assistant .body").first
            assert body.text_content() == paper_recording().text   # shown before ▶, as text

            for speed_index, speed in ((0, 1.0), (1, 2.0)):
                page.locator("select").first.select_option(str(speed_index))
                page.get_by_role("button", name="▶ Replay").first.click()
                page.wait_for_function(
                    "() => window.replayLog.length && window.replayLog.at(-1).end !== null",
                    timeout=20_000)
                entry = page.evaluate("window.replayLog.at(-1)")
                first = (entry["first"] - entry["start"]) / 1000
                last = (entry["last"] - entry["start"]) / 1000
                # Never sooner than recorded; late by at most PROMPTLY_S on a loaded machine.
                assert TTFT / speed - 0.02 <= first < TTFT / speed + PROMPTLY_S, entry
                assert 4.48 / speed - 0.02 <= last < 4.48 / speed + PROMPTLY_S, entry
                assert body.text_content() == paper_recording().text
                panel = page.locator(".msg.assistant .panel").first.inner_text()
                assert "500 ms" in panel and "200" in panel and "4.48 s" in panel

            # Stop works.
            page.locator("select").first.select_option("0")
            page.get_by_role("button", name="▶ Replay").first.click()
            page.wait_for_timeout(1000)
            page.get_by_role("button", name="⏹ Stop").first.click()
            entry = page.evaluate("window.replayLog.at(-1)")
            assert entry["stopped"] and entry["chunks"] < 150
            assert "replay stopped" in page.locator(".status").first.text_content()

            assert page.evaluate("window.__pwned") is None
            assert page.locator("img").count() == 0 and page.locator("main a").count() == 0
            assert errors == []
        finally:
            browser.close()
    assert requests == [url]
