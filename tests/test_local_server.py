"""The embedded llama.cpp server, for real: SmolLM2 on the CPU in a child process (the tests that
start one ask for `local_model` or `local_server`: the model tier)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import openai
import pytest

from streamchat.local_server import (
    LocalModelError,
    LocalServer,
    default_model_path,
    get_shared_server,
    stop_shared_server,
)
from streamchat.tokens import count_text_tokens

ROOT = Path(__file__).resolve().parent.parent
PROMPT = [{"role": "user", "content": "Write a long essay about the history of Rome."}]


def _gone(pid: int) -> bool:
    """True once the process has exited (a zombie waiting for init to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return _gone(pid)


@pytest.fixture(scope="module")
def client(local_server):
    return openai.OpenAI(base_url=local_server.base_url, api_key=local_server.api_key, max_retries=0, timeout=30)


def _slots_busy(local_server: LocalServer) -> list[bool]:
    return [s["is_processing"] for s in local_server._request("/slots")]


def test_default_model_is_the_bundled_gguf(local_model):
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file()


@pytest.mark.timeout(60)
def test_streamed_reply_has_content_usage_and_timings(local_server, client):
    chunks = []
    with client.chat.completions.create(
        model=local_server.model_name,
        messages=[{"role": "user", "content": "Say hello."}],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=24,
    ) as stream:
        for chunk in stream:
            chunks.append(chunk)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    last = chunks[-1]
    assert last.choices == []  # the usage-only chunk
    assert 0 < last.usage.completion_tokens <= 24
    assert last.usage.prompt_tokens > 0
    timings = last.model_extra["timings"]
    assert timings["predicted_n"] == last.usage.completion_tokens
    for key in ("prompt_n", "prompt_ms", "predicted_ms", "predicted_per_second", "cache_n"):
        assert key in timings


def test_models_endpoint_reports_the_alias(local_server, client):
    assert [m.id for m in client.models.list()] == [local_server.model_name]


def test_server_requires_the_key(local_server):
    with urllib.request.urlopen(local_server.base_url.removesuffix("/v1") + "/health", timeout=5) as r:
        assert r.status == 200  # health needs no key
    bad = openai.OpenAI(base_url=local_server.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    assert local_server.api_key not in repr(local_server)
    assert local_server.api_key not in "\n".join(local_server._log)


def test_tokenize_is_exact(local_server):
    assert local_server.tokenize("hello world") == 2
    assert local_server.tokenize("") == 0
    count = count_text_tokens("hello world", local_server.model_name, tokenize=local_server.tokenize)
    assert (count.n, count.source, count.method) == (2, "exact", "llama.cpp /tokenize")


@pytest.mark.timeout(60)
def test_two_streams_progress_concurrently(local_server, client):
    stamps: dict[int, list[float]] = {0: [], 1: []}

    def run(i: int) -> None:
        with client.chat.completions.create(
            model=local_server.model_name, messages=PROMPT, stream=True, max_tokens=60, extra_body={"ignore_eos": True}
        ) as stream:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    stamps[i].append(time.monotonic())

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stamps[0]) > 10 and len(stamps[1]) > 10
    # Both had their first token before either one finished: they were decoded side by side.
    assert max(stamps[0][0], stamps[1][0]) < min(stamps[0][-1], stamps[1][-1])


@pytest.mark.timeout(60)
def test_closing_streams_frees_their_slots(local_server, client):
    # Fill both slots with long replies (2000 tokens take ~40 s at 2 x 50 tok/s), close them mid-way.
    streams = [
        client.chat.completions.create(
            model=local_server.model_name, messages=PROMPT, stream=True, max_tokens=2000, extra_body={"ignore_eos": True}
        )
        for _ in range(2)
    ]
    for stream in streams:
        for i, _ in enumerate(stream):
            if i == 5:
                break
    assert all(_slots_busy(local_server))
    for stream in streams:
        stream.close()

    deadline = time.monotonic() + 3
    while any(_slots_busy(local_server)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(_slots_busy(local_server))

    t0 = time.monotonic()
    with client.chat.completions.create(
        model=local_server.model_name, messages=[{"role": "user", "content": "Hi"}], stream=True, max_tokens=8
    ) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
    assert time.monotonic() - t0 < 3


def test_missing_model_file_is_a_clear_error():
    t0 = time.monotonic()
    with pytest.raises(LocalModelError) as e:
        LocalServer("/nonexistent/model.gguf").start()
    assert time.monotonic() - t0 < 1
    msg = str(e.value)
    assert "not found: /nonexistent/model.gguf" in msg and "LOCAL_MODEL_PATH" in msg


def test_text_file_as_model_is_a_clear_error(tmp_path):
    bad = tmp_path / "notes.gguf"
    bad.write_text("this is not a model\n")
    with pytest.raises(LocalModelError, match="not a GGUF file"):
        LocalServer(bad).start()


@pytest.mark.timeout(30)
def test_broken_gguf_fails_fast_with_the_reason(tmp_path, local_model):
    broken = tmp_path / "broken.gguf"
    with open(default_model_path(), "rb") as f:
        broken.write_bytes(f.read(64 * 1024))  # valid magic, truncated metadata
    s = LocalServer(broken)
    t0 = time.monotonic()
    with pytest.raises(LocalModelError) as e:
        s.start(timeout=20)
    assert time.monotonic() - t0 < 15  # the child's exit is noticed, not the timeout
    msg = str(e.value)
    assert "could not load" in msg and "(exit code 3)" in msg
    assert "gguf_init_from_reader: failed to read key-value pairs" in msg  # llama.cpp's reason
    assert "Traceback" not in msg and s.api_key not in msg
    assert s.pid is None and not s.is_alive()


@pytest.mark.timeout(60)
def test_stop_leaves_no_process_and_ensure_running_recovers(local_model):
    s = LocalServer()
    s.ensure_running()
    first = s.pid
    os.kill(first, signal.SIGKILL)  # a crash
    deadline = time.monotonic() + 5
    while s.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not s.is_alive()
    s.ensure_running()
    assert s.pid != first and s.tokenize("hello") > 0
    pid = s.pid
    s.stop()
    s.stop()  # idempotent
    assert _gone(pid) and s.pid is None and not s.is_alive()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "SIGINT", "exit"])
def test_child_dies_with_its_parent(how, local_model):
    code = (
        "import signal, sys\n"
        # A runner started in the background (`cmd &`) passes SIGINT on ignored; undo that.
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from streamchat.local_server import LocalServer\n"
        "s = LocalServer(); s.start()\n"
        "print(s.pid, flush=True)\n"
        "sys.stdin.read()\n"  # until the test closes our stdin
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        child = int(parent.stdout.readline())
        assert not _gone(child)
        if how == "exit":
            parent.stdin.close()  # normal exit: atexit stops the child
        else:
            parent.send_signal(getattr(signal, how))  # SIGINT: KeyboardInterrupt, then atexit
        parent.wait(10)
        assert _wait_gone(child, 5)
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.timeout(60)
def test_shared_server_is_a_singleton(local_model):
    try:
        a = get_shared_server()
        b = get_shared_server(default_model_path())
        assert a is b and a.is_alive()
    finally:
        stop_shared_server()
    assert not a.is_alive()
