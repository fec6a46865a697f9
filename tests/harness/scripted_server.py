"""A scripted OpenAI-compatible chat server for tests and benchmarks.

Plain asyncio with hand-written HTTP/1.1 (keep-alive; streams use chunked transfer encoding so an
abrupt close is a visible protocol error), so timing and client-disconnect detection are exact.
Binds 127.0.0.1 only and stops by itself after ``max_lifetime`` seconds.

Choosing the behaviour of a request, first match wins:
  1. model name ``"script:ttft=0.5,tokens=200,rate=100"`` (values may be %-encoded),
  2. one-shot scripts from ``queue()`` / ``POST /_control/queue``, in order,
  3. the default from ``set_script()`` / ``POST /_control/script``.

In process::  with ScriptedServer(Script(ttft=0.3)) as srv: openai.OpenAI(base_url=srv.base_url, ...)
Child process::  with scripted_server_process(ttft=0.3) as srv: ...   (a ScriptedServerProcess)
Standalone::  python -m tests.harness.scripted_server --port 0 --ttft 0.5 --tokens 200   (prints PORT=<n>)
    serves until stdin closes (pass --ignore-stdin when stdin is /dev/null, as under CI), SIGTERM,
    or --max-lifetime seconds (default 1800).

Both servers have the same control API (`ServerControl`): ``requests()`` returns RequestRecord
objects, oldest first; ``queue(*scripts)`` and ``set_script(script | **fields)`` take Script objects
or Script field dicts; ``reset()``; ``wait_for_requests(n)`` / ``wait_for_request(n)`` /
``wait_for_end(id)`` / ``wait_for_hold(id)`` / ``wait_for_disconnect(id)``; ``release()`` opens the
gate of replies held by ``hold_after`` (a test that depends on a reply still running holds it
there and opens the gate itself, instead of racing a token rate).

Only POST /v1/chat/completions requests are recorded. Timestamps are ``time.perf_counter()``
(CLOCK_MONOTONIC on Linux, so comparable with another process's perf_counter).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar
from urllib.parse import unquote

from tests.harness.processes import kill_process_group, spawn, tail

T = TypeVar("T")

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
    # The gate a test opens: after N tokens (of any kind; non-streamed: before the body) the reply
    # waits for the server's release() (or hold_timeout, then ends as "stalled"), then goes on at
    # its rate from there. While held, a client disconnect ends it as "disconnected".
    hold_after: int | None = None
    hold_timeout: float = 120.0
    # Raw mode (in process only): answer a 200 text/event-stream whose body is exactly these
    # bytes, one HTTP chunk per piece (empty pieces skipped), whatever else the script says.
    raw_pieces: list[bytes] | None = None
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

    def to_dict(self) -> dict[str, Any]:
        """The fields that differ from the defaults (JSON-able, for the control API)."""
        if self.raw_pieces is not None or callable(self.token_text):
            raise ValueError("raw_pieces and a callable token_text work only in process (ScriptedServer)")
        default = Script()
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(default, f.name)}

    @classmethod
    def coerce(cls, script: Script | dict[str, Any]) -> Script:
        return script if isinstance(script, Script) else cls.from_dict(script)

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
    t_held: float | None = None        # hold_after reached: the reply waits for release()
    t_released: float | None = None    # release() opened the gate

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        if "authorization" in data["headers"]:
            data["headers"]["authorization"] = "***"
        return data

    @classmethod
    def from_json(cls, data: dict) -> RequestRecord:
        return cls(**data)


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


class ServerControl:
    """The API the in-process ScriptedServer and the child-process ScriptedServerProcess share."""

    base_url: str

    # ---- what each server does its own way
    def requests(self) -> list[RequestRecord]:
        """The chat requests seen so far (since reset()), oldest first; a snapshot."""
        raise NotImplementedError

    def queue(self, *scripts: Script | dict[str, Any]) -> None:
        """One-shot scripts for the next chat requests, in order (Script objects or field dicts)."""
        raise NotImplementedError

    def set_script(self, script: Script | dict[str, Any] | None = None, **fields: Any) -> None:
        """The default script, for requests that match nothing else: a Script, a dict or fields."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the recorded requests and the queued scripts."""
        raise NotImplementedError

    def release(self) -> None:
        """Open the gate for every request received so far: held replies go on, and one that has not
        reached its `hold_after` yet will not stop there. Requests received later hold again."""
        raise NotImplementedError

    def _wait(self, check: Callable[[list[RequestRecord]], T | None], timeout: float, what: str) -> T:
        raise NotImplementedError

    # ---- the same for both
    def wait_until(self, check: Callable[[list[RequestRecord]], T | None], timeout: float = 10.0,
                   what: str = "a match") -> T:
        """Wait until `check(records)` returns something other than None; return that."""
        return self._wait(check, timeout, what)

    def wait_for_requests(self, n: int = 1, timeout: float = 10.0) -> list[RequestRecord]:
        """Wait until at least `n` chat requests were received; return them all."""
        return self._wait(lambda rs: rs if len(rs) >= n else None, timeout, f"{n} request(s)")

    def wait_for_request(self, n: int = 1, timeout: float = 10.0) -> RequestRecord:
        """Wait until at least `n` chat requests were received; return the n-th."""
        return self.wait_for_requests(n, timeout)[n - 1]

    def wait_for_end(self, request_id: int | None = None, timeout: float = 10.0) -> RequestRecord:
        """Wait until the server is done with a request (default: the latest), however it ended."""
        return self._wait(lambda rs: r if (r := _find(rs, request_id)) and r.t_end else None,
                          timeout, f"end of request {request_id or 'latest'}")

    def wait_for_hold(self, request_id: int | None = None, timeout: float = 10.0) -> RequestRecord:
        """Wait until a request (default: the latest) is held at its `hold_after` gate."""
        return self._wait(lambda rs: r if (r := _find(rs, request_id)) and r.t_held else None,
                          timeout, f"hold of request {request_id or 'latest'}")

    def wait_for_disconnect(self, request_id: int | None = None, timeout: float = 10.0) -> float:
        """Return the server's t_disconnected for a request (default: the latest)."""
        rec = self.wait_for_end(request_id, timeout)
        if rec.t_disconnected is None:
            raise AssertionError(f"request {rec.id} ended as {rec.outcome!r}, without a client disconnect")
        return rec.t_disconnected


def _find(records: list[RequestRecord], request_id: int | None) -> RequestRecord | None:
    recs = [r for r in records if request_id is None or r.id == request_id]
    return recs[-1] if recs else None


class ScriptedServer(ServerControl):
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
        self._gate: asyncio.Event | None = None   # set by release() to wake held replies
        self._released_upto = 0                     # requests with an id up to this pass their gate

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

    def set_script(self, script: Script | dict[str, Any] | None = None, **fields: Any) -> None:
        with self._cond:
            self.default = Script.coerce(script if script is not None else fields)

    def queue(self, *scripts: Script | dict[str, Any]) -> None:
        scripts_ = [Script.coerce(s) for s in scripts]
        with self._cond:
            self._queue.extend(scripts_)

    def reset(self) -> None:
        with self._cond:
            self._records.clear()
            self._queue.clear()

    def requests(self) -> list[RequestRecord]:
        with self._cond:
            return list(self._records)

    def release(self) -> None:
        with self._cond:
            upto = self._last_id
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._open_gate, upto)

    def _wait(self, check: Callable[[list[RequestRecord]], T | None], timeout: float, what: str) -> T:
        found: list[T] = []

        def ready() -> bool:
            result = check(list(self._records))
            if result is not None:
                found.append(result)
            return result is not None

        with self._cond:
            if not self._cond.wait_for(ready, timeout):
                raise TimeoutError(f"scripted server: no {what} after {timeout:g}s "
                                   f"({len(self._records)} request(s))")
            return found[-1]

    # ---- event loop side
    def _open_gate(self, upto: int) -> None:
        with self._cond:
            self._released_upto = max(self._released_upto, upto)
        gate, self._gate = self._gate, asyncio.Event()
        if gate is not None:
            gate.set()

    async def _hold(self, rec: RequestRecord, timeout: float) -> bool:
        """Wait at the gate until release() covers this request; False if that took `timeout` s."""
        with self._cond:
            rec.t_held = time.perf_counter()
            self._cond.notify_all()
        deadline = rec.t_held + timeout
        while rec.id > self._released_upto:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._gate.wait(), remaining)
        with self._cond:
            rec.t_released = time.perf_counter()
        return True

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
        self._gate = asyncio.Event()
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
            return 200, [r.to_json() for r in self.requests()]
        if req.method != "POST":
            return 405, _err("use POST")
        if action == "script":
            self.set_script(Script.from_dict(data or {}))
        elif action == "queue":
            self.queue(*(Script.from_dict(d) for d in (data if isinstance(data, list) else [data or {}])))
        elif action == "reset":
            self.reset()
        elif action == "release":
            with self._cond:
                upto = self._last_id
            self._open_gate(upto)
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
        if s.raw_pieces is not None:
            await r.head(200, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                               "Transfer-Encoding": "chunked", **s.response_headers()})
            for piece in s.raw_pieces:
                if piece:                  # a zero-size chunk would end the body
                    await r.chunk(piece)
                    await asyncio.sleep(0)  # one piece per write: the client sees the same cuts
            await r.end_chunks()
            rec.completed, rec.outcome = True, "completed"
            return True
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
            if s.hold_after is not None and not await self._hold(rec, s.hold_timeout):
                return stop_early("stalled")
            payload: Any = {"id": ident, "object": "chat.completion", "created": created, "model": model,
                            "choices": [{"index": 0, "finish_reason": s.finish_reason,
                                         "message": {"role": "assistant", **s.message_fields()}}],
                            "usage": usage}
            if s.timings:
                payload["timings"] = _timings(s, usage["prompt_tokens"], n_thinking + len(tokens))
            t_write = time.perf_counter()   # stamped before writing: the client cannot read it sooner
            await r.full(200, b"{not json" if s.malformed_after is not None else payload, s.response_headers())
            rec.tokens_sent, rec.reasoning_sent = n_thinking + len(tokens), n_thinking
            rec.t_first_content_sent = rec.t_last_content_sent = t_write
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
                if s.hold_after == i:
                    t_hold = time.perf_counter()
                    if not await self._hold(rec, s.hold_timeout):
                        return stop_early("stalled")
                    # Go on at the script's rate from here, not in a burst of the overdue tokens.
                    t_first += max(0.0, time.perf_counter() - max(t_hold, t_first + i * period))
            if e == len(events):
                break
            await _sleep_until(t_first + i * period)
            t_write = time.perf_counter()   # stamped before writing: the client cannot read it sooner
            await r.event(chunk(delta))
            rec.tokens_sent += 1
            rec.reasoning_sent += kind == "reasoning"
            rec.t_last_content_sent = t_write
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


# ---------------------------------------------------------------- the server in a child process

def _http(url: str, payload: Any = None, timeout: float = 5.0) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body = resp.read()
    return json.loads(body) if body else None


@dataclass
class ScriptedServerProcess(ServerControl):
    """A ScriptedServer in a child process (`python -m tests.harness.scripted_server`), controlled
    over HTTP (/_control/...), with the same API. Records come back as RequestRecord objects
    (the Authorization header masked)."""
    port: int
    proc: subprocess.Popen

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def requests(self) -> list[RequestRecord]:
        return [RequestRecord.from_json(r) for r in _http(f"{self.root_url}/_control/requests")]

    def reset(self) -> None:
        _http(f"{self.root_url}/_control/reset", {})

    def queue(self, *scripts: Script | dict[str, Any]) -> None:
        _http(f"{self.root_url}/_control/queue", [_as_fields(s) for s in scripts])

    def set_script(self, script: Script | dict[str, Any] | None = None, **fields: Any) -> None:
        _http(f"{self.root_url}/_control/script", _as_fields(script if script is not None else fields))

    def release(self) -> None:
        _http(f"{self.root_url}/_control/release", {})

    def _wait(self, check: Callable[[list[RequestRecord]], T | None], timeout: float, what: str,
              interval: float = 0.02) -> T:
        deadline = time.perf_counter() + timeout
        while True:
            records = self.requests()
            result = check(records)
            if result is not None:
                return result
            if time.perf_counter() > deadline:
                raise TimeoutError(f"scripted server: no {what} after {timeout:g}s ({len(records)} request(s))")
            time.sleep(interval)


def _as_fields(script: Script | dict[str, Any]) -> dict[str, Any]:
    Script.coerce(script)          # unknown fields fail here, in the test, not in the child
    return script.to_dict() if isinstance(script, Script) else dict(script)


def _script_flag(name: str, value: Any) -> list[str]:
    if isinstance(value, bool):
        value = "true" if value else "false"
    return ["--" + name.replace("_", "-"), str(value)]


@contextlib.contextmanager
def scripted_server_process(*, max_lifetime: float = 1800.0, startup_timeout: float = 15.0,
                            **script_defaults: Any) -> Iterator[ScriptedServerProcess]:
    """Run `python -m tests.harness.scripted_server` in a child process; `script_defaults` are
    Script fields of its default script."""
    cmd = [sys.executable, "-m", "tests.harness.scripted_server", "--port", "0",
           "--max-lifetime", str(max_lifetime)]
    for name, value in script_defaults.items():
        cmd += _script_flag(name, value)
    log = Path(tempfile.mkstemp(prefix="scripted-server-", suffix=".log")[1])
    # stdin stays an open pipe: the server exits when it closes, i.e. when this process dies.
    with open(log, "wb") as err:
        proc = spawn(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, stderr=err)
    try:
        port = _read_port(proc, startup_timeout)
        if port is None:
            raise RuntimeError(f"scripted server did not start (exit {proc.poll()}):\n{tail(log)}")
        yield ScriptedServerProcess(port, proc)
    finally:
        kill_process_group(proc)
        log.unlink(missing_ok=True)


def _read_port(proc: subprocess.Popen, timeout: float) -> int | None:
    deadline, buf = time.monotonic() + timeout, b""
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            buf += chunk
            if m := re.search(rb"PORT=(\d+)\n", buf):
                return int(m.group(1))
        elif proc.poll() is not None:
            return None
    return None


# ---------------------------------------------------------------- standalone

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible server on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-lifetime", type=float, default=1800.0, help="exit after this many seconds")
    parser.add_argument("--ignore-stdin", action="store_true", help="do not exit when stdin closes")
    for f in dataclasses.fields(Script):
        if f.name not in ("headers", "error_body", "raw_pieces"):
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
