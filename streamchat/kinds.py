"""The engine's closed sets of words, as StrEnums.

Each member *is* its string (`GenerationState.DONE == "done"`, it hashes, formats, JSON-encodes
and is stored in SQLite as "done"), so code and rows that still use the plain strings keep working;
new code names the member instead of retyping the word.
"""

from __future__ import annotations

from enum import StrEnum


class GenerationState(StrEnum):
    """A generation's state, in the order it moves through them (see generation.py)."""

    PENDING = "pending"  # queued, endpoint being resolved / connection being made
    WAITING_FIRST_TOKEN = "waiting_first_token"  # request sent, no token yet (prefill)
    THINKING = "thinking"  # reasoning tokens arriving, no answer yet
    STREAMING = "streaming"  # answer (content) arriving
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"


class MessageState(StrEnum):
    """A stored message's state (messages.state)."""

    DONE = "done"
    STREAMING = "streaming"  # a reply still being written (or interrupted while it was)
    STOPPED = "stopped"
    FAILED = "failed"


class ErrorKind(StrEnum):
    """What went wrong with a generation (ErrorInfo.kind, runs.error_kind); see errors.py."""

    SETUP = "setup"
    FIRST_TOKEN_TIMEOUT = "first_token_timeout"
    STALLED = "stalled"
    DROPPED = "dropped"
    EMPTY_REPLY = "empty_reply"
    MALFORMED = "malformed"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    AUTH = "auth"
    MODEL_NOT_FOUND = "model_not_found"
    RATE_LIMITED = "rate_limited"
    CONTEXT_LENGTH = "context_length"
    BAD_REQUEST = "bad_request"
    SERVER_ERROR = "server_error"
    CLIENT_ERROR = "client_error"
    UNEXPECTED = "unexpected"


class Source(StrEnum):
    """Where a figure or a token count comes from (metrics.Value.source, tokens.TokenCount.source,
    runs.output_tokens_source)."""

    MEASURED = "measured"  # timed or counted here, on the wire
    SERVER = "server"  # reported by the server (usage, timings)
    ESTIMATED = "estimated"  # e.g. one token per chunk
    EXACT = "exact"  # counted with the model's own tokenizer
    APPROXIMATE = "approximate"  # counted with another tokenizer, or 4 characters a token


class Provider(StrEnum):
    """Where replies come from (Endpoint.provider)."""

    LOCAL = "local"  # the embedded llama.cpp server
    REMOTE = "remote"  # any OpenAI-compatible endpoint


class Mode(StrEnum):
    """How a request is made (runs.mode; the two sides of a comparison)."""

    STREAM = "stream"
    NON_STREAM = "non-stream"


class CompareMode(StrEnum):
    """How a comparison runs its two sides."""

    SEQUENTIAL = "sequential"
    RACE = "race"


class RunSource(StrEnum):
    """What made a run (runs.source)."""

    CHAT = "chat"
    COMPARE = "compare"
    CLI = "cli"


class RuleKind(StrEnum):
    """A stop rule's kind (stop_rules.Rule.kind)."""

    PHRASES = "phrases"
    REGEX = "regex"
    MAX_TIME = "max_time"
    MAX_TOKENS = "max_tokens"
