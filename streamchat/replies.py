"""A chat reply from start to saved: the glue between runner, generation and store.

Saving happens off the Streamlit script: the partial text is flushed to the store twice a
second while the reply streams (a killed process loses under a second of it), and the whole
reply is saved on a worker thread when the generation ends, also after the browser tab closed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import live_bus, metrics, recording
from .generation import Generation, GenerationRequest
from .kinds import MessageState, RunSource
from .records import run_fields_from_generation
from .runner import EndpointSource, Runner
from .singleton import ProcessWide
from .store import APPEND, Store, StoreUnavailable
from .tokens import TokenCount

log = logging.getLogger(__name__)
_savers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="streamchat-save")

SENDABLE_STATES = (MessageState.DONE, MessageState.STOPPED)
FLUSH_EVERY_S = 0.5
SAVE_RETRY_S = 5.0  # a final save that met a locked database is tried again after this…
SAVE_ATTEMPTS = 12  # …this many times in all (each attempt itself waits Store.write_patience)


_M = TypeVar("_M", bound=Mapping[str, Any])  # a message of any shape the store gives


def is_sent(message: Mapping[str, Any]) -> bool:
    """User messages, and the assistant replies that were kept (done or stopped with text)."""
    return message["role"] == "user" or (
        message["role"] == "assistant" and bool(message["content"]) and message["state"] in SENDABLE_STATES
    )


def history_for_request(
    messages: Sequence[Mapping[str, Any]], system_prompt: str = "", skip_oldest: int = 0
) -> tuple[dict[str, Any], ...]:
    """What the model sees: the system prompt, then the messages that are sent (see is_sent),
    leaving out the `skip_oldest` first ones (trimmed to fit the model's context). Only role and
    content: a reply's thinking (`reasoning`) is never sent back (DeepSeek's API rejects it, the
    others waste context on it)."""
    out = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    out += [{"role": m["role"], "content": m["content"]} for m in messages[skip_oldest:] if is_sent(m)]
    return tuple(out)


def trim_more(base: Sequence[Mapping[str, Any]], already: int) -> int:
    """Where to cut next to leave out about half of the earlier messages: always just before a
    user message, so the turns still alternate (some chat templates reject anything else).
    `base` ends with the user message being answered, which is never cut."""
    last = len(base) - 1
    users = [i for i in range(already + 1, last + 1) if base[i]["role"] == "user"]
    if not users:
        return already
    middle = already + (last - already + 1) // 2
    return next((i for i in users if i >= middle), users[-1])


def left_out(base: Sequence[Mapping[str, Any]], skip: int) -> int:
    """How many messages that would have been sent a cut at `skip` leaves out."""
    return sum(is_sent(m) for m in base[:skip])


def up_to_last_user_message(messages: list[_M]) -> list[_M]:
    """The conversation as it was when the last user message was sent (for Retry)."""
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    return messages[: last_user + 1]


@dataclass
class ActiveReply:
    generation: Generation
    conversation_id: str
    message_id: str
    prefix: str = ""  # text the message had before this generation (Continue appends to it)
    saved: threading.Event = field(default_factory=threading.Event)
    # Orders the partial flushes against the final save, so a late flush never overwrites it.
    lock: threading.Lock = field(default_factory=threading.Lock)
    flushed_len: int = 0
    save_problem: str | None = None  # why the reply is not (yet) saved, for the user
    save_attempts: int = 0
    reasoning_prefix: str = ""  # thinking the message had before this generation (Continue)
    flushed_reasoning_len: int = 0

    @property
    def text(self) -> str:
        return self.prefix + self.generation.text

    @property
    def reasoning(self) -> str:
        """The thinking shown above the answer: the earlier part's (Continue) and this one's."""
        return self.reasoning_prefix + self.generation.reasoning


class PartialFlusher:
    """One thread per process that writes the text of every streaming reply to the store."""

    def __init__(self, every: float = FLUSH_EVERY_S) -> None:
        self.every = every
        self._watched: dict[str, tuple[Store, ActiveReply]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, store: Store, reply: ActiveReply) -> None:
        with self._lock:
            self._watched[reply.message_id] = (store, reply)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="streamchat-flush", daemon=True)
                self._thread.start()
        self._wake.set()

    def live(self, message_id: str) -> ActiveReply | None:
        """The reply still streaming into `message_id` in this process, if any (after a reload,
        the new browser session picks it up instead of calling it interrupted)."""
        with self._lock:
            entry = self._watched.get(message_id)
        return entry[1] if entry and not entry[1].saved.is_set() else None

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(self.every)
            with self._lock:
                watched = list(self._watched.items())
            for message_id, (store, reply) in watched:
                if reply.saved.is_set():
                    with self._lock:
                        self._watched.pop(message_id, None)
                    continue
                flush_partial(store, reply)
            with self._lock:
                if not self._watched:
                    self._wake.clear()


def flush_partial(store: Store, reply: ActiveReply) -> None:
    with reply.lock:
        # Answer first: answer text taken back into the thinking (a close-only </think>) is
        # added to `reasoning` before `text` is cleared, so it is in one of the two, never in
        # neither; the next flush or the final save writes both again.
        text = reply.text
        reasoning = reply.reasoning
        if reply.saved.is_set() or (
            len(text) == reply.flushed_len and len(reasoning) == reply.flushed_reasoning_len
        ):
            return
        try:
            if len(reasoning) != reply.flushed_reasoning_len:
                store.update_message(reply.message_id, content=text, reasoning=reasoning)
            else:
                store.update_message(reply.message_id, content=text)
            reply.flushed_len = len(text)
            reply.flushed_reasoning_len = len(reasoning)
        except Exception:
            log.exception("could not flush partial reply %s", reply.message_id)


_flusher: ProcessWide[PartialFlusher] = ProcessWide()


def get_flusher() -> PartialFlusher:
    """The process's one PartialFlusher (also importable as `flusher`)."""
    return _flusher.get(PartialFlusher)


def __getattr__(name: str) -> PartialFlusher:
    if name == "flusher":  # `from streamchat.replies import flusher`: made on first use
        return get_flusher()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def local_token_count(g: Generation) -> TokenCount | None:
    """Count output tokens ourselves when the server did not report usage."""
    return metrics.local_token_count(g)


def save_generation(store: Store, reply: ActiveReply) -> None:
    with reply.lock:
        _save_generation(store, reply)


def _save_generation(store: Store, reply: ActiveReply) -> None:
    """Save the finished reply. A database locked by another program is waited out (the store
    retries each write for a while; then this tries again every SAVE_RETRY_S) with the text
    kept in memory and `save_problem` telling the user; `saved` is set once it is in the store
    or the save was given up."""
    g = reply.generation
    reply.save_attempts += 1
    try:
        # The one final set of figures: the live panel's last frame shows this same object.
        m = metrics.final_metrics(g)
        reasoning = reply.reasoning
        store.update_message(
            reply.message_id,
            content=reply.text,
            state=g.state,
            error=g.error.message if g.error else None,
            summary=metrics.summary_line(m),
            metrics=message_metrics(
                g, m, offset=len(reply.prefix), reasoning_offset=len(reply.reasoning_prefix)
            ),
            **({"reasoning": reasoning} if reasoning else {}),
        )
        run_id = store.record_run(
            **run_fields(g, m, conversation_id=reply.conversation_id, message_id=reply.message_id)
        )
        save_recording(store, g, m, message_id=reply.message_id, run_id=run_id, reply=reply)
        reply.save_problem = None
    except StoreUnavailable as exc:  # locked, busy, disk full, read-only, server gone
        log.warning("could not save reply %s yet (%s)", reply.message_id, exc)
        if reply.save_attempts < SAVE_ATTEMPTS:
            reply.save_problem = (
                f"Not saved yet: {exc}. The reply stays here and is saved as "
                "soon as the database can be written."
            )
            threading.Timer(SAVE_RETRY_S, _savers.submit, (save_generation, store, reply)).start()
            return
        reply.save_problem = (
            f"This reply could not be saved ({exc}). It stays on screen until "
            "you leave: download the chat (sidebar) to keep it."
        )
    except Exception as exc:
        log.exception("could not save reply %s", reply.message_id)
        reply.save_problem = (
            f"This reply could not be saved ({type(exc).__name__}: {exc}). "
            "It stays on screen until you leave: download the chat to keep it."
        )
    reply.saved.set()


def save_recording(
    store: Store,
    g: Generation,
    m: metrics.Metrics,
    *,
    message_id: str | None = None,
    run_id: int | None = None,
    reply: ActiveReply | None = None,
    group: str | None = None,
    side: str | None = None,
) -> int | None:
    """Keep the generation's recording (streamchat.recording) for ▶ Replay. Never raises: a
    reply whose recording could not be kept is still saved (it just says "no recording")."""
    try:
        rec = recording.from_generation(
            g,
            m,
            prefix=reply.prefix if reply else "",
            reasoning_prefix=reply.reasoning_prefix if reply else "",
            group=group,
            side=side,
        )
        if rec is None:
            return None
        return store.save_recording(
            recording.encode(rec), message_id=message_id, run_id=run_id, group_id=group
        )
    except Exception:
        log.exception("could not keep the recording of %s", message_id or run_id)
        return None


def run_fields(
    g: Generation, m: metrics.Metrics, *, conversation_id: str | None = None, message_id: str | None = None
) -> dict[str, Any]:
    """The Runs row of a chat reply, from the same figures as its footer (`m`)."""
    fields = run_fields_from_generation(
        g,
        source=RunSource.CHAT,
        conversation_id=conversation_id,
        message_id=message_id,
        **metrics.token_count_args(m),
    )
    if m.continuation:  # say what the figures cover, as the footer and the panel do
        extra = json.loads(fields["extra_json"] or "{}")
        fields["extra_json"] = json.dumps({**extra, "continuation": True}, ensure_ascii=False)
    return fields


def metrics_dict(m: metrics.Metrics) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in (
        "ttft",
        "ttfb",
        "e2e",
        "output_tokens",
        "tpot",
        "decode_tps",
        "itl_p50",
        "itl_p95",
        "itl_max",
        "bytes",
        "server_decode_tps",
        "server_prompt_ms",
        "time_to_answer",
        "thinking_s",
        "reasoning_tokens",
    ):
        value = getattr(m, name)
        out[name] = {"value": value.value, "source": value.source}
    out["chunks"] = m.chunks
    out["continuation"] = m.continuation
    return out


def message_metrics(
    g: Generation, m: metrics.Metrics, offset: int = 0, reasoning_offset: int = 0
) -> dict[str, Any]:
    """What a saved message keeps about its generation: the metrics, why it failed, and which
    stop rule ended it where (offsets into the message, which may start with `offset` older
    characters when the reply was continued; a hit in the thinking has `in_thinking` and
    offsets into the saved reasoning)."""
    hit = g.rule_hit
    stop_rule = None
    if hit:
        base = reasoning_offset if hit.in_thinking else offset
        stop_rule = {
            "describe": hit.describe(),
            "start": base + hit.start,
            "end": base + hit.end,
            "in_thinking": hit.in_thinking,
        }
    return {
        **metrics_dict(m),
        "error_kind": g.error.kind if g.error else None,
        "finish_reason": g.finish_reason,
        "stop_rule": stop_rule,
    }


def start_reply(
    runner: Runner,
    store: Store,
    conversation_id: str,
    request: GenerationRequest,
    endpoint: EndpointSource,
    *,
    parent_id: Any = APPEND,  # a message id, None (a root), or APPEND
    continue_message: dict[str, Any] | None = None,
) -> ActiveReply:
    """Start a generation and the assistant message it fills: a new one (appended to the
    branch, or under `parent_id` as a new version), or `continue_message` carried on."""
    reasoning_prefix = ""
    if continue_message is not None:
        message_id, prefix = continue_message["id"], continue_message["content"]
        reasoning_prefix = continue_message.get("reasoning") or ""
        store.update_message(message_id, state=MessageState.STREAMING)
    else:
        message_id, prefix = (
            store.add_message(
                conversation_id, "assistant", "", state=MessageState.STREAMING, parent_id=parent_id
            ),
            "",
        )
    generation = runner.start(request, endpoint)
    reply = ActiveReply(generation, conversation_id, message_id, prefix, reasoning_prefix=reasoning_prefix)

    def save_when_done(_: Generation) -> None:
        _savers.submit(save_generation, store, reply)

    generation.add_done_callback(save_when_done)
    get_flusher().watch(store, reply)
    live_bus.current().publish(reply)  # issue 16: other replicas follow it (no-op on SQLite)
    return reply
