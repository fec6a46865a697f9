"""A chat reply from start to saved: the glue between runner, generation and store.

Saving happens on a worker thread when the generation ends, not in the Streamlit script, so a
reply still streaming when the browser tab closes is saved all the same.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import metrics
from .generation import Generation, GenerationRequest
from .runner import EndpointSource, Runner
from .store import run_fields_from_generation

log = logging.getLogger(__name__)
_savers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="streamchat-save")

SENDABLE_STATES = ("done", "stopped")


def history_for_request(messages: list[dict], system_prompt: str = "") -> tuple[dict, ...]:
    """What the model sees: the system prompt, then user messages and the assistant replies
    that were kept (done or stopped with text). Failed replies are left out."""
    out = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    for m in messages:
        if m["role"] == "user" or (m["role"] == "assistant" and m["state"] in SENDABLE_STATES
                                   and m["content"]):
            out.append({"role": m["role"], "content": m["content"]})
    return tuple(out)


@dataclass
class ActiveReply:
    generation: Generation
    conversation_id: str
    message_id: str
    saved: threading.Event = field(default_factory=threading.Event)


def save_generation(store, reply: ActiveReply) -> None:
    g = reply.generation
    try:
        m = metrics.compute(g)
        store.update_message(reply.message_id, content=g.text, state=g.state,
                             error=g.error.message if g.error else None,
                             summary=metrics.summary_line(m), metrics=metrics_dict(m))
        store.record_run(**run_fields_from_generation(
            g, source="chat", conversation_id=reply.conversation_id, message_id=reply.message_id))
    except Exception:
        log.exception("could not save reply %s", reply.message_id)
    finally:
        reply.saved.set()


def metrics_dict(m: metrics.Metrics) -> dict:
    out = {}
    for name in ("ttft", "ttfb", "e2e", "output_tokens", "tpot", "decode_tps", "itl_p50", "itl_p95",
                 "itl_max", "bytes", "server_decode_tps", "server_prompt_ms"):
        value = getattr(m, name)
        out[name] = {"value": value.value, "source": value.source}
    out["chunks"] = m.chunks
    return out


def start_reply(runner: Runner, store, conversation_id: str, request: GenerationRequest,
                endpoint: EndpointSource) -> ActiveReply:
    message_id = store.add_message(conversation_id, "assistant", "", state="streaming")
    generation = runner.start(request, endpoint)
    reply = ActiveReply(generation, conversation_id, message_id)
    generation.add_done_callback(lambda _g: _savers.submit(save_generation, store, reply))
    return reply
