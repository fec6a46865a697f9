"""Building the rows the store keeps from what the engine observed (no SQL here).

`run_fields_from_generation` turns a finished Generation into the fields of a runs row
(Store.record_run); `to_json` and `safe_base_url` prepare values for any row.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from . import metrics as metrics_mod
from .errors import redact, strip_url_credentials
from .generation import Generation
from .kinds import Mode, Source
from .text import clean_text


def to_json(value: Any) -> str | None:
    """`value` (a dataclass, or anything json.dumps takes) as JSON text for a *_json column."""
    if value is None:
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return clean_text(json.dumps(value, ensure_ascii=False, default=str))


def safe_base_url(url: str | None) -> str | None:
    """base_url without any user:password part."""
    return strip_url_credentials(url) if url else url


def run_fields_from_generation(
    generation: Generation,
    *,
    source: str,
    conversation_id: str | None = None,
    message_id: str | None = None,
    local_token_count: int | None = None,
    local_token_source: Source = metrics_mod.ESTIMATED,
    local_reasoning_count: int | None = None,
    local_reasoning_source: Source = metrics_mod.ESTIMATED,
) -> dict[str, Any]:
    """The runs row for a finished generation (for Store.record_run)."""
    g = generation
    m = (
        metrics_mod.final_metrics(g)
        if local_token_count is None and local_reasoning_count is None
        else metrics_mod.compute(
            g,
            local_token_count=local_token_count,
            local_token_source=local_token_source,
            local_reasoning_count=local_reasoning_count,
            local_reasoning_source=local_reasoning_source,
        )
    )
    endpoint = g.endpoint
    fields: dict[str, Any] = {
        "source": source,
        "conversation_id": conversation_id,
        "message_id": message_id,
        "provider": endpoint.provider if endpoint else None,
        "base_url": safe_base_url(endpoint.base_url) if endpoint else None,
        "model": endpoint.model if endpoint else None,
        "mode": Mode.STREAM if g.request.stream else Mode.NON_STREAM,
        "state": g.state,
        "ttft_s": m.ttft.value,
        "time_to_answer_s": m.time_to_answer.value,
        "thinking_s": m.thinking_s.value,
        "reasoning_tokens": m.reasoning_tokens.value,
        "ttfb_s": m.ttfb.value,
        "e2e_s": m.e2e.value,
        "decode_tps": m.decode_tps.value,
        "tpot_s": m.tpot.value,
        "itl_p50_s": m.itl_p50.value,
        "itl_p95_s": m.itl_p95.value,
        "output_tokens": m.output_tokens.value,
        "output_tokens_source": m.output_tokens.source,
        "bytes": m.bytes.value,
        "chunks": m.chunks,
        "error_kind": g.error.kind if g.error else None,
        "error": g.error.message if g.error else None,
        "extra_json": to_json(
            {
                "itl_max_s": m.itl_max.value,
                "reasoning_tokens_source": (
                    m.reasoning_tokens.source if m.reasoning_tokens.value is not None else None
                ),
                "finish_reason": g.finish_reason,
                "model_reported": g.model_reported,
                "usage": g.usage,
                "server_timings": g.timings,
                "status": g.error.status if g.error else None,
                "retry_after": g.error.retry_after if g.error else None,
                "params": dataclasses.asdict(g.request.params),
            }
        ),
    }
    # Errors are redacted upstream; this is the last line of defence for the key itself. Only the
    # free text: field names and values such as "max_tokens" are never secrets and must stay intact.
    if fields["error"]:
        fields["error"] = redact(fields["error"], (endpoint.api_key,) if endpoint else ())
    return fields
