"""The scripted server behaves as scripted, seen through the real openai client and raw sockets."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import openai
import pytest

from tests.harness.bounds import PROMPTLY_S
from tests.harness.scripted_server import RequestRecord, Script, ScriptedServer, scripted_server_process

pytestmark = pytest.mark.timeout(30)
MESSAGES = [{"role": "user", "content": "hello there"}]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def srv():
    with ScriptedServer(Script(tokens=5, rate=1000), max_lifetime=120) as server:
        yield server


def client(srv: ScriptedServer, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="sk-secret", max_retries=0, **kw)


def collect(stream) -> tuple[list, list[str]]:
    chunks = list(stream)
    return chunks, [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]


def http_json(url: str, payload=None):
    data = None if payload is None else json.dumps(payload).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=5) as resp:
        return json.loads(resp.read())


def test_stream_shape_with_usage(srv):
    srv.set_script(Script(tokens=7, rate=1000, token_text="t{i} "))
    with client(srv) as c:
        chunks, texts = collect(c.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    assert texts == [f"t{i} " for i in range(7)]
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 7
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + 7
    rec = srv.wait_for_end()
    assert rec.completed and rec.outcome == "completed" and rec.tokens_sent == 7 and rec.stream
    assert rec.body["model"] == "m" and rec.headers["authorization"] == "Bearer sk-secret"
    assert rec.to_json()["headers"]["authorization"] == "***" and rec.bytes_sent > 0


def test_usage_only_when_asked_and_allowed(srv):
    with client(srv) as c:
        chunks, _ = collect(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
        assert all(ch.usage is None and ch.choices for ch in chunks)
        srv.set_script(Script(tokens=3, send_usage=False, timings=True))
        chunks, texts = collect(c.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert len(texts) == 3 and all(ch.usage is None for ch in chunks)
    timings = chunks[-1].model_extra["timings"]
    assert timings["predicted_n"] == 3 and timings["predicted_per_second"] == pytest.approx(100.0)


def test_text_paragraphs_and_empty(srv):
    with client(srv) as c:
        srv.queue(Script(text="Hello  world,\nagain "), Script(tokens=4, token_text="a", paragraph_every=2),
                  Script(empty=True))
        _, texts = collect(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
        assert texts == ["Hello  ", "world,\n", "again "]
        _, texts = collect(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
        assert "".join(texts) == "aa\n\naa\n\n"
        chunks, texts = collect(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
        assert texts == [] and chunks[-1].choices[0].finish_reason == "stop"
        _, texts = collect(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
        assert len(texts) == 5  # queue used up: back to the default


def test_ttft_and_rate_are_respected(srv):
    srv.set_script(Script(ttft=0.3, tokens=50, rate=100))
    with client(srv) as c:
        c.models.list()  # warm up the connection and the client code paths
        t0 = time.perf_counter()
        stamps = []
        for chunk in c.chat.completions.create(model="m", messages=MESSAGES, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                stamps.append(time.perf_counter())
    ttft = stamps[0] - t0
    assert len(stamps) == 50
    # Never early (the schedule is absolute: token i at ttft + i / rate); late only by what a
    # busy machine adds. The exact figures are the bench's business, not a test's.
    assert 0.3 <= ttft < 0.3 + PROMPTLY_S, ttft
    assert stamps[-1] - stamps[0] >= 49 / 100 - 0.01, stamps[-1] - stamps[0]
    assert stamps[-1] - t0 < 0.3 + 0.49 + PROMPTLY_S
    rec = srv.wait_for_end()
    assert 0.3 <= rec.t_first_content_sent - rec.t_received < 0.3 + PROMPTLY_S
    assert t0 < rec.t_received < stamps[0]  # one clock on both sides


def test_prefill_silent_sends_no_headers_until_ttft(srv):
    srv.set_script(Script(ttft=0.3, tokens=2, prefill_silent=True))
    with client(srv) as c:
        t0 = time.perf_counter()
        stream = c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        t_headers = time.perf_counter() - t0
        stream.close()
    assert t_headers >= 0.3
    rec = srv.wait_for_end()
    assert rec.t_headers_sent - rec.t_received >= 0.3


def test_non_stream_waits_for_whole_generation(srv):
    srv.set_script(Script(ttft=0.2, tokens=20, rate=100, token_text="w ", timings=True))
    with client(srv) as c:
        t0 = time.perf_counter()
        resp = c.chat.completions.create(model="m", messages=MESSAGES)
        elapsed = time.perf_counter() - t0
    assert resp.choices[0].message.content == "w " * 20
    assert resp.usage.completion_tokens == 20 and resp.model_extra["timings"]["predicted_n"] == 20
    assert 0.4 <= elapsed < 0.4 + PROMPTLY_S, elapsed   # never early; late only by the load
    rec = srv.wait_for_end()
    assert not rec.stream and rec.completed and rec.tokens_sent == 20


def test_429_arrives_as_rate_limit_error(srv):
    srv.set_script(Script(status=429, retry_after=2))
    with client(srv) as c, pytest.raises(openai.RateLimitError) as err:
        c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert err.value.response.headers["retry-after"] == "2"
    assert err.value.code == "rate_limit_exceeded" and "429" in err.value.message
    assert srv.wait_for_end().outcome == "error"


def test_drop_mid_stream_is_a_connection_error(srv):
    srv.set_script(Script(tokens=10, drop_after=3))
    texts = []
    with client(srv) as c, pytest.raises(openai.APIConnectionError):
        for chunk in c.chat.completions.create(model="m", messages=MESSAGES, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                texts.append(chunk.choices[0].delta.content)
    assert len(texts) == 3
    rec = srv.wait_for_end()
    assert rec.outcome == "dropped" and rec.tokens_sent == 3 and rec.t_disconnected is None


def test_malformed_chunk_raises(srv):
    srv.set_script(Script(tokens=5, malformed_after=2))
    with client(srv) as c, pytest.raises(json.JSONDecodeError):
        collect(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))


def test_stall_then_client_timeout_is_seen_as_disconnect(srv):
    srv.set_script(Script(tokens=10, stall_after=2))
    with client(srv, timeout=openai.Timeout(5, read=0.3)) as c, pytest.raises(openai.APITimeoutError):
        collect(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    t_gone = time.perf_counter()
    assert abs(srv.wait_for_disconnect() - t_gone) < PROMPTLY_S
    assert srv.requests()[-1].tokens_sent == 2


def test_cancel_during_silent_prefill_is_seen_promptly(srv):
    srv.set_script(Script(ttft=5, prefill_silent=True))

    async def run() -> float:
        async with openai.AsyncOpenAI(base_url=srv.base_url, api_key="x", max_retries=0) as c:
            task = asyncio.create_task(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
            await asyncio.to_thread(srv.wait_for_requests, 1)
            t_cancel = time.perf_counter()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return t_cancel

    t_cancel = asyncio.run(run())
    t_disc = srv.wait_for_disconnect(timeout=2)
    assert 0 <= t_disc - t_cancel < PROMPTLY_S
    rec = srv.requests()[-1]
    assert rec.t_headers_sent is None and rec.tokens_sent == 0 and not rec.completed


def test_raw_socket_close_while_hanging_is_seen(srv):
    srv.set_script(Script(hang_before_headers=5))
    body = json.dumps({"model": "m", "messages": MESSAGES}).encode()
    with socket.create_connection(("127.0.0.1", srv.port)) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        srv.wait_for_requests(1)
        t_close = time.perf_counter()
    assert 0 <= srv.wait_for_disconnect() - t_close < PROMPTLY_S


def test_close_mid_stream_is_seen_promptly(srv):
    srv.set_script(Script(tokens=1000, rate=100))
    with client(srv) as c:
        with c.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:
            seen = 0
            for chunk in stream:
                seen += bool(chunk.choices and chunk.choices[0].delta.content)
                if seen == 5:
                    break
            t_close = time.perf_counter()
    t_disc = srv.wait_for_disconnect()
    assert 0 <= t_disc - t_close < PROMPTLY_S
    rec = srv.requests()[-1]
    assert rec.outcome == "disconnected" and 5 <= rec.tokens_sent < 5 + 100 * PROMPTLY_S and not rec.completed


def test_model_name_scripting(srv):
    with client(srv) as c:
        _, texts = collect(c.chat.completions.create(
            model="script:tokens=3,token_text=x%20,rate=1000", messages=MESSAGES, stream=True))
        assert texts == ["x "] * 3
        with pytest.raises(openai.NotFoundError):
            c.chat.completions.create(model="script:status=404", messages=MESSAGES)
        with pytest.raises(openai.BadRequestError, match="unknown script fields"):
            c.chat.completions.create(model="script:bogus=1", messages=MESSAGES)
        assert [m.id for m in c.models.list()][0] == "scripted"
    assert Script.from_spec("ttft=0.5,prefill_silent=true,drop_after=none,text=1") == \
        Script(ttft=0.5, prefill_silent=True, text="1")


def test_http_control(srv):
    root = srv.base_url.removesuffix("/v1")
    http_json(root + "/_control/script", {"tokens": 2, "token_text": "d"})
    http_json(root + "/_control/queue", [{"tokens": 1, "token_text": "q"}])
    with client(srv) as c:
        _, first = collect(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
        _, second = collect(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert (first, second) == (["q"], ["d", "d"])
    srv.wait_for_end(2)
    records = http_json(root + "/_control/requests")
    assert [r["tokens_sent"] for r in records] == [1, 2]
    assert records[0]["headers"]["authorization"] == "***"
    assert set(records[0]) == {f for f in RequestRecord.__dataclass_fields__}
    http_json(root + "/_control/reset", {})
    assert srv.requests() == [] and http_json(root + "/health") == {"status": "ok"}


def test_standalone_prints_port_and_exits_when_stdin_closes():
    with subprocess.Popen([sys.executable, "-m", "tests.harness.scripted_server", "--port", "0", "--tokens", "3",
                           "--max-lifetime", "60"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}) as proc:
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 10)
            assert ready, "no PORT= line within 10 s"
            line = proc.stdout.readline().decode().strip()
            assert line.startswith("PORT=")
            port = int(line.split("=", 1)[1])
            assert http_json(f"http://127.0.0.1:{port}/health") == {"status": "ok"}
            with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0) as c:
                _, texts = collect(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
            assert len(texts) == 3
            proc.stdin.close()
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


@pytest.mark.parametrize("where", ["in process", "child process"])
def test_both_servers_have_one_api_and_the_gate_holds_until_released(srv, where):
    with contextlib.ExitStack() as stack:
        server = srv if where == "in process" else stack.enter_context(scripted_server_process(tokens=5, rate=0))
        server.set_script(tokens=3, rate=0, token_text="d")
        server.queue(Script(tokens=6, rate=0, token_text="h{i} ", hold_after=2), {"tokens": 1, "token_text": "q"})
        with client(server) as c:
            with c.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:
                texts = []
                for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        texts.append(chunk.choices[0].delta.content)
                    if len(texts) == 2:
                        held = server.wait_for_hold(timeout=5)
                        time.sleep(0.2)            # held: nothing more comes, the reply is running
                        assert server.requests()[-1].tokens_sent == 2 and held.t_end is None
                        server.release()
            assert texts == [f"h{i} " for i in range(6)]
            _, queued = collect(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
            _, default = collect(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
        assert (queued, default) == (["q"], ["d"] * 3)
        records = server.wait_for_requests(3)
        assert all(isinstance(r, RequestRecord) for r in records)
        first = server.wait_for_end(records[0].id)
        assert first.outcome == "completed" and first.t_held <= first.t_released <= first.t_end
        assert server.wait_for_request(2).id == records[1].id
        server.reset()
        assert server.requests() == []


def test_raw_mode_sends_the_pieces_as_they_are():
    pieces = [b'data: {"choices":[{"index":0,"delta":{"content":"a\xf0\x9f', b'\x98\x80b"}}]}\n',
              b"", b"\ndata: [DONE]\n\n"]
    with ScriptedServer(Script(raw_pieces=pieces)) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                         b"Connection: close\r\n\r\n{}")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    body = data.split(b"\r\n\r\n", 1)[1]
    expected = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"
    assert body == expected
    with pytest.raises(ValueError, match="in process"):
        Script(raw_pieces=pieces).to_dict()
