"""The failure matrix (every failure: a clear message, nothing lost) in a real Chromium
against `streamlit run` and the scripted model server: for every row the page shows one clear
message naming the cause and the next step, the user's message and any partial reply stay on the
page and in the store (the reply marked "failed"), and the next request works (Retry / Trim).

Plus two rows that need their own app instance: an unreachable server, and the embedded llama.cpp
server being killed (it is restarted on the next request).
"""
import os
import re
import signal
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from streamchat.store import Store
from tests.harness.browser import (
    LIVE_REPLY,
    MAIN,
    app_page,
    send_prompt,
    streamlit_app,
    wait_for_text,
    wait_idle,
)
from tests.harness.processes import free_port

pytestmark = pytest.mark.timeout(90)

ERROR_ALERT = f'{MAIN} [data-testid="stAlertContentError"]'
TRACEBACK = '[data-testid="stException"]'
GOOD = {"tokens": 3, "rate": 0, "token_text": "okay{i} "}   # the reply after Retry
GOOD_TEXT = "okay0 okay1 okay2 "


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def store(data_dir, stack):
    s = Store(data_dir)
    yield s
    s.close()


# ---------------------------------------------------------------- helpers

def set_number(page, expander: str, label: str, value) -> None:
    """Open a sidebar expander (if closed) and type a number into one of its inputs."""
    box = page.get_by_label(label, exact=True)
    if not box.is_visible():
        page.get_by_text(expander, exact=True).click()
        box.wait_for(state="visible", timeout=10_000)
    box.fill(str(value))
    box.press("Enter")
    wait_idle(page)


def conversation_id(page, timeout: float = 15.0) -> str:
    """The open conversation, from the page URL (?c=...)."""
    page.wait_for_function("() => new URLSearchParams(location.search).has('c')",
                           timeout=timeout * 1000, polling=50)
    return parse_qs(urlsplit(page.url).query)["c"][0]


def wait_saved(store: Store, conv_id: str, n_assistant: int | None = None,
               timeout: float = 15.0) -> list[dict]:
    """The conversation's messages once its n-th assistant message (default: the last message,
    which must be an assistant's) is no longer streaming."""
    deadline = time.perf_counter() + timeout
    while True:
        messages = store.conversation_messages(conv_id)
        replies = [m for m in messages if m["role"] == "assistant"]
        if n_assistant is None:
            if messages and messages[-1]["role"] == "assistant" and messages[-1]["state"] != "streaming":
                return messages
        elif len(replies) >= n_assistant and replies[n_assistant - 1]["state"] != "streaming":
            return messages
        if time.perf_counter() > deadline:
            raise TimeoutError(f"assistant message {n_assistant} still not saved after {timeout:g}s: "
                               f"{[(m['role'], m['state']) for m in messages]}")
        time.sleep(0.05)


def wait_for_error(page, timeout: float = 20.0) -> list[str]:
    """Wait for the failure message in the main area; return the texts of all error alerts there."""
    page.locator(ERROR_ALERT).first.wait_for(state="visible", timeout=timeout * 1000)
    wait_idle(page)
    return page.locator(ERROR_ALERT).all_inner_texts()


def assert_one_clear_message(page, words: list[str]) -> str:
    errors = wait_for_error(page)
    assert len(errors) == 1, errors
    for word in words:
        assert word.lower() in errors[0].lower(), (word, errors[0])
    assert page.locator(TRACEBACK).count() == 0, page.locator(TRACEBACK).all_inner_texts()
    return errors[0]


def assert_saved_failed(store: Store, conv_id: str, prompt: str, partial: str | None = None) -> dict:
    """The user's message and the failed reply (with its partial text, if any) are in the store."""
    messages = wait_saved(store, conv_id)
    user, reply = messages[-2], messages[-1]
    assert (user["role"], user["content"], user["state"]) == ("user", prompt, "done"), user
    assert (reply["role"], reply["state"]) == ("assistant", "failed"), reply
    assert reply["error"], reply
    if partial:
        assert partial in reply["content"], reply["content"]
    return reply


def retry_works(page, srv, store: Store, conv_id: str, prompt: str, button: str = "Retry",
                n_assistant: int = 2) -> dict:
    """Queue a good script, press the button: the reply appears, the server saw the same last user
    message again, and the new reply is saved as done."""
    n_before = len(srv.requests())
    srv.queue(GOOD)
    click_button(page, button)
    wait_for_text(page, "okay2", timeout=20, root=MAIN)
    wait_idle(page)
    record = srv.wait_for_request(n_before + 1, timeout=10)
    assert record.body["messages"][-1] == {"role": "user", "content": prompt}, record.body
    messages = wait_saved(store, conv_id, n_assistant)
    reply = [m for m in messages if m["role"] == "assistant"][n_assistant - 1]
    assert (reply["state"], reply["content"], reply["error"]) == ("done", GOOD_TEXT, None), reply
    assert [m for m in messages if m["role"] == "user"][-1]["content"] == prompt
    return record


def click_button(page, name: str, timeout: float = 20.0) -> None:
    """Click the one button whose label contains `name`. While a slow re-run is still going, the
    previous run's elements are still on the page (stale): wait until only one such button is left."""
    buttons = page.get_by_role("button", name=name)
    deadline = time.perf_counter() + timeout
    while buttons.count() != 1:
        if time.perf_counter() > deadline:
            raise AssertionError(f"{buttons.count()} buttons named {name!r} after {timeout:g}s")
        page.wait_for_timeout(50)
    buttons.click(timeout=timeout * 1000)


def main_text(page) -> str:
    return page.locator(MAIN).inner_text()


# ---------------------------------------------------------------- HTTP errors before streaming

HTTP_ROWS = [
    pytest.param({"status": 401}, ["rejected the API key", "401", "check the API key"], id="401"),
    pytest.param({"status": 403}, ["refused access", "403", "check the API key"], id="403"),
    pytest.param({"status": 404, "error_body": {"error": {
        "message": "The model `scripted` does not exist", "type": "invalid_request_error",
        "code": "model_not_found"}}},
        ["model 'scripted' was not found", "404", "pick another model"], id="404-model"),
    pytest.param({"status": 429, "retry_after": 7}, ["rate limited", "429", "Retry after 7 s"],
                 id="429"),
    pytest.param({"status": 500}, ["server failed (500)", "retry"], id="500"),
    pytest.param({"status": 503}, ["server failed (503)", "retry"], id="503"),
]


@pytest.mark.parametrize("script, words", HTTP_ROWS)
def test_http_error_shows_one_clear_message_and_retry_works(stack, store, page, script, words):
    srv = stack[0]
    prompt = f"http error {script['status']} please"
    srv.queue(script)
    send_prompt(page, prompt)
    assert_one_clear_message(page, words)
    wait_for_text(page, prompt, root=MAIN)
    conv = conversation_id(page)
    assert_saved_failed(store, conv, prompt)
    assert srv.requests()[-1].outcome == "error"
    retry_works(page, srv, store, conv, prompt)


# ---------------------------------------------------------------- timeouts and broken streams

STREAM_ROWS = [
    pytest.param({"ttft": 30, "prefill_silent": True}, {"First-token timeout (s)": 1},
                 ["no reply started within 1 s", "retry", "first-token timeout"], None,
                 id="first-token-timeout"),
    pytest.param({"tokens": 20, "rate": 0, "token_text": "part{i} ", "stall_after": 5,
                  "stall_timeout": 30}, {"Idle timeout between chunks (s)": 1},
                 ["stalled", "1 s", "partial reply is kept", "retry", "idle timeout"], "part4",
                 id="stall-mid-stream"),
    pytest.param({"tokens": 20, "rate": 0, "token_text": "part{i} ", "drop_after": 5}, {},
                 ["connection", "partial reply is kept", "retry"], "part4",
                 id="dropped-mid-stream"),
    pytest.param({"tokens": 20, "rate": 0, "token_text": "part{i} ", "malformed_after": 5}, {},
                 ["malformed chunk", "partial reply is kept", "retry"], "part4",
                 id="malformed-chunk"),
    pytest.param({"empty": True}, {}, ["empty reply", "retry"], None, id="empty-reply"),
]


@pytest.mark.parametrize("script, timeouts, words, partial", STREAM_ROWS)
def test_stream_failure_keeps_partial_reply_and_retry_works(stack, store, page, script, timeouts,
                                                             words, partial):
    srv = stack[0]
    for label, value in timeouts.items():
        set_number(page, "Advanced: timeouts", label, value)
    prompt = "stream failure " + " ".join(k.replace("_", " ") for k in sorted(script))
    srv.queue(script)
    send_prompt(page, prompt)
    message = assert_one_clear_message(page, words)
    wait_for_text(page, prompt, root=MAIN)
    if partial:
        wait_for_text(page, "part0 part1 part2 part3 part4", root=MAIN)
        assert "part5" not in main_text(page)
    else:
        assert "partial" not in message.lower()
    conv = conversation_id(page)
    assert_saved_failed(store, conv, prompt, partial and "part0 part1 part2 part3 part4")
    retry_works(page, srv, store, conv, prompt)


# ---------------------------------------------------------------- context too long: trim

def test_context_too_long_offers_trim_and_resends_fewer_messages(stack, store, page):
    srv = stack[0]
    srv.queue({"tokens": 3, "rate": 0, "token_text": "first{i} "})
    send_prompt(page, "the first question")
    wait_for_text(page, "first2", timeout=20, root=MAIN)
    wait_idle(page)
    srv.queue({"status": 400, "error_body": {"error": {
        "message": "This model's maximum context length is 8192 tokens. However, your messages "
                   "resulted in 9001 tokens.", "type": "invalid_request_error",
        "code": "context_length_exceeded"}}})
    prompt = "the second question"
    send_prompt(page, prompt)
    assert_one_clear_message(page, ["too long for the model's context", "trim the oldest messages"])
    wait_for_text(page, prompt, root=MAIN)
    wait_for_text(page, "the first question", root=MAIN)
    conv = conversation_id(page)
    assert_saved_failed(store, conv, prompt)
    failed_request = srv.requests()[-1].body["messages"]
    assert {"role": "user", "content": "the first question"} in failed_request

    srv.queue(GOOD)
    click_button(page, "Trim oldest messages and retry")
    wait_for_text(page, "okay2", timeout=20, root=MAIN)
    wait_idle(page)
    sent = srv.requests()[-1].body["messages"]
    assert len(sent) < len(failed_request), (sent, failed_request)
    assert sent[-1] == {"role": "user", "content": prompt}
    assert {"role": "user", "content": "the first question"} not in sent   # the oldest went first
    messages = wait_saved(store, conv, 3)
    assert (messages[-1]["state"], messages[-1]["content"]) == ("done", GOOD_TEXT)
    assert [m["content"] for m in messages if m["role"] == "user"] == ["the first question", prompt]
    wait_for_text(page, "oldest messages are left out", root=MAIN)   # says what was done
    wait_for_text(page, "the first question", root=MAIN)            # still on screen


# ---------------------------------------------------------------- server unreachable

def test_unreachable_server_names_the_url_and_the_app_stays_usable(stack, tmp_path):
    srv, _, browser = stack
    dead_url = f"http://127.0.0.1:{free_port()}/v1"   # nothing listens there
    env = {"OPENAI_BASE_URL": dead_url, "OPENAI_API_KEY": "sk-unreachable", "OPENAI_MODEL": "scripted",
           "STREAMCHAT_DATA_DIR": str(tmp_path)}
    with streamlit_app("app.py", env) as url, app_page(browser, url) as page:
        prompt = "is anybody there?"
        send_prompt(page, prompt)
        assert_one_clear_message(page, [f"Cannot reach {dead_url}", "server is running",
                                        "base URL"])
        wait_for_text(page, prompt, root=MAIN)
        conv = conversation_id(page)
        unreachable_store = Store(tmp_path)
        try:
            assert_saved_failed(unreachable_store, conv, prompt)
            # The fix the message suggests: point the base URL at a live server, then Retry.
            page.get_by_text("Settings", exact=True).click()
            box = page.get_by_label("Base URL")
            box.fill(srv.base_url)
            box.press("Enter")
            wait_idle(page)
            srv.reset()
            retry_works(page, srv, unreachable_store, conv, prompt)
        finally:
            unreachable_store.close()


# ---------------------------------------------------------------- embedded server crash

def _proc_cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, from /proc/PID/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def streamlit_pid(port: int) -> int:
    for pid in _pids():
        cmd = _proc_cmdline(pid)
        if "streamlit" in cmd and "run" in cmd and "--server.port" in cmd \
                and cmd[cmd.index("--server.port") + 1] == str(port):
            return pid
    raise AssertionError(f"no streamlit process on port {port}")


def local_server_child(parent: int, timeout: float = 60.0, not_pid: int | None = None) -> int:
    """The live `python -m streamchat._local_server_child` process whose parent is `parent`."""
    deadline = time.perf_counter() + timeout
    while True:
        for pid in _pids():
            stat = _proc_stat(pid)
            if stat and stat[1] == parent and stat[0] != "Z" and pid != not_pid \
                    and "streamchat._local_server_child" in _proc_cmdline(pid):
                return pid
        if time.perf_counter() > deadline:
            raise TimeoutError(f"no embedded server child of {parent} after {timeout:g}s")
        time.sleep(0.1)


def kill_and_wait(pid: int, timeout: float = 10.0) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.perf_counter() + timeout
    while (stat := _proc_stat(pid)) is not None and stat[0] != "Z":   # gone, or dead and unreaped
        if time.perf_counter() > deadline:
            raise TimeoutError(f"process {pid} still alive {timeout:g}s after SIGKILL")
        time.sleep(0.05)


@pytest.mark.timeout(240)
def test_embedded_server_killed_is_restarted_on_the_next_request(stack, tmp_path, local_model):
    browser = stack[2]
    env = {"STREAMCHAT_DATA_DIR": str(tmp_path)}   # no OPENAI_*: the embedded model is used
    with streamlit_app("app.py", env) as url, app_page(browser, url) as page:
        local_store = Store(tmp_path)
        try:
            app_pid = streamlit_pid(urlsplit(url).port)
            set_number(page, "Settings", "Max tokens", 16)

            # 1. A reply from the embedded model.
            send_prompt(page, "Say hello.")
            conv = conversation_id(page)
            first = [m for m in wait_saved(local_store, conv, 1, timeout=90) if m["role"] == "assistant"]
            assert first[-1]["state"] == "done" and first[-1]["content"], first[-1]
            wait_idle(page)

            # 2. Kill the idle server: the next message restarts it and gets a reply.
            child = local_server_child(app_pid)
            kill_and_wait(child)
            send_prompt(page, "Say hello again.")
            second = [m for m in wait_saved(local_store, conv, 2, timeout=60) if m["role"] == "assistant"]
            assert second[-1]["state"] == "done" and second[-1]["content"], second[-1]
            wait_idle(page)
            assert page.locator(ERROR_ALERT).count() == 0, page.locator(ERROR_ALERT).all_inner_texts()
            restarted = local_server_child(app_pid, not_pid=child)

            # 3. Kill it mid-reply: a clear message, the partial reply kept, Retry works.
            set_number(page, "Settings", "Max tokens", 400)
            prompt = "Write a long story about a lighthouse keeper and a storm."
            send_prompt(page, prompt)
            page.wait_for_function(   # text is streaming in, and the reply is still going
                "sel => (document.querySelector(sel)?.innerText || '').trim().length > 0"
                " && [...document.querySelectorAll('button')].some(b => b.innerText.trim() === 'Stop')",
                arg=LIVE_REPLY, timeout=60_000, polling=20)
            kill_and_wait(restarted)
            assert_one_clear_message(page, ["embedded model server stopped",
                                            "partial reply is kept", "press Retry"])
            wait_for_text(page, prompt, root=MAIN)
            reply = assert_saved_failed(local_store, conv, prompt)
            assert reply["content"].strip(), reply
            word = max(re.findall(r"[A-Za-z]{3,}", reply["content"]) or [reply["content"].strip()],
                       key=len)
            wait_for_text(page, word, root=MAIN)                       # the partial text is shown

            set_number(page, "Settings", "Max tokens", 16)
            click_button(page, "Retry")
            fourth = [m for m in wait_saved(local_store, conv, 4, timeout=60) if m["role"] == "assistant"]
            assert fourth[-1]["state"] == "done" and fourth[-1]["content"], fourth[-1]
            local_server_child(app_pid, not_pid=restarted)
        finally:
            local_store.close()
