"""Turn whatever went wrong into an ErrorInfo: a short message naming the cause and the next step.

No exception text reaches the user unfiltered: server messages are trimmed and secrets redacted.
"""

from __future__ import annotations

import json
import re

import openai

from .generation import ErrorInfo
from .kinds import ErrorKind

# Key-looking strings, whatever key is configured: sk-…, SK-…, sk_… (not inside a word like "task_…").
_SECRET_PATTERN = re.compile(
    r"(?<![A-Za-z0-9])sk[-_][A-Za-z0-9_\-*.]{6,}|\bBearer\s+[A-Za-z0-9._~+/=*-]+", re.IGNORECASE
)
# The user:password@ part of any URL ("[^/?#\s]*" stops at the end of the authority).
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s]*@")
# Configured keys shorter than this are not secrets: local servers take any placeholder ("x",
# "none", "EMPTY", "ollama"), and hiding those only mangles ordinary text. Real keys are far longer
# (OpenAI's 51+ characters, the embedded server's 43), and at 8 characters a whole-token match in
# unrelated text is practically never a coincidence.
MIN_SECRET_LENGTH = 8
_TOKEN_CHAR = r"A-Za-z0-9_\-"
_CONTEXT_PATTERN = re.compile(
    r"context length|context_length|maximum context|too long|exceeds? the (available )?context|n_ctx",
    re.IGNORECASE,
)


class UserFacingError(Exception):
    """A failure whose message is already written for the user (bad model file, bad setting)."""


class FirstTokenTimeout(Exception):
    pass


class StreamStalled(Exception):
    pass


class StreamEndedEarly(Exception):
    """The body ended without a finish_reason or [DONE]: the connection was cut."""


class EmptyReply(Exception):
    pass


class MalformedChunk(Exception):
    """Valid JSON, but not the shape of a chat-completion chunk."""


def strip_url_credentials(text: str) -> str:
    """`text` with the user:password@ part of every URL in it removed."""
    return _URL_CREDENTIALS.sub(r"\1", text)


def redact(text: str, secrets: tuple[str, ...] = (), limit: int | None = None) -> str:
    """`text` without URL credentials, key-looking strings and the given secrets (each only where
    it stands as a whole token, never inside a longer word), then cut to `limit` characters:
    cutting first could leave the start of a key that straddles the cut."""
    text = strip_url_credentials(text)
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            text = re.sub(rf"(?<![{_TOKEN_CHAR}]){re.escape(secret)}(?![{_TOKEN_CHAR}])", "***", text)
    text = _SECRET_PATTERN.sub("***", text)
    return text if limit is None else text[:limit]


def _server_message(err: openai.APIStatusError, secrets: tuple[str, ...]) -> str:
    body = err.body
    message = None
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else str(inner)
    message = message or err.message or ""
    return redact(" ".join(str(message).split()), secrets, limit=300)


def _retry_after(err: openai.APIStatusError) -> float | None:
    value = err.response.headers.get("retry-after") if err.response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def classify(
    exc: BaseException,
    *,
    base_url: str = "",
    model: str = "",
    had_content: bool = False,
    secrets: tuple[str, ...] = (),
    embedded: bool = False,
) -> ErrorInfo:
    info = _classify(exc, base_url=base_url, model=model, had_content=had_content, secrets=secrets)
    if embedded and info.kind in (ErrorKind.DROPPED, ErrorKind.UNREACHABLE):
        kept = " The partial reply is kept." if had_content else ""
        info.message = (
            f"The embedded model server stopped.{kept} It is restarted on the next request: press Retry."
        )
    info.message = redact(info.message, secrets)
    return info


def _classify(
    exc: BaseException, *, base_url: str, model: str, had_content: bool, secrets: tuple[str, ...]
) -> ErrorInfo:
    kept = " The partial reply is kept." if had_content else ""
    if isinstance(exc, UserFacingError):
        return ErrorInfo(ErrorKind.SETUP, str(exc))
    if isinstance(exc, FirstTokenTimeout):
        return ErrorInfo(
            ErrorKind.FIRST_TOKEN_TIMEOUT,
            f"No reply started within {exc.args[0]:g} s. The server may be overloaded "
            "or the prompt very long: retry, or raise the first-token timeout.",
        )
    if isinstance(exc, StreamStalled):
        return ErrorInfo(
            ErrorKind.STALLED,
            f"The reply stalled: nothing arrived for {exc.args[0]:g} s.{kept} "
            "Retry, or raise the idle timeout.",
        )
    if isinstance(exc, StreamEndedEarly):
        return ErrorInfo(ErrorKind.DROPPED, f"The connection closed before the reply finished.{kept} Retry.")
    if isinstance(exc, EmptyReply):
        return ErrorInfo(ErrorKind.EMPTY_REPLY, "The model returned an empty reply. Retry or rephrase.")
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError, MalformedChunk)):
        return ErrorInfo(
            ErrorKind.MALFORMED,
            f"The server sent a malformed chunk the app could not read.{kept} Retry; "
            "if it persists the endpoint is not OpenAI-compatible.",
        )
    if isinstance(exc, openai.APITimeoutError):
        return ErrorInfo(
            ErrorKind.TIMEOUT,
            f"The request to {base_url} timed out.{kept} Retry, or raise the timeouts in Advanced settings.",
        )
    if isinstance(exc, openai.APIConnectionError):
        if had_content:
            return ErrorInfo(ErrorKind.DROPPED, f"The connection dropped mid-reply.{kept} Retry.")
        return ErrorInfo(
            ErrorKind.UNREACHABLE,
            f"Cannot reach {base_url}. Check that the server is running and the base URL is right.",
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = _server_message(exc, secrets)
        said = f' The server said: "{detail}"' if detail else ""
        if status in (401, 403):
            what = "rejected the API key" if status == 401 else "refused access"
            return ErrorInfo(
                ErrorKind.AUTH,
                f"The server {what} ({status}). Check the API key in the sidebar.{said}",
                status,
            )
        if status == 404:
            return ErrorInfo(
                ErrorKind.MODEL_NOT_FOUND,
                f"Model '{model}' was not found at this endpoint (404). Pick another "
                f"model in the sidebar.{said}",
                status,
            )
        if status == 429:
            retry = _retry_after(exc)
            when = f"Retry after {retry:g} s." if retry is not None else "Wait a moment and retry."
            return ErrorInfo(
                ErrorKind.RATE_LIMITED, f"Rate limited by the server (429). {when}{said}", status, retry
            )
        if status in (400, 413) and _CONTEXT_PATTERN.search(detail):
            return ErrorInfo(
                ErrorKind.CONTEXT_LENGTH,
                f"The conversation is too long for the model's "
                f"context. Trim the oldest messages and retry.{said}",
                status,
            )
        if 400 <= status < 500:
            return ErrorInfo(
                ErrorKind.BAD_REQUEST,
                f"The server rejected the request ({status}). Check the settings.{said}",
                status,
            )
        return ErrorInfo(
            ErrorKind.SERVER_ERROR,
            f"The server failed ({status}).{kept} Retry in a moment.{said}",
            status,
            _retry_after(exc),
        )
    if isinstance(exc, openai.OpenAIError):
        return ErrorInfo(ErrorKind.CLIENT_ERROR, f"Request failed: {redact(str(exc), secrets, limit=200)}")
    detail = redact(" ".join(str(exc).split()), secrets, limit=200)
    return ErrorInfo(
        ErrorKind.UNEXPECTED,
        f"Unexpected error ({type(exc).__name__}: {detail}).{kept} "
        "Retry; if it persists, report it with the app's log.",
    )
