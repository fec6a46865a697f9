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
from .config import LOCAL
from .generation import Generation, GenerationRequest
from .runner import EndpointSource, Runner
from .store import run_fields_from_generation
from .tokens import TokenCount, count_text_tokens

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


def local_token_count(g: Generation) -> TokenCount | None:
    """Count output tokens ourselves when the server did not report usage."""
    if (g.usage or {}).get("completion_tokens") is not None or not g.text or g.endpoint is None:
        return None
    tokenize = None
    if g.endpoint.provider == LOCAL:
        from .local_server import get_shared_server
        tokenize = get_shared_server().tokenize
    return count_text_tokens(g.text, g.endpoint.model, tokenize=tokenize)


def save_generation(store, reply: ActiveReply) -> None:
    g = reply.generation
    try:
        counted = local_token_count(g)
        count_args = ({"local_token_count": counted.n, "local_token_source": counted.source}
                      if counted else {})
        m = metrics.compute(g, **count_args)
        store.update_message(reply.message_id, content=g.text, state=g.state,
                             error=g.error.message if g.error else None,
                             summary=metrics.summary_line(m), metrics=metrics_dict(m))
        store.record_run(**run_fields_from_generation(
            g, source="chat", conversation_id=reply.conversation_id, message_id=reply.message_id,
            **count_args))
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
