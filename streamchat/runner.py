"""The generation runner: every request runs as a task on one background asyncio loop.

Streamlit re-runs its script on every click; a reply owned by the script thread would die with
that re-run. Here the reply lives on the runner's loop, so it keeps going whatever the UI does,
and the UI just reads the Generation each frame. Stop cancels the task, which closes the HTTP
response at once, also while no bytes are flowing yet (prefill).

Reasoning (thinking) is read from all three forms a server may use: `reasoning_content` and
`reasoning` on the delta / message, and inline `<think>…</think>` in the content (split by
streamchat.reasoning.ThinkSplitter, O(new text) per chunk). It goes to `generation.reasoning`,
never into `generation.text`. The first-token timeout ends at the first token of any kind, and
reasoning chunks count as activity for the idle timeout.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx2
import openai

from . import errors
from .config import LOCAL
from .generation import DONE, FAILED, STOPPED, WAITING_FIRST_TOKEN, Endpoint, Generation, GenerationRequest
from .kinds import RuleKind
from .reasoning import ThinkSplitter, delta_reasoning, message_reasoning
from .singleton import ProcessWide
from .text import clean_text
from .wire import CountingTransport, current_listener

if TYPE_CHECKING:
    from .stop_rules import Rule, StopRuleEvaluator

log = logging.getLogger(__name__)

EndpointSource = Endpoint | Callable[[], Endpoint]


class _GenerationWire:
    """Feeds wire observations into one generation."""

    def __init__(self, generation: Generation):
        self._generation = generation

    def on_request_written(self, t: float) -> None:
        # "Request sent" is when it reaches the connection: connecting and the SDK's own work
        # before that are set-up (shown on their own), not part of TTFT.
        self._generation.t_sent = t

    def on_headers(self, t: float, header_bytes: int) -> None:
        if self._generation.t_headers is None:
            self._generation.t_headers = t
        self._generation.bytes_received += header_bytes

    def on_bytes(self, n: int) -> None:
        self._generation.bytes_received += n


class _Timer:
    """A loop timer that may re-arm itself; cancel() stops whichever handle is current."""

    handle: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()


def _as_dict(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if hasattr(value, "model_dump"):
        dumped: dict[str, Any] = value.model_dump(exclude_none=True)
        return dumped
    return dict(value) if isinstance(value, dict) else None


def _extra(obj: Any, name: str) -> Any:
    extra = getattr(obj, "model_extra", None) or {}
    return extra.get(name)


def _evaluator(rules: tuple[Rule, ...]) -> StopRuleEvaluator:
    from .stop_rules import StopRuleEvaluator

    return StopRuleEvaluator(rules)


class Runner:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="streamchat-runner", daemon=True)
        self._thread.start()
        self._clients: dict[tuple[Any, ...], openai.AsyncOpenAI] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._warmed: set[object] = set()
        self._closed = False

    # ---- public, any thread -------------------------------------------------------------
    def start(self, request: GenerationRequest, endpoint: EndpointSource) -> Generation:
        """Begin a generation and return at once. `endpoint` may be a callable resolved off the
        UI thread (starting the embedded model can take seconds)."""
        generation = Generation(request, endpoint if isinstance(endpoint, Endpoint) else None)
        future = asyncio.run_coroutine_threadsafe(self._spawn(generation, endpoint), self._loop)
        task = future.result(timeout=5)

        def stop() -> None:
            self._loop.call_soon_threadsafe(task.cancel)

        generation._stop_callback = stop
        if generation.t_stop_requested is not None:  # stopped before the callback was wired
            stop()
        return generation

    def warm(self, endpoint: EndpointSource, key: object, connect_timeout: float = 10.0) -> None:
        """Build `endpoint`'s client and open a connection to it now (once per `key` and
        process), so the first request of a session does not pay the SDK's lazy set-up and the
        connect inside its TTFT. Fire and forget: a failure here is the request's to report."""
        if key in self._warmed:
            return
        self._warmed.add(key)
        asyncio.run_coroutine_threadsafe(self._warm(endpoint, connect_timeout), self._loop)

    async def _warm(self, endpoint_source: EndpointSource, connect_timeout: float) -> None:
        try:
            endpoint = (
                endpoint_source
                if isinstance(endpoint_source, Endpoint)
                else await asyncio.to_thread(endpoint_source)
            )
            client = self._client(endpoint, connect_timeout)
            await asyncio.wait_for(client.models.list(), timeout=10)
        except Exception as exc:
            log.debug("warming the client failed: %s", type(exc).__name__)

    @property
    def active_count(self) -> int:
        return len(self._tasks)

    def shutdown(self, timeout: float = 5.0) -> None:
        if self._closed:
            return
        self._closed = True

        async def close_all() -> None:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=timeout)
            for client in self._clients.values():
                await client.close()
            self._clients.clear()
            await self._loop.shutdown_asyncgens()  # no "Task was destroyed" noise at exit

        try:
            asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(timeout + 1)
        except Exception:
            log.warning("runner shutdown did not complete cleanly", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)

    # ---- loop thread --------------------------------------------------------------------
    async def _spawn(self, generation: Generation, endpoint: EndpointSource) -> asyncio.Task[None]:
        task = asyncio.create_task(self._run(generation, endpoint), name=f"generation-{generation.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _client(self, endpoint: Endpoint, connect_timeout: float) -> openai.AsyncOpenAI:
        key = (endpoint.base_url, endpoint.api_key, connect_timeout)
        client = self._clients.get(key)
        if client is None:
            # The embedded server is on 127.0.0.1: never route it through an HTTP(S)_PROXY.
            local = endpoint.provider == LOCAL
            http_client = httpx2.AsyncClient(
                transport=CountingTransport(httpx2.AsyncHTTPTransport(trust_env=not local)),
                trust_env=not local,
                # Read/total time limits are enforced per phase by the runner (first token, idle).
                timeout=httpx2.Timeout(connect=connect_timeout, read=None, write=30.0, pool=30.0),
                follow_redirects=True,
            )
            client = openai.AsyncOpenAI(
                base_url=endpoint.base_url,
                api_key=endpoint.api_key or "none",
                max_retries=0,
                http_client=http_client,
            )
            self._clients[key] = client
        return client

    async def _run(self, generation: Generation, endpoint_source: EndpointSource) -> None:
        current_listener.set(_GenerationWire(generation))
        endpoint = generation.endpoint
        try:
            if endpoint is None:
                assert not isinstance(endpoint_source, Endpoint)  # (start() set it then)
                endpoint = await asyncio.to_thread(endpoint_source)
                generation.endpoint = endpoint
            try:
                await self._send(generation, endpoint)
            except openai.APITimeoutError:
                raise
            except openai.APIConnectionError:
                # Failed before any response byte (a pooled keep-alive connection the server had
                # closed, or an embedded server that died while idle): the model never saw the
                # request, so send it once more, re-resolving the endpoint (which restarts it).
                if generation.t_headers is not None or generation.t_stop_requested is not None:
                    raise
                if not isinstance(endpoint_source, Endpoint):
                    endpoint = generation.endpoint = await asyncio.to_thread(endpoint_source)
                await self._send(generation, endpoint)
        except asyncio.CancelledError:
            release_held(generation)
            generation._finish(STOPPED)
            return  # swallow: a stop is an outcome, not an error
        except Exception as exc:  # every failure becomes a value on the generation
            if not isinstance(
                exc,
                (
                    openai.OpenAIError,
                    errors.FirstTokenTimeout,
                    errors.StreamStalled,
                    errors.StreamEndedEarly,
                    errors.EmptyReply,
                    errors.MalformedChunk,
                ),
            ):
                log.info("generation %s failed: %s", generation.id, type(exc).__name__)
            release_held(generation)
            base_url = endpoint.base_url if endpoint else ""
            model = endpoint.model if endpoint else ""
            secrets = (endpoint.api_key,) if endpoint else ()
            generation._finish(
                FAILED,
                errors.classify(
                    exc,
                    base_url=base_url,
                    model=model,
                    had_content=bool(generation.text or generation.reasoning),
                    secrets=secrets,
                    embedded=bool(endpoint and endpoint.provider == LOCAL),
                ),
            )
            return
        generation._finish(STOPPED if generation.rule_hit is not None else DONE)

    async def _send(self, generation: Generation, endpoint: Endpoint) -> None:
        client = self._client(endpoint, generation.request.timeouts.connect)
        if generation.request.stream:
            await self._stream(generation, client, endpoint)
        else:
            await self._whole(generation, client, endpoint)

    def _request_kwargs(self, generation: Generation, endpoint: Endpoint) -> dict[str, Any]:
        """The create() arguments. llama.cpp's own sampling fields go in `extra_body`, and only to
        the embedded server: OpenAI and others answer 400 to fields they do not know."""
        from .generation import LLAMA_CPP_FIELDS, OPENAI_FIELDS

        request = generation.request
        kwargs: dict[str, Any] = {"model": endpoint.model, "messages": list(request.messages)}
        params = request.params
        for name in OPENAI_FIELDS:
            value = getattr(params, name)
            if value is not None:
                kwargs[name] = value
        if endpoint.provider == LOCAL:
            extra = {
                name: getattr(params, name) for name in LLAMA_CPP_FIELDS if getattr(params, name) is not None
            }
            if extra:
                kwargs["extra_body"] = extra
        return kwargs

    async def _stream(self, generation: Generation, client: openai.AsyncOpenAI, endpoint: Endpoint) -> None:
        timeouts = generation.request.timeouts
        kwargs = self._request_kwargs(generation, endpoint)
        loop = asyncio.get_running_loop()
        rules = generation.rules = (
            _evaluator(generation.request.stop_rules) if generation.request.stop_rules else None
        )
        timer = self._time_rule_timer(generation, loop) if rules is not None else None
        try:
            async with asyncio.timeout(timeouts.first_token) as deadline:
                generation.t_sent = generation.t_request_start = time.perf_counter()
                generation.state = WAITING_FIRST_TOKEN
                stream = await client.chat.completions.create(
                    **kwargs, stream=True, stream_options={"include_usage": True}
                )
                async with stream:
                    async for chunk in stream:
                        t = time.perf_counter()
                        try:
                            self._absorb_chunk(generation, chunk, t)
                        except (AttributeError, TypeError, ValueError) as exc:
                            raise errors.MalformedChunk(type(exc).__name__) from None
                        if generation.t_first_token is not None:  # reasoning counts too
                            deadline.reschedule(loop.time() + timeouts.idle)
                        if rules is not None and self._rule_fired(generation, t):
                            break  # leaving `async with` closes the response: the server stops
        except TimeoutError:
            if generation.t_first_token is None:
                raise errors.FirstTokenTimeout(timeouts.first_token) from None
            raise errors.StreamStalled(timeouts.idle) from None
        finally:
            if timer is not None:
                timer.cancel()
        release_held(generation)
        if rules is not None and generation.rule_hit is None:
            # A match at the very end (`foo$`) can only be sure once the text is complete.
            self._rule_fired(generation, time.perf_counter(), final=True)
        if generation.rule_hit is not None:
            return
        if generation.finish_reason is None:
            raise errors.StreamEndedEarly()
        if not generation.text and not generation.reasoning:
            # Thinking and no answer (max_tokens spent on thinking) is a reply: keep it.
            raise errors.EmptyReply()

    @staticmethod
    def _rule_fired(generation: Generation, t: float, final: bool = False) -> bool:
        rules, sent = generation.rules, generation.t_sent
        assert rules is not None and sent is not None  # (called once the request has been sent)
        hit = rules.check(
            generation.text,
            elapsed=t - sent,
            tokens=generation.content_chunk_count,
            final=final,
            reasoning=generation.reasoning,
            thinking_tokens=generation.reasoning_chunk_count,
        )
        if hit is not None:
            generation.rule_hit = hit
        return hit is not None

    def _time_rule_timer(self, generation: Generation, loop: asyncio.AbstractEventLoop) -> _Timer | None:
        """A max-time rule must fire even when no chunk arrives (a long prefill, a stall)."""
        limits = [
            r.value
            for r in generation.request.stop_rules
            if r.kind == RuleKind.MAX_TIME and isinstance(r.value, int | float)  # (validated numbers)
        ]
        if not limits:
            return None
        task = asyncio.current_task()
        assert task is not None  # (called from the generation's task)
        timer = _Timer()

        def fire() -> None:
            if generation.is_finished:
                return
            now = time.perf_counter()
            if self._rule_fired(generation, now):
                task.cancel()  # the same path as Stop: the connection is closed at once
                return
            # "Request sent" is stamped when the request reaches the connection, after this
            # timer was set: wait for the rest of the limit from there.
            remaining = min(limits) - (now - (generation.t_sent or now))
            if remaining > 0:
                timer.handle = loop.call_later(remaining + 0.001, fire)

        timer.handle = loop.call_later(min(limits) + 0.001, fire)
        return timer

    def _absorb_chunk(self, generation: Generation, chunk: Any, t: float) -> None:
        delta_text = ""
        reasoning_text = ""
        for choice in chunk.choices or ():
            if choice.index not in (0, None):
                continue
            delta = choice.delta
            if delta is not None and delta.content:
                if not isinstance(delta.content, str):
                    raise TypeError("delta.content is not text")
                delta_text += delta.content
            if delta is not None:
                reasoning_text += delta_reasoning(delta)
            if choice.finish_reason:
                generation.finish_reason = choice.finish_reason
        if chunk.usage is not None:
            generation.usage = _as_dict(chunk.usage)
        timings = _extra(chunk, "timings")
        if isinstance(timings, dict):
            generation.timings = timings
        if chunk.model and generation.model_reported is None:
            generation.model_reported = chunk.model
        absorb_text(generation, t, delta_text, reasoning_text)

    async def _whole(self, generation: Generation, client: openai.AsyncOpenAI, endpoint: Endpoint) -> None:
        timeouts = generation.request.timeouts
        kwargs = self._request_kwargs(generation, endpoint)
        try:
            async with asyncio.timeout(timeouts.whole_reply):
                generation.t_sent = generation.t_request_start = time.perf_counter()
                generation.state = WAITING_FIRST_TOKEN
                completion = await client.chat.completions.create(**kwargs, stream=False)
        except TimeoutError:
            raise errors.FirstTokenTimeout(timeouts.whole_reply) from None
        t = time.perf_counter()
        choice = completion.choices[0] if completion.choices else None
        generation.finish_reason = choice.finish_reason if choice else None
        generation.usage = _as_dict(completion.usage)
        timings = _extra(completion, "timings")
        if isinstance(timings, dict):
            generation.timings = timings
        generation.model_reported = completion.model
        message = choice.message if choice else None
        text = (message.content or "") if message else ""
        if text and not isinstance(text, str):
            raise errors.MalformedChunk("message.content is not text")
        try:
            field = message_reasoning(message) if message else ""
        except TypeError:
            raise errors.MalformedChunk("message reasoning is not text") from None
        absorb_text(generation, t, text, field)
        release_held(generation)
        if not generation.text and not generation.reasoning:
            raise errors.EmptyReply()


def absorb_text(generation: Generation, t: float, content: str, reasoning: str = "") -> None:
    """Record one chunk's text received at `t`: `content` as the server sent it (inline
    `<think>…</think>` is split out of it) and `reasoning` from a reasoning field. Both are
    cleaned (clean_text). When the reply ends, call `release_held` for a held partial tag."""
    splitter = generation._think
    if splitter is None:
        splitter = generation._think = ThinkSplitter()
    if reasoning:
        splitter.fields_seen()
    split = splitter.feed(clean_text(content))
    if split.retract and generation.text:
        generation._retract_answer()
    generation._record_chunk(
        t, split.answer, clean_text(reasoning) + split.reasoning, token=bool(content or reasoning)
    )


def release_held(generation: Generation) -> None:
    """The reply is over (done, stopped or failed): text held back as a possible partial tag
    is released as what it is."""
    splitter = generation._think
    if splitter is None:
        return
    split = splitter.finish()
    if split.answer or split.reasoning:
        generation._release_held(split.answer, split.reasoning)


_runner: ProcessWide[Runner] = ProcessWide(close=lambda runner: runner.shutdown())


def get_runner() -> Runner:
    """One runner (one loop thread) per process, shared by all sessions."""
    return _runner.get(Runner, fits=lambda runner: not runner._closed)
