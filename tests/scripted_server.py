"""A scripted OpenAI-compatible chat server for tests and benchmarks.

Plain asyncio with hand-written HTTP/1.1 (keep-alive; streams use chunked transfer encoding so an
abrupt close is a visible protocol error), so timing and client-disconnect detection are exact.
Binds 127.0.0.1 only and stops by itself after ``max_lifetime`` seconds.

Choosing the behaviour of a request, first match wins:
  1. model name ``"script:ttft=0.5,tokens=200,rate=100"`` (values may be %-encoded),
  2. one-shot scripts from ``queue()`` / ``POST /_control/queue``, in order,
  3. the default from ``set_script()`` / ``POST /_control/script``.

In process::  with ScriptedServer(Script(ttft=0.3)) as srv: openai.OpenAI(base_url=srv.base_url, ...)
Standalone::  python -m tests.scripted_server --port 0 --ttft 0.5 --tokens 200   (prints PORT=<n>)
    serves until stdin closes (pass --ignore-stdin when stdin is /dev/null, as under CI), SIGTERM,
    or --max-lifetime seconds (default 1800).

Only POST /v1/chat/completions requests are recorded. Timestamps are ``time.perf_counter()``
(CLOCK_MONOTONIC on Linux, so comparable with another process's perf_counter).
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Callable
from urllib.parse import unquote

CHAT_PATH = "/v1/chat/completions"
_STR_FIELDS = {"token_text", "text", "finish_reason", "reasoning_text", "reasoning_token_text",
               "reasoning_form", "think_lead"}
REASONING_FORMS = ("reasoning_content", "reasoning", "think_tags", "think_close_only")
OPEN_TAG, CLOSE_TAG = "<think>", "</think>"
_ERRORS = {400: ("invalid_request_error", "invalid_request"), 401: ("authentication_error", "invalid_api_key"),
           403: ("permission_error", "forbidden"), 404: ("not_found_error", "model_not_found"),
           429: ("rate_limit_error", "rate_limit_exceeded")}


@dataclass
class Script:
    """How to answer one chat request. Times in seconds, rate in tokens/s (<= 0: no pacing)."""
    ttft: float = 0.0                 # request read -> first content chunk
    tokens: int = 20
    rate: float = 100.0               # content chunk i goes out at t_first + i / rate
    token_text: str | Callable[[int], str] = "tok "   # "{i}" is replaced by the token index
    paragraph_every: int = 0          # every N-th generated token ends with "\n\n"
    text: str | None = None           # send these whitespace-preserving words instead
    prefill_silent: bool = False      # send nothing at all (not even headers) until ttft
    send_usage: bool = True           # False: ignore stream_options.include_usage
    timings: bool = False             # llama.cpp-style `timings` on the last chunk / body
    finish_reason: str = "stop"
    status: int = 200                 # != 200: answer with error_body (OpenAI-style) at once
    error_body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)   # extra response headers
    retry_after: float | None = None  # shortcut for a Retry-After header
    drop_after: int | None = None     # close the socket after N tokens (no [DONE]); N counts
    stall_after: int | None = None    # go silent after N tokens until disconnect / stall_timeout
    #                                   thinking tokens too, for these three
    stall_timeout: float = 60.0
    malformed_after: int | None = None  # send `data: {not json` after N tokens
    empty: bool = False               # a well-formed reply with no content
    hang_before_headers: float = 0.0  # read the request, then say nothing for this long
    # Reasoning ("thinking") before the answer, paced like answer tokens (same rate; ttft is the
    # first token of any kind, so the first answer token goes out at ttft + reasoning/rate).
    reasoning_tokens: int = 0
    reasoning_text: str | None = None       # these whitespace-preserving words instead
    reasoning_token_text: str = "think{i} "
    # reasoning_content | reasoning: a delta / message field; think_tags: inline
    # <think>…</think> in the content; think_close_only: inline, only </think> (the template
    # put <think> in the prompt).
    reasoning_form: str = "reasoning_content"
    # Inline forms: split each tag across a chunk boundary after this many characters (None:
    # <think> goes with the first thinking token, </think> with the first answer token). The
    # opening tag's head is an extra chunk sent at the first token's time; </think>'s head ends
    # the last thinking chunk and its rest starts the first answer chunk.
    think_split_at: int | None = None
    think_lead: str = ""                    # inline forms: content before <think> (e.g. "\n")
    usage_reasoning: bool = False           # usage.completion_tokens_details.reasoning_tokens

    def reasoning_list(self) -> list[str]:
        if self.reasoning_text is not None:
            return re.findall(r"\S+\s*|\s+", self.reasoning_text)
        return [self.reasoning_token_text.replace("{i}", str(i)) for i in range(self.reasoning_tokens)]

    def events(self) -> list[tuple[int, str, dict]]:
        """The streamed token chunks, in order: (token index, kind, delta). Chunk i of the
        schedule goes out at ttft + index / rate (chunks that share an index go out together);
        kind is "reasoning" or "answer" (inline forms carry both in `content`)."""
        thinking, answer = self.reasoning_list(), self.token_list()
        form = self.reasoning_form
        if form not in REASONING_FORMS:
            raise ValueError(f"reasoning_form must be one of {REASONING_FORMS}, not {form!r}")
        n = len(thinking)
        if not thinking or form in ("reasoning_content", "reasoning"):
            return ([(i, "reasoning", {form: tok}) for i, tok in enumerate(thinking)]
                    + [(n + i, "answer", {"content": tok}) for i, tok in enumerate(answer)])
        out: list[tuple[int, str, dict]] = []
        if self.think_lead:
            out.append((0, "reasoning", {"content": self.think_lead}))
        k = self.think_split_at
        texts = list(thinking)
        if form == "think_tags":
            # Split at j: "<think>"[:j] is a chunk of its own, the rest starts the first thinking
            # token's chunk (j = 0 or None: the tag and the first token in one chunk).
            j = min(k or 0, len(OPEN_TAG))
            if j:
                out.append((0, "reasoning", {"content": OPEN_TAG[:j]}))
            texts[0] = OPEN_TAG[j:] + texts[0]
        # "</think>"[:j] ends the last thinking chunk, the rest starts the first answer chunk.
        j = 0 if k is None else min(k, len(CLOSE_TAG))
        texts[-1] += CLOSE_TAG[:j]
        out += [(i, "reasoning", {"content": tok}) for i, tok in enumerate(texts)]
        answers = list(answer)
        if answers:
            answers[0] = CLOSE_TAG[j:] + answers[0]
        elif CLOSE_TAG[j:]:
            out.append((n - 1, "reasoning", {"content": CLOSE_TAG[j:]}))
        out += [(n + i, "answer", {"content": tok}) for i, tok in enumerate(answers)]
        return out

    def message_fields(self) -> dict:
        """The non-streamed message: content and, for the field forms, the reasoning field."""
        thinking, answer = "".join(self.reasoning_list()), "".join(self.token_list())
        if not thinking:
            return {"content": answer}
        if self.reasoning_form in ("reasoning_content", "reasoning"):
            return {"content": answer, self.reasoning_form: thinking}
        opening = self.think_lead + OPEN_TAG if self.reasoning_form == "think_tags" else ""
        return {"content": opening + thinking + CLOSE_TAG + answer}

    def token_list(self) -> list[str]:
        if self.empty:
            return []
        if self.text is not None:
            return re.findall(r"\S+\s*|\s+", self.text)
        out = []
        for i in range(self.tokens):
            tok = self.token_text(i) if callable(self.token_text) else str(self.token_text).replace("{i}", str(i))
            if self.paragraph_every > 0 and (i + 1) % self.paragraph_every == 0:
                tok += "\n\n"
            out.append(tok)
        return out

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.retry_after is not None:
            headers.setdefault("Retry-After", f"{self.retry_after:g}")
        return headers

    def error_payload(self) -> dict:
        if self.error_body is not None:
            return self.error_body
        etype, code = _ERRORS.get(self.status, ("server_error" if self.status >= 500 else "api_error", None))
        phrase = HTTPStatus(self.status).phrase if self.status in HTTPStatus._value2member_map_ else "Error"
        return _err(f"scripted {self.status} {phrase}", etype, code)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> Script:
        unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown script fields: {sorted(unknown)}")
        return cls(**fields)

    @classmethod
    def from_spec(cls, spec: str) -> Script:
        """Parse "ttft=0.5,tokens=200,prefill_silent=true" (values may be %-encoded)."""
        fields = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, raw = part.partition("=")
            if not sep:
                raise ValueError(f"expected key=value in script spec, got {part!r}")
            fields[key.strip()] = _coerce(key.strip(), raw)
        return cls.from_dict(fields)

    @classmethod
    def from_model(cls, model: Any) -> Script | None:
        if isinstance(model, str) and model.startswith("script:"):
            return cls.from_spec(model[len("script:"):])
        return None


def _err(message: str, etype: str = "invalid_request_error", code: str | None = None) -> dict:
    return {"error": {"message": message, "type": etype, "code": code}}


def _coerce(key: str, raw: str) -> Any:
    raw = unquote(raw)
    if key in _STR_FIELDS:
        return raw
    low = raw.strip().lower()
    if low in ("true", "yes", "on", "false", "no", "off"):
        return low in ("true", "yes", "on")
    if low in ("none", "null"):
        return None
    for conv in (int, float):
        try:
            return conv(raw)
        except ValueError:
            pass
    return raw


@dataclass
class RequestRecord:
    id: int
    method: str
    path: str
    headers: dict[str, str]            # lowercase names; Authorization kept (masked in to_json)
    body: Any
    stream: bool
    t_received: float                  # request fully read
    t_headers_sent: float | None = None
    t_first_content_sent: float | None = None   # first token chunk of any kind (thinking too)
    t_last_content_sent: float | None = None
    t_first_answer_sent: float | None = None    # first answer token chunk
    tokens_sent: int = 0                        # token chunks sent, thinking and answer
    reasoning_sent: int = 0                     # of those, thinking chunks
    bytes_sent: int = 0                # everything written for this response, HTTP framing included
    t_disconnected: float | None = None  # client closed before the response finished
    t_end: float | None = None         # the server is done with the request, however it ended
    completed: bool = False            # the whole response went out
    outcome: str = "pending"           # completed | error | disconnected | dropped | stalled

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        if "authorization" in data["headers"]:
            data["headers"]["authorization"] = "***"
        return data


@dataclass
class _Request:
    method: str
    path: str
    version: str
    headers: dict[str, str]
    body: bytes
    t_received: float


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = {}
    for line in filter(None, lines[1:]):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")
        body = b"".join(parts)
    else:
        body = await reader.readexactly(int(headers.get("content-length") or 0))
    return _Request(method, target.split("?", 1)[0], version.strip(), headers, body, time.perf_counter())


async def _watch_eof(reader: asyncio.StreamReader) -> float:
    """Return the perf_counter time at which the client closed (EOF or reset)."""
    try:
        while await reader.read(65536):
            pass
    except (ConnectionError, OSError):
        pass
    return time.perf_counter()


async def _sleep_until(t: float) -> None:
    delay = t - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


class _Reply:
    """Writes one response; counts bytes into the record; raises ConnectionError once the client is gone."""

    def __init__(self, writer: asyncio.StreamWriter, rec: RequestRecord | None = None):
        self.writer, self.rec = writer, rec

    async def _send(self, data: bytes) -> None:
        if self.writer.transport.is_closing():
            raise ConnectionResetError("client connection is closed")
        self.writer.write(data)
        if self.rec:
            self.rec.bytes_sent += len(data)
        await self.writer.drain()

    async def head(self, status: int, headers: dict[str, str]) -> None:
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Status"
        lines = [f"HTTP/1.1 {status} {phrase}", "Server: scripted"] + [f"{k}: {v}" for k, v in headers.items()]
        await self._send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if self.rec:
            self.rec.t_headers_sent = time.perf_counter()

    async def full(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        await self.head(status, {"Content-Type": "application/json", "Content-Length": str(len(data)), **(headers or {})})
        await self._send(data)

    async def chunk(self, data: bytes) -> None:
        await self._send(b"%x\r\n%s\r\n" % (len(data), data))

    async def event(self, obj: dict) -> None:
        await self.chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")

    async def end_chunks(self) -> None:
        await self._send(b"0\r\n\r\n")

    def close(self) -> None:
        self.writer.close()


def _usage(body: dict, n: int, reasoning: int | None = None) -> dict:
    messages = body.get("messages") or []
    prompt = sum(len(str(m.get("content", "")).split()) + 3 for m in messages if isinstance(m, dict))
    usage = {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}
    if reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


def _timings(s: Script, prompt_n: int, n: int) -> dict:
    predicted_ms = n / s.rate * 1000 if s.rate > 0 else 0.0
    return {"prompt_n": prompt_n, "prompt_ms": s.ttft * 1000, "predicted_n": n, "predicted_ms": predicted_ms,
            "predicted_per_second": n / predicted_ms * 1000 if predicted_ms else 0.0,
            "predicted_per_token_ms": predicted_ms / n if n else 0.0}


class ScriptedServer:
    """The server on its own event loop in a daemon thread. Use as a context manager."""

    def __init__(self, default: Script | None = None, *, port: int = 0, max_lifetime: float | None = 1800.0):
        self.default = default or Script()
        self.port, self.max_lifetime = port, max_lifetime
        self._queue: list[Script] = []
        self._records: list[RequestRecord] = []
        self._cond = threading.Condition(threading.RLock())
        self._ready, self.stopped = threading.Event(), threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._conns: set[asyncio.Task] = set()
        self._error: BaseException | None = None
        self._last_id = 0  # request ids keep counting across reset()

    # ---- control from the test thread
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ScriptedServer:
        self._thread = threading.Thread(target=self._run, name="scripted-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error:
            raise RuntimeError(f"scripted server did not start: {self._error!r}")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._request_stop()
        if getattr(self, "_thread", None) is not None:
            self._thread.join(timeout)

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_script(self, script: Script) -> None:
        with self._cond:
            self.default = script

    def queue(self, *scripts: Script) -> None:
        with self._cond:
            self._queue.extend(scripts)

    def reset(self) -> None:
        with self._cond:
            self._records.clear()
            self._queue.clear()

    @property
    def requests(self) -> list[RequestRecord]:
        with self._cond:
            return list(self._records)

    def _find(self, request_id: int | None) -> RequestRecord | None:
        recs = [r for r in self._records if request_id is None or r.id == request_id]
        return recs[-1] if recs else None

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[RequestRecord]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._records) >= n, timeout):
                raise TimeoutError(f"{len(self._records)} of {n} requests after {timeout}s")
            return list(self._records)

    def wait_for_end(self, request_id: int | None = None, timeout: float = 5.0) -> RequestRecord:
        """Wait until the server is done with a request (default: the latest) however it ended."""
        with self._cond:
            if not self._cond.wait_for(lambda: (r := self._find(request_id)) is not None and r.t_end, timeout):
                raise TimeoutError(f"request {request_id or 'latest'} still running after {timeout}s")
            return self._find(request_id)

    def wait_for_disconnect(self, request_id: int | None = None, timeout: float = 2.0) -> float:
        """Return the server's t_disconnected for a request (default: the latest)."""
        rec = self.wait_for_end(request_id, timeout)
        if rec.t_disconnected is None:
            raise AssertionError(f"request {rec.id} ended as {rec.outcome!r}, without a client disconnect")
        return rec.t_disconnected

    # ---- event loop side
    def _request_stop(self) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:
                pass  # loop already closed

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as e:  # noqa: BLE001 - reported through start()
            self._error = e
        finally:
            self._ready.set()
            self._loop.close()
            self.stopped.set()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._serve_conn, "127.0.0.1", self.port, limit=1 << 20)
        self.port = server.sockets[0].getsockname()[1]
        if self.max_lifetime:
            asyncio.get_running_loop().call_later(self.max_lifetime, self._stopping.set)
        self._ready.set()
        await self._stopping.wait()
        server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)

    async def _serve_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._conns.add(task)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while (req := await _read_request(reader)) is not None:
                keep = req.version == "HTTP/1.1" and req.headers.get("connection", "").lower() != "close"
                if not await self._route(req, reader, writer) or not keep:
                    break
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:
            pass  # server shutdown: ending quietly keeps asyncio from logging the cancelled task
        finally:
            self._conns.discard(task)
            writer.close()

    async def _route(self, req: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        reply = _Reply(writer)
        if req.path == CHAT_PATH and req.method == "POST":
            return await self._chat(req, reader, writer)
        if req.path == "/health":
            await reply.full(200, {"status": "ok"})
        elif req.path == "/v1/models":
            await reply.full(200, {"object": "list", "data": [
                {"id": "scripted", "object": "model", "created": 0, "owned_by": "scripted"},
                {"id": "script:ttft=0.5,tokens=50,rate=50", "object": "model", "created": 0, "owned_by": "scripted"}]})
        elif req.path.startswith("/_control/"):
            try:
                status, payload = self._control(req)
            except (ValueError, TypeError) as e:
                status, payload = 400, _err(str(e))
            await reply.full(status, payload)
        else:
            await reply.full(404, _err(f"no route {req.method} {req.path}", "not_found_error"))
        return True

    def _control(self, req: _Request) -> tuple[int, Any]:
        action = req.path[len("/_control/"):]
        data = json.loads(req.body or b"null")
        if action == "requests" and req.method == "GET":
            return 200, [r.to_json() for r in self.requests]
        if req.method != "POST":
            return 405, _err("use POST")
        if action == "script":
            self.set_script(Script.from_dict(data or {}))
        elif action == "queue":
            self.queue(*(Script.from_dict(d) for d in (data if isinstance(data, list) else [data or {}])))
        elif action == "reset":
            self.reset()
        else:
            return 404, _err(f"unknown control {action!r}", "not_found_error")
        return 200, {"ok": True}

    def _pick_script(self, body: dict) -> Script:
        script = Script.from_model(body.get("model"))
        with self._cond:
            if script is None and self._queue:
                script = self._queue.pop(0)
            return script or self.default

    async def _chat(self, req: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            body = json.loads(req.body or b"{}")
            if not isinstance(body, dict):
                raise ValueError("request body must be a JSON object")
            script = self._pick_script(body)
        except (ValueError, TypeError) as e:
            await _Reply(writer).full(400, _err(str(e)))
            return True
        with self._cond:
            self._last_id += 1
            rec = RequestRecord(self._last_id, req.method, req.path, dict(req.headers), body,
                                bool(body.get("stream")), req.t_received)
            self._records.append(rec)
            self._cond.notify_all()
        gen = asyncio.create_task(self._generate(_Reply(writer, rec), script, body))
        watch = asyncio.create_task(_watch_eof(reader))
        try:
            await asyncio.wait({gen, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (gen, watch):
                if not task.done():
                    task.cancel()
            await asyncio.gather(gen, watch, return_exceptions=True)
        t_gone, keep = None, False
        if gen.cancelled() or isinstance(gen.exception(), (ConnectionError, OSError)):
            t_gone = watch.result() if watch.done() and not watch.cancelled() else time.perf_counter()
        elif gen.exception() is not None:
            raise gen.exception()
        else:
            keep = gen.result()
        with self._cond:
            if t_gone is not None and not rec.completed:
                rec.t_disconnected, rec.outcome = t_gone, "disconnected"
            rec.t_end = time.perf_counter()
            self._cond.notify_all()
        return keep

    async def _generate(self, r: _Reply, s: Script, body: dict) -> bool:
        """Send the scripted response. True: the connection can be reused."""
        rec = r.rec
        base = rec.t_received + s.hang_before_headers
        await _sleep_until(base)
        if s.status != 200:
            await r.full(s.status, s.error_payload(), s.response_headers())
            rec.completed, rec.outcome = True, "error"
            return True
        tokens = s.token_list()
        n_thinking = len(s.reasoning_list())
        period = 1.0 / s.rate if s.rate > 0 else 0.0
        usage = _usage(body, n_thinking + len(tokens), n_thinking if s.usage_reasoning else None)
        model = body.get("model") or "scripted"
        ident, created = f"chatcmpl-scripted-{rec.id}", int(time.time())

        def stop_early(outcome: str) -> bool:
            r.close()
            rec.outcome = outcome
            return False

        if not rec.stream:
            await _sleep_until(base + s.ttft + (n_thinking + len(tokens)) * period)
            if s.drop_after is not None:
                return stop_early("dropped")
            if s.stall_after is not None:
                await asyncio.sleep(s.stall_timeout)
                return stop_early("stalled")
            payload: Any = {"id": ident, "object": "chat.completion", "created": created, "model": model,
                            "choices": [{"index": 0, "finish_reason": s.finish_reason,
                                         "message": {"role": "assistant", **s.message_fields()}}],
                            "usage": usage}
            if s.timings:
                payload["timings"] = _timings(s, usage["prompt_tokens"], n_thinking + len(tokens))
            await r.full(200, b"{not json" if s.malformed_after is not None else payload, s.response_headers())
            rec.tokens_sent, rec.reasoning_sent = n_thinking + len(tokens), n_thinking
            rec.t_first_content_sent = rec.t_last_content_sent = time.perf_counter()
            rec.t_first_answer_sent = rec.t_first_content_sent if tokens else None
            rec.completed, rec.outcome = True, "completed"
            return True

        def chunk(delta: dict, finish: str | None = None) -> dict:
            return {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        if s.prefill_silent:
            await _sleep_until(base + s.ttft)
        await r.head(200, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                           "Transfer-Encoding": "chunked", **s.response_headers()})
        await r.event(chunk({"role": "assistant", "content": ""}))
        t_first = base + s.ttft
        # drop_after / stall_after / malformed_after count tokens of any kind (thinking first).
        events = s.events()
        total = n_thinking + len(tokens)
        for e in range(len(events) + 1):
            i, kind, delta = events[e] if e < len(events) else (total, "answer", {})
            if e == 0 or events[e - 1][0] != i:   # the first chunk of token i
                if s.malformed_after == i:
                    await r.chunk(b"data: {not json\n\n")
                if s.drop_after == i:
                    return stop_early("dropped")
                if s.stall_after == i:
                    await asyncio.sleep(s.stall_timeout)
                    return stop_early("stalled")
            if e == len(events):
                break
            await _sleep_until(t_first + i * period)
            await r.event(chunk(delta))
            rec.tokens_sent += 1
            rec.reasoning_sent += kind == "reasoning"
            rec.t_last_content_sent = time.perf_counter()
            rec.t_first_content_sent = rec.t_first_content_sent or rec.t_last_content_sent
            if kind == "answer" and rec.t_first_answer_sent is None:
                rec.t_first_answer_sent = rec.t_last_content_sent
        final = [chunk({}, s.finish_reason)]
        if s.send_usage and (body.get("stream_options") or {}).get("include_usage"):
            final.append({"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                          "choices": [], "usage": usage})
        if s.timings:
            final[-1]["timings"] = _timings(s, usage["prompt_tokens"], n_thinking + len(tokens))
        for obj in final:
            await r.event(obj)
        await r.chunk(b"data: [DONE]\n\n")
        await r.end_chunks()
        rec.completed, rec.outcome = True, "completed"
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible server on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-lifetime", type=float, default=1800.0, help="exit after this many seconds")
    parser.add_argument("--ignore-stdin", action="store_true", help="do not exit when stdin closes")
    for f in dataclasses.fields(Script):
        if f.name not in ("headers", "error_body"):
            flag = "--" + f.name.replace("_", "-")
            if isinstance(f.default, bool):
                parser.add_argument(flag, dest=f.name, nargs="?", const="true", default=None)
            else:
                parser.add_argument(flag, dest=f.name, default=None)
    args = parser.parse_args(argv)
    fields = {f.name: _coerce(f.name, getattr(args, f.name)) for f in dataclasses.fields(Script)
              if getattr(args, f.name, None) is not None}
    srv = ScriptedServer(Script.from_dict(fields), port=args.port, max_lifetime=args.max_lifetime).start()
    print(f"PORT={srv.port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: srv._request_stop())
    signal.signal(signal.SIGINT, lambda *_: srv._request_stop())
    if not args.ignore_stdin and sys.stdin is not None:
        def watch_stdin() -> None:
            while sys.stdin.buffer.read1(65536):
                pass
            srv._request_stop()
        threading.Thread(target=watch_stdin, daemon=True).start()
    while not srv.stopped.wait(1.0):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
