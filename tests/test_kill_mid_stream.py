"""SIGKILL the app mid-reply: the store keeps the user message, every earlier message, and the
partial reply as it was flushed (twice a second); a restarted app shows it marked interrupted."""
from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.parse

import pytest

from streamchat.store import Store
from tests.harness.browser import (
    CHAT_INPUT,
    TextWatch,
    app_env,
    app_page,
    chromium,
    send_prompt,
    streamlit_app,
    wait_for_text,
    wait_idle,
)
from tests.harness.processes import free_port, live_children
from tests.harness.scripted_server import scripted_server_process

pytestmark = pytest.mark.timeout(300)

RATE = 40.0
TOKENS = 2000
MARGIN_S = 1.0   # the flusher writes every 0.5 s: whatever was sent 1 s before the kill is saved


def token(i: int) -> str:
    return f"k{i} "


def stream_text(n: int) -> str:
    return "".join(token(i) for i in range(n))


def streamlit_proc(port: int) -> subprocess.Popen:
    """The harness's `streamlit run` child serving `port`."""
    procs = [p for p in live_children() if "streamlit" in p.args and str(port) in p.args]
    assert len(procs) == 1, procs
    return procs[0]


def sigkill_group(proc: subprocess.Popen, timeout: float = 15.0) -> float:
    """SIGKILL the whole process group at once (no SIGTERM first); return perf_counter of the kill."""
    t = time.perf_counter()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the app's process group outlived SIGKILL")
    return t


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).items()}


def test_sigkill_mid_stream_loses_under_a_second_and_the_restart_shows_it_interrupted(tmp_path):
    data_dir = tmp_path / "data"
    port = free_port()
    with scripted_server_process(tokens=5, rate=0) as srv:
        env = app_env(srv, data_dir)
        with streamlit_app("app.py", env, port=port, log_path=tmp_path / "run1.log") as url, \
                chromium() as browser:
            proc = streamlit_proc(port)
            with app_page(browser, url) as page:
                # An earlier, finished exchange in the same conversation.
                srv.queue({"tokens": 5, "rate": 0, "token_text": "pre{i} "})
                send_prompt(page, "a short one first")
                wait_for_text(page, "pre4", timeout=30)
                wait_idle(page)

                srv.queue({"tokens": TOKENS, "rate": RATE, "token_text": "k{i} "})
                watch = TextWatch(page, markers=["k0", "k120"])
                send_prompt(page, "now a long one")
                watch.wait_for_marker("k120", timeout=60)       # ~3 s of text on screen
                session = query(page.url)

                # What the server had sent by now (the answer leaves the server after these
                # tokens did); then let it send for 1 s more, and kill the app at once.
                long_request = srv.requests()[-1]
                t_snapshot = time.perf_counter()
                sent_early = long_request.tokens_sent
                assert 100 <= sent_early < TOKENS, long_request
                srv.wait_until(lambda rs: rs[-1] if (rs[-1].t_last_content_sent or 0)
                               >= t_snapshot + MARGIN_S else None, timeout=30,
                               what="1 s more of tokens")
                t_kill = sigkill_group(proc)

            end = srv.wait_for_end(timeout=15)
            assert end.outcome == "disconnected", end
            sent_total = end.tokens_sent
            # The same bound from the pacing: token i goes out at t_first + i / RATE.
            by_rate = int((t_kill - MARGIN_S - end.t_first_content_sent) * RATE) + 1

        # ---- the store, as the killed process left it
        store = Store(data_dir)
        try:
            conversations = store.list_conversations()
            assert [c["id"] for c in conversations] == [session["c"]]
            messages = store.conversation_messages(session["c"])
            assert [(m["role"], m["state"]) for m in messages] == [
                ("user", "done"), ("assistant", "done"), ("user", "done"), ("assistant", "streaming")]
            first_user, first_reply, user, partial = messages
            assert first_user["content"] == "a short one first"
            assert first_reply["content"] == "pre0 pre1 pre2 pre3 pre4 "
            assert first_reply["summary"] and first_reply["metrics"]       # finished, with metrics
            assert user["content"] == "now a long one"
            content = partial["content"]
            assert stream_text(TOKENS).startswith(content), content[-80:]   # nothing garbled
            saved = content.count(" ")
            assert saved >= sent_early, (
                f"lost tokens sent >= {MARGIN_S:g} s before the kill: saved {saved}, the server had "
                f"sent {sent_early} by {t_kill - t_snapshot:.2f} s before the kill "
                f"({by_rate} by the pacing; {sent_total} in all)")
            assert saved <= sent_total
            print(f"saved {saved} tokens; sent {sent_early} >= {t_kill - t_snapshot:.2f} s before "
                  f"the kill ({by_rate} by the pacing), {sent_total} in all")
            assert [r["message_id"] for r in store.runs()] == [first_reply["id"]]
        finally:
            store.close()

        # ---- a new app on the same data: the partial reply is there, marked interrupted
        with streamlit_app("app.py", env, log_path=tmp_path / "run2.log") as url, chromium() as browser:
            with app_page(browser, f"{url}/?c={session['c']}") as page:
                wait_for_text(page, "interrupted", timeout=30)
                wait_for_text(page, content.split()[-1], timeout=10)    # the last saved token
                wait_for_text(page, "pre4", timeout=10)
                wait_for_text(page, "now a long one", timeout=10)
                page.locator(CHAT_INPUT).wait_for(state="visible")
                assert srv.requests()[-1].id == end.id        # nothing was re-sent


# A reload mid-reply: the reply still streams in this process, so the new page shows it live,
# not as interrupted. The server holds the reply after 50 tokens (no race against a token rate):
# after the reload the page must show it with a live Stop that really stops the server.
def test_a_reload_mid_stream_is_not_an_interruption(tmp_path):
    with scripted_server_process(tokens=5, rate=0) as srv, \
            streamlit_app("app.py", app_env(srv, tmp_path / "data")) as url, chromium() as browser:
        srv.queue({"tokens": 160, "rate": RATE, "token_text": "r{i} ", "hold_after": 50})
        with app_page(browser, url) as page:
            watch = TextWatch(page, markers=["r20"])
            send_prompt(page, "reload me mid-reply")
            watch.wait_for_marker("r20", timeout=60)
            page.reload()
            page.locator(CHAT_INPUT).wait_for(state="visible", timeout=30_000)
            wait_for_text(page, "r49", timeout=30)           # re-attached, up to the hold
            assert srv.wait_for_hold(timeout=5).t_end is None   # held until Stop: still running
            assert "interrupted" not in page.locator("body").inner_text()
            page.get_by_role("button", name="Stop", exact=True).click()   # live: Stop is there
            record = srv.wait_for_end(timeout=10)
            assert record.outcome == "disconnected", record
            wait_idle(page)
            wait_for_text(page, "stopped", timeout=15)
            assert "interrupted" not in page.locator("body").inner_text()
