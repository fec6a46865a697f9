"""The browser harness itself (tests/harness/browser.py), driven against the baseline chat app."""
from __future__ import annotations

import os
import time
import urllib.request

import pytest

from tests.harness.browser import (
    TextWatch,
    WebSocketMeter,
    app_env,
    app_page,
    browser_ms_to_perf,
    chromium,
    send_prompt,
    streamlit_app,
    wait_idle,
)
from tests.harness.processes import ROOT
from tests.harness.scripted_server import scripted_server_process

pytestmark = pytest.mark.timeout(120)
BASELINE = ROOT / "bench" / "baseline_app.py"

# Counts what the page's own WebSocket objects receive, to check the CDP meter against.
_PAGE_WS_COUNTER = """
(() => {
  window.__wsBytes = 0;
  const Native = window.WebSocket;
  window.WebSocket = function (...args) {
    const ws = new Native(...args);
    ws.addEventListener('message', (e) => {
      window.__wsBytes += typeof e.data === 'string' ? new TextEncoder().encode(e.data).length
                        : (e.data.byteLength ?? e.data.size);
    });
    return ws;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
})();
"""


@pytest.fixture(scope="module")
def srv():
    with scripted_server_process(max_lifetime=300) as server:
        yield server


@pytest.fixture(scope="module")
def baseline_url(srv, tmp_path_factory):
    with streamlit_app(BASELINE, app_env(srv, tmp_path_factory.mktemp("data"))) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser, baseline_url, srv):
    srv.reset()
    with app_page(browser, baseline_url) as p:
        yield p


def test_meter_counts_websocket_bytes_of_a_streaming_reply(browser, baseline_url, srv):
    srv.queue({"ttft": 0.1, "tokens": 60, "rate": 200, "token_text": "w{i} "})
    context = browser.new_context()
    try:
        context.add_init_script(_PAGE_WS_COUNTER)
        page = context.new_page()
        # Both counters count from the page load: resetting them one after the other let a
        # frame that arrived in between count in one only.
        meter = WebSocketMeter(page, markers=["w59"])
        page.goto(baseline_url)
        wait_idle(page)
        before, frames_before = meter.bytes_received, meter.frames_received
        send_prompt(page, "Go")
        TextWatch(page, ["w59"]).wait_for_marker("w59")
        wait_idle(page)
        assert meter.bytes_received - before > 60 * 20          # every token re-sends the whole text
        assert meter.frames_received - frames_before >= 10
        # Every frame since the load, in Chromium's network log and in the page's own socket:
        # the two agree once the last frame has reached both.
        deadline = time.perf_counter() + 5
        while meter.bytes_received != page.evaluate("window.__wsBytes"):
            assert time.perf_counter() < deadline, (meter.bytes_received, page.evaluate("window.__wsBytes"))
            page.wait_for_timeout(20)
        assert "w59" in meter.marker_times
        assert meter.frames_sent, "the prompt went out as a BackMsg frame"
    finally:
        context.close()


def test_text_watch_sees_the_reply_grow(page, srv):
    srv.queue({"ttft": 0.2, "tokens": 40, "rate": 20, "token_text": "w{i} "})
    watch = TextWatch(page, ["w0", "w39"])
    t_send = send_prompt(page, "Go")
    watch.wait_for_marker("w39", timeout=15)
    seen = watch.read()
    rec = srv.wait_for_end()
    lengths = [n for n in seen.lengths() if n > 0]
    assert len(set(lengths)) >= 10, lengths
    assert lengths == sorted(lengths), "the live reply only grows"
    times = [t for t, _ in seen.samples]
    assert times == sorted(times)
    # Browser times converted to perf_counter line up with the server's clock.
    assert t_send < seen.marks["w0"]
    assert 0 <= seen.marks["w0"] - rec.t_first_content_sent < 2.0
    assert 0 <= seen.marks["w39"] - rec.t_last_content_sent < 2.0


def test_browser_clock_conversion(page):
    t0 = time.perf_counter()
    browser_now = browser_ms_to_perf(page.evaluate("performance.timeOrigin + performance.now()"))
    t1 = time.perf_counter()
    assert t0 - 0.005 <= browser_now <= t1 + 0.005


def _gone(pid: int) -> bool:
    """Neither the process nor anything in its process group (each child leads its own) is left."""
    for probe in (os.kill, os.killpg):
        try:
            probe(pid, 0)
            return False
        except ProcessLookupError:
            pass
    return True


def test_processes_are_gone_after_the_context_managers_exit(tmp_path):
    with scripted_server_process(max_lifetime=60) as server:
        server_pid = server.proc.pid
        assert server.requests() == []
        with streamlit_app(BASELINE, app_env(server, tmp_path)) as url:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as resp:
                assert resp.status == 200
            port_flag = f"--server.port {url.rsplit(':', 1)[1]} "
            app_pids = [int(p) for p in os.listdir("/proc")
                        if p.isdigit() and "streamlit run" in (cmd := _cmdline(int(p))) and port_flag in cmd]
        assert not _gone(server_pid)
    assert _gone(server_pid)
    assert app_pids and all(_gone(pid) for pid in app_pids)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""
