"""Counts what arrives on the wire for each generation.

An httpx2 transport wrapper: it sees the moment the request body is written to the connection
(after connecting, after the SDK built the request: that is "request sent"), raw (still
compressed) body bytes as they come off the socket, and the moment response headers arrive.
Which generation they belong to is carried by a ContextVar, set inside the generation's asyncio
task, so one shared client serves them all.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import AsyncIterator
from typing import Protocol, cast

import httpx2


class WireListener(Protocol):
    def on_request_written(self, t: float) -> None: ...
    def on_headers(self, t: float, header_bytes: int) -> None: ...
    def on_bytes(self, n: int) -> None: ...


current_listener: contextvars.ContextVar[WireListener | None] = contextvars.ContextVar(
    "streamchat_wire_listener", default=None
)


class _CountingStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, listener: WireListener):
        self._inner = inner
        self._listener = listener

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._inner:
            self._listener.on_bytes(len(part))
            yield part

    async def aclose(self) -> None:
        await self._inner.aclose()


class _StampingStream(httpx2.AsyncByteStream):
    """The request body: the connection pulls it once it is open and the headers are written."""

    def __init__(self, inner: httpx2.AsyncByteStream, listener: WireListener):
        self._inner = inner
        self._listener = listener

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._listener.on_request_written(time.perf_counter())
        async for part in self._inner:
            yield part

    async def aclose(self) -> None:
        await self._inner.aclose()


class CountingTransport(httpx2.AsyncBaseTransport):
    def __init__(self, inner: httpx2.AsyncBaseTransport):
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        listener = current_listener.get()
        if listener is not None:
            # An async transport is handed async streams (httpx's ByteStream is both kinds).
            request.stream = _StampingStream(cast(httpx2.AsyncByteStream, request.stream), listener)
        response = await self._inner.handle_async_request(request)
        if listener is None:
            return response
        # Status line + headers, as they were on the wire (close enough: HTTP/1.1 framing).
        header_bytes = 17 + sum(len(k) + len(v) + 4 for k, v in response.headers.raw)
        listener.on_headers(time.perf_counter(), header_bytes)
        response.stream = _CountingStream(cast(httpx2.AsyncByteStream, response.stream), listener)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
